"""Helpers shared by the jobs, verify and publish tests (real catalogs, real tiny models)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def push(reg, base: Path, adapter: Path, *, name: str = "bot", base_name: str = "tiny") -> str:
    """Register `base` (once) and push `adapter` against it; returns the version's ref."""
    if not reg.list_bases(base_name):
        reg.add_base(base, name=base_name)
    return reg.push(adapter, name=name, base=base_name).ref


def cli_env(settings, **extra) -> dict[str, str]:
    """Environment that points a CLI subprocess at the same catalog, store and cache as `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_REGISTRY_")}
    env.update(ADAPTER_REGISTRY_HOME=str(settings.home), ADAPTER_REGISTRY_DB=settings.db_url,
               ADAPTER_REGISTRY_STORE=settings.store_url, ADAPTER_REGISTRY_ACTOR="tester",
               PYTHONPATH=str(ROOT), **extra)
    return env


def start_worker(settings, *args: str, **env) -> subprocess.Popen:
    """`adapter-registry worker ARGS` as a real process on the same catalog."""
    return subprocess.Popen([sys.executable, "-m", "registry", "worker", *args], cwd=ROOT,
                            env=cli_env(settings, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(pred, *, timeout: float, every: float = 0.05, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
