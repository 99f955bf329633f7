"""Token commands: token create|ls|revoke (always on the local catalog, never through --remote)."""

from __future__ import annotations

import click

from registry.enums import Scope

from .common import json_option, pass_ctx, print_json, table
from .server import _local


@click.group()
def token() -> None:
    """API tokens for the HTTP server (stored hashed; the secret is printed once)."""


@token.command("create")
@click.option("--name", required=True, help="Who or what holds it; recorded as the actor of its writes.")
@click.option("--scope", type=click.Choice([s.value for s in Scope]), default="read", show_default=True)
@click.option("--namespace", help="Limit to names NAMESPACE/* (e.g. team-a).")
@json_option
@pass_ctx
def token_create(ctx, name, scope, namespace, as_json) -> None:
    """Create a token and print its secret (shown this once only)."""
    t = _local(ctx).tokens.create(name, scope=scope, namespace=namespace)
    if as_json:
        return print_json(t)
    click.echo(t.token)
    click.echo(f"created token {t.info.name!r} (id {t.info.id}, scope {t.info.scope}"
               + (f", namespace {t.info.namespace}/*" if t.info.namespace else "") + "); it is not shown again",
               err=True)


@token.command("ls")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@json_option
@pass_ctx
def token_ls(ctx, include_revoked, as_json) -> None:
    """List tokens (never their secrets)."""
    rows = _local(ctx).tokens.list(include_revoked=include_revoked)
    if as_json:
        return print_json(rows)
    table(["ID", "NAME", "SCOPE", "NAMESPACE", "CREATED", "BY", "LAST USED", "REVOKED"],
          [(t.id, t.name, t.scope, f"{t.namespace}/*" if t.namespace else "*", f"{t.created_at:%Y-%m-%d %H:%M}",
            t.created_by, f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "") for t in rows])


@token.command("revoke")
@click.argument("token_id", required=False)
@click.option("--name", help="Revoke the active token with this name instead of an id.")
@json_option
@pass_ctx
def token_revoke(ctx, token_id, name, as_json) -> None:
    """Revoke a token by id (`token revoke 12`) or by --name NAME (effective at once).

    A number is always an id, never a name; a token named "12" is revoked with --name 12.
    """
    t = _local(ctx).tokens.revoke(token_id, name=name)
    if as_json:
        return print_json(t)
    click.echo(f"revoked token {t.name!r} (id {t.id})")


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (token,)
