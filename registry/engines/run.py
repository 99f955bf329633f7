"""Run an engine's runner script (registry/engines/runners/) in the engine's environment, JSON in/out."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from registry.errors import EngineFailed

from .install import EngineEnv

RUNNERS = Path(__file__).parent / "runners"
SCRIPT = {"vllm": "vllm_runner.py", "llama.cpp": "llama_cpp_runner.py"}


def run_runner(env: EngineEnv, request: dict[str, Any], *, timeout: float = 900) -> dict[str, Any]:
    """One runner call; the answer's "wall_s" is the whole subprocess's time (start-up included).

    Raises:
        EngineFailed: the runner exited non-zero or wrote no answer (the tail of its output is kept).
    """
    assert env.python, env
    with tempfile.TemporaryDirectory(prefix="engine-run-") as tmp:
        req, out = Path(tmp) / "request.json", Path(tmp) / "answer.json"
        req.write_text(json.dumps(request))
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        child_env.setdefault("OMP_NUM_THREADS", str(min(4, os.cpu_count() or 1)))
        t = time.monotonic()
        proc = subprocess.run([env.python, str(RUNNERS / SCRIPT[env.engine]), str(req), str(out)], cwd=tmp,
                              env=child_env, capture_output=True, text=True, timeout=timeout)
        wall = time.monotonic() - t
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
            raise EngineFailed(f"{env.engine} {env.version} failed (exit {proc.returncode}): "
                               + " | ".join(tail)[-1500:])
        answer = json.loads(out.read_text())
    answer["wall_s"] = wall
    return answer
