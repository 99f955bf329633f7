"""Publish targets and base roots per namespace (admin only): target add|ls|rm."""

from __future__ import annotations

import click


@click.group()
def target() -> None:
    """Publish targets and base roots per namespace: where writes may publish (admin only)."""


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (target,)
