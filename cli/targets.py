"""Publish targets and base roots per namespace (admin only): target add|ls|rm.

Like the token commands they act on the local catalog (whoever holds its files is the operator),
never through --remote; over HTTP the same is /api/v1/targets (an admin token without a namespace).
"""

from __future__ import annotations

import click

from .common import json_option, pass_ctx, print_json, table
from .server import _local

KINDS = ("publish", "base")  # registry.targets.KINDS, without importing the registry at start-up


def _targets(ctx):
    return _local(ctx).targets


@click.group()
def target() -> None:
    """Publish targets and base roots per namespace: where writes may publish (admin only)."""


@target.command("add")
@click.argument("url")
@click.option("--namespace", help="The namespace it is for (e.g. team-a).")
@click.option("--global", "every", is_flag=True, help="For every namespace (and names without one).")
@click.option("--kind", type=click.Choice(KINDS), default="publish", show_default=True,
              help="publish: versions may be published under URL; base: base models may be registered from it.")
@click.option("--public", is_flag=True, help="hf:// only: create public Hub repos (default: private).")
@json_option
@pass_ctx
def target_add(ctx, url, namespace, every, kind, public, as_json) -> None:
    """Allow a namespace to publish under URL (dir:///root, s3://bucket/prefix, hf://org), or to
    register base models from folders under dir:///root (--kind base)."""
    from registry.errors import InvalidInput

    if bool(namespace) == every:
        raise InvalidInput("give --namespace NS or --global (one of them)")
    t = _targets(ctx).add(url, namespace=namespace, kind=kind, options={"private": False} if public else None)
    if as_json:
        return print_json(t)
    click.echo(f"added {t.kind} target {t.url} for {_who(t.namespace)} (id {t.id})")


@target.command("ls")
@click.option("--namespace", help="Only those that apply to NAMESPACE (its own and the global ones).")
@click.option("--kind", type=click.Choice(KINDS), help="Only publish targets or only base roots.")
@json_option
@pass_ctx
def target_ls(ctx, namespace, kind, as_json) -> None:
    """List publish targets and base roots."""
    rows = _targets(ctx).list(namespace=namespace, kind=kind)
    if as_json:
        return print_json(rows)
    table(["ID", "NAMESPACE", "KIND", "URL", "OPTIONS", "CREATED", "BY"],
          [(t.id, t.namespace or "*", t.kind, t.url, ", ".join(f"{k}={v}" for k, v in sorted(t.options.items())),
            f"{t.created_at:%Y-%m-%d %H:%M}" if t.created_at else "", t.created_by) for t in rows])


@target.command("rm")
@click.argument("target_id", type=int)
@json_option
@pass_ctx
def target_rm(ctx, target_id, as_json) -> None:
    """Remove a publish target or base root by id (see `target ls`)."""
    t = _targets(ctx).remove(target_id)
    if as_json:
        return print_json(t)
    click.echo(f"removed {t.kind} target {t.url} of {_who(t.namespace)} (id {t.id})")


def _who(namespace: str | None) -> str:
    return f"namespace {namespace}" if namespace else "every namespace"


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (target,)
