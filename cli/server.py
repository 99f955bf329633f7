"""Server commands: serve, demo."""

from __future__ import annotations

import click

from .common import pass_ctx, startup_done


def _local(ctx):
    """These commands act on the catalog itself, never through --remote."""
    import dataclasses

    from registry.app import Registry

    if ctx._registry is None or not isinstance(ctx._registry, Registry):
        if ctx._registry is not None:
            ctx._registry.close()
        ctx._registry = Registry(dataclasses.replace(ctx._settings(), remote=None))
    startup_done()
    return ctx._registry


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0: any free port).")
@click.option("--worker/--no-worker", default=False, help="Also run a job worker in this process.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Server processes sharing the port (one per core you give the server).")
@pass_ctx
def serve(ctx, host, port, worker, workers) -> None:
    """Run the HTTP API and the catalog pages over this catalog."""
    from registry.demo import serve as run_server

    run_server(_local(ctx), host=host, port=port, worker=worker, workers=workers)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--seed-only", is_flag=True, help="Seed the demo catalog (if empty) and exit.")
@pass_ctx
def demo(ctx, host, port, seed_only) -> None:
    """Seed a small demo catalog when the catalog is empty, then serve it with a worker (make run)."""
    from registry import demo as D

    reg = _local(ctx)
    if D.is_empty(reg):
        click.echo("seeding a demo catalog (tiny base model, three adapters, evals)...", err=True)
        for line in D.seed(reg):
            click.echo(f"  {line}", err=True)
    if not seed_only:
        D.serve(reg, host=host, port=port, worker=True)


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (serve, demo)
