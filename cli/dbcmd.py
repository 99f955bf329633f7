"""`adapter-registry db upgrade|current|check`."""

from __future__ import annotations

import click

from .common import pass_ctx, print_json


@click.group()
def db() -> None:
    """Manage the catalog database schema (Alembic)."""


def _engine(ctx):
    from registry.db import make_engine

    return make_engine(ctx.settings.db_url)


@db.command()
@click.option("--revision", default="head", show_default=True)
@pass_ctx
def upgrade(ctx, revision: str) -> None:
    """Create or upgrade the catalog schema."""
    from registry import migrate

    e = _engine(ctx)
    before = migrate.current(e)
    migrate.upgrade(e, revision)
    click.echo(f"catalog schema: {before or 'empty'} -> {migrate.current(e)}")


@db.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def current(ctx, as_json: bool) -> None:
    """Print the schema revision of the catalog and the one this version needs."""
    from registry import migrate

    e = _engine(ctx)
    cur, head = migrate.current(e), migrate.head()
    if as_json:
        print_json({"current": cur, "head": head, "up_to_date": cur == head})
    else:
        click.echo(f"current: {cur or 'empty'}\nhead:    {head}"
                   + ("" if cur == head else "\n(run: adapter-registry db upgrade)"))


@db.command()
@pass_ctx
def check(ctx) -> None:
    """Fail when the database differs from the models (schema drift)."""
    from registry import migrate
    from registry.errors import Conflict

    e = _engine(ctx)
    if migrate.current(e) != migrate.head():
        raise Conflict(f"catalog schema is at {migrate.current(e) or 'nothing'}, head is {migrate.head()}",
                       hint="run: adapter-registry db upgrade")
    diff = migrate.check(e)
    if diff:
        raise Conflict(f"schema drift: {len(diff)} differences, first: {diff[0]}")
    click.echo("catalog schema is up to date, no drift")


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (db,)
