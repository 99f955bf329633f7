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
@click.option("--follow", is_flag=True, help="Deploy again after every alias move (the events feed; Ctrl-C to stop).")
@click.option("--after", "after_id", type=int, default=None, help="With --follow: start after this event id.")
@click.option("--state", "state", type=click.Path(dir_okay=False), default=None,
              help="With --follow: a file keeping the last event id handled, to resume from (written after "
                   "each deploy).")
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between polls with --follow.")
@json_option
@pass_ctx
def deploy(ctx, url, alias, base, allow_unverified, dry_run, follow, after_id, state, poll, as_json) -> None:
    """Load moved-to versions and unload moved-from ones, so the server's NAME@ALIAS are the alias set."""
    from registry.workflows.deploy import deploy as run

    core = _local(ctx).core
    if follow:
        if dry_run:
            raise click.UsageError("--follow and --dry-run do not go together")
        return _follow(core, url, alias, base, not allow_unverified, after_id, state, poll, as_json)
    p = run(core, url, alias=alias, base=base, require_verified=not allow_unverified, dry_run=dry_run)
    if as_json:
        return print_json(p)
    _print_plan(p)


def _follow(core, url, alias, base, require_verified, after_id, state, poll, as_json) -> None:
    import json
    import os
    from pathlib import Path

    from registry.workflows.deploy import follow

    cursor = Path(state) if state else None
    if after_id is None:
        after_id = int(cursor.read_text().strip() or 0) if cursor and cursor.is_file() else 0

    def done(p, moved, last) -> None:
        if cursor:
            tmp = cursor.with_name(cursor.name + ".tmp")
            tmp.write_text(f"{last}\n")
            os.replace(tmp, cursor)
        if as_json:
            click.echo(json.dumps({"last_event_id": last, "moves": {k: list(v) for k, v in moved.items()},
                                   "plan": p.to_dict()}, sort_keys=True))
            return
        for name, (a, b) in moved.items():
            click.echo(f"moved  {name}: {a} -> {b}")
        _print_plan(p)
        click.echo(f"(up to event {last})")

    def failed(e) -> None:
        click.echo(f"error: {e} (retrying)", err=True)

    try:
        follow(core, url, alias=alias, base=base, require_verified=require_verified, after_id=after_id, poll_s=poll,
               on_deploy=done, on_error=failed)
    except KeyboardInterrupt:
        return


def _print_plan(p) -> None:
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
