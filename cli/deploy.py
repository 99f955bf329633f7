"""adapter-registry deploy --vllm URL --alias production: a running vLLM serves exactly the alias set."""

from __future__ import annotations

import click

from .common import json_option, pass_ctx, print_json
from .server import _local


@click.command("deploy")
@click.option("--vllm", "url", required=True, help="The vLLM server (http://127.0.0.1:8000); it needs "
              "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True.")
@click.option("--alias", default="production", show_default=True, help="The alias whose versions it serves.")
@click.option("--base", default=None, help="The base it serves (default: the registered base whose folder it serves).")
@click.option("--allow-unverified", is_flag=True, help="Also load versions with no passed vLLM verification.")
@click.option("--dry-run", is_flag=True, help="Print what would be loaded and unloaded, change nothing.")
@json_option
@pass_ctx
def deploy(ctx, url, alias, base, allow_unverified, dry_run, as_json) -> None:
    """Load moved-to versions and unload moved-from ones, so the server's NAME@ALIAS are the alias set."""
    from registry.workflows.deploy import deploy as run

    p = run(_local(ctx).core, url, alias=alias, base=base, require_verified=not allow_unverified, dry_run=dry_run)
    if as_json:
        return print_json(p)
    for name, path in p.load.items():
        click.echo(f"load   {name} <- {path}")
    for name in p.unload:
        click.echo(f"unload {name}")
    for name in p.keep:
        click.echo(f"keep   {name}")
    for name, why in p.skipped.items():
        click.echo(f"skip   {name}: {why}", err=True)


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (deploy,)
