"""The `adapter-registry` command: a thin shell over registry.Registry.

Each command parses, calls one Registry method and prints a table or `--json`. Errors become one
line on stderr (plus a hint) and the error's own exit code (`RegistryError.exit_code`, listed in
registry.errors.EXIT_CODES); `--debug` shows the traceback.

Start-up time matters (`adapter-registry ls` is run in scripts and loops), so a command's module
is imported only when that command runs: `--help` is drawn from the COMMANDS table below and
imports none of them, and nothing here imports SQLAlchemy. bench/startup.py measures it.
"""

from __future__ import annotations

import importlib
import sys

import click

from .common import Ctx, emit_error

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

# Every top-level command: name -> (module in this package, its one-line help as
# `get_short_help_str` gives it). tests/cli/test_startup_imports.py checks this table against the
# modules' COMMANDS tuples, so a command added there and not here (or renamed) fails a test.
COMMANDS: dict[str, tuple[str, str]] = {
    "alias": ("release", "Aliases (production, staging, ...): move, remove, history, protect with promotion gates."),
    "audit": ("catalog", "Who did what, newest first."),
    "base": ("catalog", "Register and list base models (identified by fingerprint)."),
    "bulk": ("release", "Operations on every version a query matches, all or nothing in one transaction."),
    "check": ("catalog", "Validate a folder (PATH, before any push) or check a version (REF) against its base."),
    "db": ("dbcmd", "Manage the catalog database schema (Alembic)."),
    "delete": ("release", "Delete a version from the catalog (refused while it holds a protected alias); "
                          "gc frees its blobs."),
    "demo": ("server", "Seed a small demo catalog when the catalog is empty, then serve it with a worker (make run)."),
    "deploy": ("deploy", "Load moved-to versions and unload moved-from ones, so the server's NAME@ALIAS are the "
                         "alias set."),
    "deprecate": ("release", "Deprecate a version: hidden from search, resolve warns."),
    "eval": ("catalog", "Record and list evaluation results."),
    "engines": ("engines", "Serving engine environments (vLLM, llama.cpp): install them pinned, list them."),
    "events": ("release", "The catalog's change events, oldest first (JSON lines with --follow --json)."),
    "export": ("export", "Convert NAME@REF with llama.cpp's own converter (pinned); refused when it cannot express "
                         "the adapter."),
    "gc": ("release", "Delete blobs no version, merged artifact, publication or stored base references."),
    "impact": ("release", "What BASE's newest revision (or NAME@REV) leaves unverified: versions, aliases, "
                          "merged artifacts."),
    "jobs": ("jobs", "Durable jobs: list, inspect, cancel, retry."),
    "ls": ("catalog", "Search adapter versions."),
    "merge": ("merge", "Merge an adapter version into its base model (cached per base, adapter, dtype and engine)."),
    "publish": ("jobs", "Merge NAME@REF if needed, then publish the merged model to TARGET."),
    "push": ("catalog", "Register an adapter folder (PEFT or Trainer/TRL output) as a new version."),
    "resolve": ("catalog", "Print a local folder with the adapter's files (for PeftModel.from_pretrained)."),
    "serve": ("server", "Run the HTTP API and the catalog pages over this catalog."),
    "serving-profile": ("release", "Flags for `vllm serve` to serve every adapter of BASE that has ALIAS, together."),
    "show": ("catalog", "Show an adapter version: NAME, NAME@VERSION or NAME@ALIAS."),
    "target": ("targets", "Publish targets and base roots per namespace: where writes may publish (admin only)."),
    "token": ("tokens", "API tokens for the HTTP server (stored hashed; the secret is printed once)."),
    "undeprecate": ("release", "Undo a deprecation."),
    "version": ("catalog", "Change what the catalog records about a version (its files and digest never change)."),
    "verify": ("jobs", "Enqueue a dynamic verification of NAME@REF: load it on a worker's device and probe it."),
    "webhook": ("release", "Webhooks: POST each event, signed with HMAC-SHA256 (X-Registry-Signature), retried."),
    "worker": ("jobs", "Run jobs from the catalog's queue until stopped (SIGTERM: finish or hand back the "
                       "current job)."),
    "workers": ("jobs", "Worker processes registered in the catalog."),
}


def load_command(name: str) -> click.Command | None:
    """The real command `name`, importing its module (None: no such command)."""
    entry = COMMANDS.get(name)
    if entry is None:
        return None
    module = importlib.import_module(f"{__name__}.{entry[0]}")
    return next(c for c in module.COMMANDS if c.name == name)


class LazyGroup(click.Group):
    """A group whose commands are imported on first use; its help comes from COMMANDS."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = self.commands.get(cmd_name)
        if cmd is None:
            cmd = load_command(cmd_name)
            if cmd is not None:
                self.commands[cmd_name] = cmd
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click.Group's own rendering, fed with stand-ins that carry the table's help line, so the
        # text (and its shortening to the terminal's width) is exactly what the real commands give.
        rows = [(n, self.commands.get(n) or click.Command(n, help=COMMANDS[n][1])) for n in self.list_commands(ctx)]
        rows = [(n, c) for n, c in rows if not c.hidden]
        if not rows:
            return
        from gettext import gettext as _

        limit = formatter.width - 6 - max(len(n) for n, _c in rows)
        with formatter.section(_("Commands")):
            formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in rows])


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
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


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; translate our errors into one line and their exit code."""
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
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)


__all__ = ["COMMANDS", "cli", "main"]
