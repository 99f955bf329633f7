"""Shared CLI plumbing: the lazily built Registry, output as tables or JSON, progress, errors."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # pragma: no cover
    from registry.app import Registry
    from registry.client import Client

# Every command module imports this one, so it imports only click: the registry (SQLAlchemy),
# rich and the HTTP client are imported when a command first needs them.

# -- start-up --------------------------------------------------------------------------------------
# A lookup imports a few hundred modules (SQLAlchemy, the catalog's models) and exits milliseconds
# after. The cyclic GC walks everything those imports build several times while they run and again
# at exit: a quarter of `adapter-registry ls` (bench/startup.py). So the process entry point
# (registry/__main__.py; never an in-process caller such as CliRunner) pauses the GC until the
# command has its settings or registry, then freezes what start-up built (modules, classes, the
# engine: they live until exit anyway) out of later collections and lets the GC run again.
_gc_paused = False


def pause_gc_for_startup() -> None:
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def startup_done() -> None:
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


class Ctx:
    def __init__(self, overrides: dict[str, Any], *, debug: bool = False):
        self.overrides = overrides
        self.debug = debug
        self._registry: Registry | Client | None = None

    def _settings(self):
        from registry.settings import Settings

        return Settings.from_env(**self.overrides)

    @property
    def settings(self):
        s = self._settings()
        startup_done()
        return s

    @property
    def registry(self):
        """The local Registry, or an HTTP client when --remote is set (same read methods)."""
        if self._registry is None:
            s = self._settings()
            if s.remote:
                from registry.client import Client

                self._registry = Client(s.remote, token=s.token, cache_dir=s.cache_dir)
            else:
                from registry.app import Registry

                self._registry = Registry(s)
        startup_done()
        return self._registry

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()


pass_ctx = click.make_pass_decorator(Ctx)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (stable shape, see docs/JSON.md).")


def emit_error(e) -> None:
    msg = str(e.message).splitlines()[0] if e.message else e.code
    click.echo(f"error: {msg}", err=True)
    if getattr(e, "hint", None):
        click.echo(f"hint: {e.hint}", err=True)


def print_json(obj: Any) -> None:
    import json

    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    elif isinstance(obj, (list, tuple)):
        obj = [o.to_dict() if hasattr(o, "to_dict") else o for o in obj]
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_header=True, header_style="bold", box=None, pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    n = 0
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
        n += 1
    console = Console(soft_wrap=True, width=200 if not sys.stdout.isatty() else None)
    if n == 0:
        console.print("(none)")
    else:
        console.print(t)


def kv(pairs: Iterable[tuple[str, Any]]) -> None:
    for k, v in pairs:
        if v is None or v == "" or v == () or v == {}:
            continue
        if isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v)
        elif isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        click.echo(f"{k + ':':<16}{v}")


@contextmanager
def progress_bar(description: str, *, enabled: bool = True):
    """A rich progress bar; yields a callback (stage, done, total) for Registry methods."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True, console=None) as p:
        task = p.add_task(description, total=None)

        def update(stage: str, done: int, total: int) -> None:
            p.update(task, description=f"{description} ({stage})", completed=done, total=total)

        yield update


def short(digest: str | None, n: int = 12) -> str:
    return (digest or "")[:n]


def human(n: int | None) -> str:
    from registry.adapters.basemodel import human_size

    return "" if n is None else human_size(n)
