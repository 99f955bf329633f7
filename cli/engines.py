"""Serving engine environments: engines install vllm|llama.cpp, engines ls.

Engines live outside the repository, in the engines folder (--engines-dir, else
$ADAPTER_REGISTRY_ENGINES_DIR, else ~/.cache/adapter-registry/engines), one pinned environment each
(registry/engines/versions.py). Nothing here opens the catalog.
"""

from __future__ import annotations

import time

import click

from .common import json_option, pass_ctx, print_json, table

ENGINE_NAMES = ("vllm", "llama.cpp")  # registry.engines.versions.INSTALLABLE, without importing it at start-up

engines_dir_option = click.option(
    "--engines-dir", metavar="DIR",
    help="Where engine environments live (default: the engines_dir setting, ~/.cache/adapter-registry/engines).")


@click.group()
def engines() -> None:
    """Serving engine environments (vLLM, llama.cpp): install them pinned, list them."""


@engines.command("install")
@click.argument("engine", type=click.Choice(ENGINE_NAMES))
@engines_dir_option
@click.option("--force", is_flag=True, help="Rebuild even when it is already installed.")
@json_option
@pass_ctx
def engines_install(ctx, engine, engines_dir, force, as_json) -> None:
    """Build ENGINE's pinned environment (minutes; nothing to do when it is already built)."""
    from registry.engines import install as I

    t0 = time.monotonic()

    def say(msg: str) -> None:
        click.echo(f"[{time.monotonic() - t0:5.0f}s] {msg}", err=True)

    env = I.install(engine, I.engines_dir(engines_dir or ctx.settings.engines_dir), progress=say, force=force)
    if as_json:
        return print_json(env)
    click.echo(env.path)


@engines.command("ls")
@engines_dir_option
@json_option
@pass_ctx
def engines_ls(ctx, engines_dir, as_json) -> None:
    """The engines, their pinned versions, devices and where their environments are."""
    from registry.engines import install as I

    envs = I.list_envs(I.engines_dir(engines_dir or ctx.settings.engines_dir))
    if as_json:
        return print_json(envs)
    table(["ENGINE", "VERSION", "PACKAGE", "DEVICES", "INSTALLED", "PATH"],
          [(e.engine, e.version, e.package, ",".join(e.devices), "yes" if e.installed else "no", e.path) for e in envs])


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (engines,)
