"""The CLI as a person uses it: real files, exit codes and one-line errors.

In this process, through the console script's own main(argv) (tests/factories.py run_cli): a new
interpreter per command costs more than a second. The last test runs the real `python -m registry`.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import ROOT, run_cli


@pytest.fixture
def run(tmp_path):
    env = {"ADAPTER_REGISTRY_HOME": str(tmp_path / "home"), "ADAPTER_REGISTRY_ACTOR": "alice"}

    def _run(*args, ok=True):
        p = run_cli(*args, env=env)
        if ok and p.returncode != 0:
            raise AssertionError(f"exit {p.returncode}: {p.stderr}")
        return p

    return _run


def test_five_minute_tour(run, tiny_llama, tiny_adapter, tmp_path):
    out = run("base", "add", tiny_llama, "--name", "tiny-llama").stdout
    assert "registered tiny-llama" in out
    out = run("push", tiny_adapter, "--name", "team-a/bot", "--base", "tiny-llama", "--tag", "task=chat").stdout
    assert "created team-a/bot@1" in out
    run("eval", "add", "team-a/bot@1", "--metric", "acc=0.62", "--dataset", "mmlu", "--split", "test")
    ls = json.loads(run("ls", "--base", "tiny-llama", "--metric", "acc>=0.6", "--sort", "metric:acc", "--json").stdout)
    assert [i["name"] for i in ls["items"]] == ["team-a/bot"] and ls["items"][0]["metrics"] == {"acc": 0.62}
    shown = json.loads(run("show", "team-a/bot@1", "--json").stdout)
    assert shown["rank"] == 4 and shown["base"]["name"] == "tiny-llama" and shown["compat"]["status"] == "ok"
    assert "team-a/bot@1" in run("show", "team-a/bot").stdout
    path = Path(run("resolve", "team-a/bot@latest").stdout.strip())
    assert (path / "adapter_config.json").is_file() and (path / "adapter_model.safetensors").is_file()
    bases = json.loads(run("base", "ls", "--json").stdout)
    assert bases[0]["name"] == "tiny-llama"
    audit = json.loads(run("audit", "--json").stdout)
    assert {a["actor"] for a in audit} == {"alice"}
    assert "ok" in run("check", "team-a/bot@1").stdout
    assert json.loads(run("eval", "ls", "team-a/bot@1", "--json").stdout)[0]["dataset"] == "mmlu"


@pytest.mark.parametrize("case,code,needle", [
    ("bad-name", 2, "invalid adapter name"),
    ("pickle", 2, "pickle weights"),
    ("truncated", 2, "truncated"),
    ("unknown-base", 3, "unknown base model"),
    ("wrong-shapes", 2, "shape mismatch"),
    ("unknown-adapter", 3, "no adapter named"),
])
def test_bad_input_gets_one_line_error_and_nonzero_exit_and_stores_nothing(run, case, code, needle, tiny_adapter,
                                                                           tiny_llama_other, tmp_path):
    d = shutil.copytree(tiny_adapter, tmp_path / "a")
    w = d / "adapter_model.safetensors"
    name, base = "bot", None
    if case == "bad-name":
        name = "Bad Name"
    elif case == "pickle":
        w.rename(d / "adapter_model.bin")
    elif case == "truncated":
        w.write_bytes(w.read_bytes()[:-64])
    elif case == "unknown-base":
        base = "nope"
    elif case == "wrong-shapes":
        run("base", "add", tiny_llama_other, "--name", "other")
        base = "other"
    if case == "unknown-adapter":
        p = run("show", "ghost@1", ok=False)
    else:
        p = run("push", d, "--name", name, *(["--base", base] if base else []), ok=False)
    assert p.returncode == code, p.stderr
    err_lines = p.stderr.strip().splitlines()
    assert err_lines[0].startswith("error: ") and needle in err_lines[0]
    assert len(err_lines) <= 2 and "Traceback" not in p.stderr
    assert json.loads(run("ls", "--json").stdout)["items"] == []
    store = tmp_path / "home" / "store" / "blobs"
    assert not store.exists() or not any(p.is_file() for p in store.rglob("*"))


def test_db_commands(run):
    assert "empty" in run("db", "current").stdout
    run("db", "upgrade")
    cur = json.loads(run("db", "current", "--json").stdout)
    assert cur["up_to_date"] and cur["current"] == cur["head"]
    assert "no drift" in run("db", "check").stdout


def test_db_upgrade_on_postgres(run, pg_url):
    p = run("--db", pg_url, "ls", ok=False)
    assert p.returncode != 0 and "db upgrade" in p.stderr
    run("--db", pg_url, "db", "upgrade")
    assert json.loads(run("--db", pg_url, "ls", "--json").stdout)["items"] == []


def test_debug_shows_the_traceback(tmp_path):
    """The one real process: the console script's entry point, and --debug letting the traceback out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_REGISTRY_")}
    env["ADAPTER_REGISTRY_HOME"] = str(tmp_path / "home")
    env["ADAPTER_REGISTRY_ACTOR"] = "alice"
    p = subprocess.run([sys.executable, "-m", "registry", "--debug", "show", "ghost"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert "Traceback" in p.stderr and p.returncode != 0
