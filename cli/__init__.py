"""The `adapter-registry` command: a thin shell over registry.Registry.

Each command parses, calls one Registry method and prints a table or `--json`. Errors become one
line on stderr (plus a hint) and a non-zero exit code; `--debug` shows the traceback.
"""

from __future__ import annotations

import sys

import click

from .common import Ctx, EXIT_CODES, emit_error

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option("--home", envvar="ADAPTER_REGISTRY_HOME", help="Folder for the default catalog, store and cache.")
@click.option("--db", "db", envvar="ADAPTER_REGISTRY_DB", help="Catalog database URL (default: SQLite under home).")
@click.option("--store", envvar="ADAPTER_REGISTRY_STORE", help="Artifact store: folder or s3://bucket/prefix.")
@click.option("--remote", envvar="ADAPTER_REGISTRY_REMOTE", help="Work through a registry server at this URL.")
@click.option("--token", envvar="ADAPTER_REGISTRY_TOKEN", help="Bearer token for --remote.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="adapter-registry", message="%(version)s")
@click.pass_context
def cli(ctx: click.Context, home, db, store, remote, token, debug) -> None:
    """A catalog for LoRA/PEFT adapters: register, evaluate, verify, merge and publish them."""
    ctx.obj = Ctx(dict(home=home, db=db, store=store, remote=remote, token=token), debug=debug)
    ctx.call_on_close(ctx.obj.close)


from . import catalog as _catalog  # noqa: E402
from . import dbcmd as _dbcmd  # noqa: E402

_catalog.register(cli)
_dbcmd.register(cli)

from . import jobs as _jobs  # noqa: E402
from . import merge as _merge  # noqa: E402
from . import release as _release  # noqa: E402
from . import server as _server  # noqa: E402

for _mod in (_merge, _jobs, _release, _server):
    _mod.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; translate our errors into one line and an exit code."""
    from registry.errors import RegistryError

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    if not debug:
        # Our commands draw their own progress; transformers' per-load bars and deprecation
        # chatter from inside peft would only interleave with it.
        import os
        import warnings

        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        rc = cli.main(args=argv, prog_name="adapter-registry", standalone_mode=False)
        # standalone_mode=False returns the code of `raise click.exceptions.Exit(n)` instead of exiting
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(2)
    except RegistryError as e:
        if debug:
            raise
        emit_error(e)
        sys.exit(EXIT_CODES.get(e.status, 1))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)


__all__ = ["cli", "main"]
