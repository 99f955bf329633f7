"""README.md's tour runs as written: every ```sh and ```python block of "## A five-minute tour", top to
bottom, on a fresh ADAPTER_REGISTRY_HOME, in a folder holding what the tour names.

The folder gets `./llama-3-8b` (a tiny Llama saved by transformers, with a tiny tokenizer) and
`./out/support-bot` (a real peft `save_pretrained` of a LoRA on it, whose config names the Hub
repo it was "trained" on, as a real one does). `adapter-registry` is a shim on PATH for
`python -m registry` of this checkout; the shell blocks run in bash with `set -euo pipefail` (their
exports carry to the next block), the Python blocks in a subprocess with that environment.
A block right after a `<!-- tour: skip -->` line (a worker, a server, S3, the Hub, a GPU) is not run.
Nothing goes to the network: HF_HUB_OFFLINE is set.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## A five-minute tour"
SKIP = "<!-- tour: skip -->"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def tour_blocks(readme: str) -> list[tuple[str, str, bool]]:
    """(language, code, skipped) of every sh / python block of the tour section, in order."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start:end if end != -1 else len(readme)]
    out = []
    for m in FENCE.finditer(section):
        lang, code = m.group(1), m.group(2)
        if lang not in ("sh", "python"):
            continue
        before = section[:m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        out.append((lang, code, before == SKIP))
    return out


def test_the_tour_has_the_blocks_it_promises():
    blocks = tour_blocks((ROOT / "README.md").read_text())
    run = "\n".join(code for _lang, code, skipped in blocks if not skipped)
    for step in ("base add", "check ./out", "push ", "eval add", " ls ", " show ", " resolve ", " merge ",
                 "alias set", ".load(", ".load_merged(", ".resolve("):
        assert step in run, f"the runnable tour lost {step.strip()!r}"
    skipped = "\n".join(code for _lang, code, skipped in blocks if skipped)
    for remote in ("s3://", "hf://", " serve ", "--remote", " worker "):
        assert remote in skipped and remote not in run, remote
    assert {lang for lang, _c, _s in blocks} == {"sh", "python"}


def make_tour_folder(cwd: Path) -> None:
    from registry.testing.tiny import build_adapter, build_llama

    base = build_llama(cwd / "llama-3-8b")
    ad = build_adapter(base, cwd / "out" / "support-bot", r=16, lora_alpha=32)
    cfg_path = ad / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "meta-llama/Meta-Llama-3-8B"  # what a real training run records
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))
    lm_eval = cwd / "out" / "lm-eval"  # what a real lm_eval 0.4.13 run wrote (tests/data/lm_eval)
    lm_eval.mkdir()
    (lm_eval / "results.json").write_bytes((ROOT / "tests" / "data" / "lm_eval" / "results_5shot.json").read_bytes())


def tour_env(tmp_path: Path) -> dict[str, str]:
    shim = tmp_path / "bin" / "adapter-registry"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m registry "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_REGISTRY_")}
    env.update(PATH=f"{shim.parent}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HOME=str(tmp_path / "user"), ADAPTER_REGISTRY_ACTOR="tour")
    return env


def run_block(lang: str, code: str, *, cwd: Path, env: dict[str, str], state: Path, n: int) -> str:
    """Run one block in bash (a Python block through the interpreter); the environment carries over in `state`."""
    if lang == "python":
        script = cwd.parent / f"block-{n}.py"
        script.write_text(code)
        body = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    else:
        body = code
    prog = (f"set -euo pipefail\n[ -f {shlex.quote(str(state))} ] && source {shlex.quote(str(state))}\n"
            f"{body}\nexport -p > {shlex.quote(str(state))}\n")
    p = subprocess.run(["bash", "-c", prog], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"tour block {n} ({lang}) failed with {p.returncode}:\n{code}\n--- stdout\n" \
                              f"{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}"
    return p.stdout


@pytest.mark.skipif(not Path("/bin/bash").exists() and not Path("/usr/bin/bash").exists(), reason="needs bash")
def test_the_readme_tour_runs_top_to_bottom_on_a_fresh_home(tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    make_tour_folder(cwd)
    env, state = tour_env(tmp_path), tmp_path / "tour.env"
    outputs = []
    for n, (lang, code, skipped) in enumerate(tour_blocks((ROOT / "README.md").read_text())):
        if not skipped:
            outputs.append(run_block(lang, code, cwd=cwd, env=env, state=state, n=n))
    home = cwd / ".registry"
    assert (home / "catalog.db").is_file()  # the tour's own home, fresh, in the folder it ran in
    assert (cwd / "support-bot" / "adapter_config.json").is_file() and (cwd / "support-bot-merged").is_dir()
    local = json.loads((cwd / "support-bot" / "adapter_config.json").read_text())
    assert local["base_model_name_or_path"] == str((cwd / "llama-3-8b").resolve())
    assert "team-a/support-bot@1" in "".join(outputs)
