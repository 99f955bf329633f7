"""The command starts fast: `--help` imports no command module and no SQLAlchemy, lookups import
no Alembic, torch, transformers, peft or the HTTP stack, and the lazy command table matches the
real commands (bench/startup.py measures the time itself)."""

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

import cli
from cli import COMMANDS, CONTEXT_SETTINGS, LazyGroup

ROOT = Path(__file__).resolve().parents[2]

# Runs the console script's entry point and reports every module it imported, even when it exits.
_PROBE = """
import json, sys
args = json.loads(sys.argv[1])
sys.argv = ["adapter-registry", *args]
try:
    from registry.__main__ import main
    main()
finally:
    sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""

NEVER_FOR_A_LOOKUP = ("alembic", "torch", "transformers", "peft", "fastapi", "starlette", "uvicorn", "httpx", "boto3",
                      "numpy", "mako")


def imported_by(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, set[str]]:
    p = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(list(args))], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    line = next(x for x in reversed(p.stderr.splitlines()) if x.startswith("MODULES "))
    return p, set(json.loads(line[len("MODULES "):]))


def top_level(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


def real_commands() -> dict[str, tuple[str, click.Command]]:
    """Every top-level command the cli modules define (their COMMANDS tuples), by name."""
    out: dict[str, tuple[str, click.Command]] = {}
    for info in pkgutil.iter_modules(cli.__path__):
        mod = importlib.import_module(f"cli.{info.name}")
        for c in getattr(mod, "COMMANDS", ()):
            assert c.name not in out, f"{c.name} is defined twice"
            out[c.name] = (info.name, c)
    return out


def test_command_table_names_every_command_with_its_module_and_help():
    real = real_commands()
    assert sorted(COMMANDS) == sorted(real)
    for name, (module, cmd) in real.items():
        assert COMMANDS[name] == (module, cmd.get_short_help_str(10**6)), f"cli.COMMANDS[{name!r}] is stale"


@pytest.mark.parametrize("width", [110, 60])
def test_lazy_help_is_the_help_of_the_real_commands(width):
    eager = click.Group(name="cli", params=cli.cli.params, help=cli.cli.help, context_settings=CONTEXT_SETTINGS,
                        commands={n: c for n, (_m, c) in real_commands().items()})
    lazy = LazyGroup(name="cli", params=cli.cli.params, help=cli.cli.help, context_settings=CONTEXT_SETTINGS)

    def help_of(group):
        return group.get_help(click.Context(group, info_name="adapter-registry", terminal_width=width))

    assert help_of(lazy) == help_of(eager)
    assert not lazy.commands, "drawing the help loaded a command"


def test_help_imports_no_command_module_and_no_sqlalchemy():
    p, mods = imported_by("--help")
    assert p.returncode == 0, p.stderr
    for name in COMMANDS:
        assert f"\n  {name} " in p.stdout
    assert not {m for m in mods if m.startswith(("cli.", "registry.cli."))} - {"cli.common"}
    assert not top_level(mods) & {"sqlalchemy", "rich", *NEVER_FOR_A_LOOKUP}
    assert not {m for m in mods if m.startswith("registry.")} - {"registry.__main__", "registry.errors"}


def test_importing_the_package_imports_nothing_heavy():
    p = subprocess.run([sys.executable, "-c", "import sys, registry; print(sorted(sys.modules))"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert "sqlalchemy" not in p.stdout and "'registry.app'" not in p.stdout, p.stdout
    p = subprocess.run([sys.executable, "-c", "from registry import Registry, RegistryError, Settings, Client; "
                        "print(Registry.__module__, RegistryError.__module__, Settings.__module__, Client.__module__)"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["registry.app", "registry.errors", "registry.settings", "registry.client"], p.stderr


@pytest.fixture(scope="module")
def catalog_env(tmp_path_factory, tiny_llama, tiny_adapter):
    from registry.app import Registry
    from registry.settings import Settings

    home = tmp_path_factory.mktemp("startup") / "home"
    with Registry(Settings.from_env(home=str(home))) as reg:
        reg.add_base(tiny_llama, name="tiny-llama")
        reg.push(tiny_adapter, name="team-a/bot", base="tiny-llama")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_REGISTRY_")}
    env["ADAPTER_REGISTRY_HOME"] = str(home)
    return env


@pytest.mark.parametrize("args", [("ls", "--json"), ("show", "team-a/bot@1", "--json"), ("resolve", "team-a/bot@1"),
                                  ("ls",), ("show", "team-a/bot")])
def test_a_lookup_on_a_catalog_at_head_imports_no_alembic_ml_or_http_stack(catalog_env, args):
    p, mods = imported_by(*args, env=catalog_env)
    assert p.returncode == 0, p.stderr
    assert not top_level(mods) & set(NEVER_FOR_A_LOOKUP)
    # neither the queue, release management and tokens, nor the push / merge / verify workflows
    assert not {m for m in mods if m.startswith(("registry.jobs", "registry.release", "registry.tokens",
                                                  "registry.merge", "registry.verify", "registry.api"))}
    assert not {m for m in mods if m.startswith("registry.workflows.")} - {"registry.workflows.resolve"}


def test_an_outdated_catalog_is_still_upgraded_on_first_use(catalog_env, tmp_path):
    """The fast path only skips Alembic when the schema is at head: an empty home gets a catalog."""
    env = dict(catalog_env, ADAPTER_REGISTRY_HOME=str(tmp_path / "fresh"))
    p, mods = imported_by("ls", "--json", env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["items"] == [] and "alembic" in top_level(mods)
