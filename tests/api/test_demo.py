"""`make run` (python -m registry demo): seeds an empty catalog, serves it with a worker, stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.factories import start_serving

ROOT = Path(__file__).resolve().parents[2]


def start(home: Path) -> tuple[subprocess.Popen, str, list[str]]:
    env = {**os.environ, "ADAPTER_REGISTRY_HOME": str(home)}
    for k in ("ADAPTER_REGISTRY_DB", "ADAPTER_REGISTRY_STORE", "ADAPTER_REGISTRY_REMOTE", "ADAPTER_REGISTRY_CACHE"):
        env.pop(k, None)
    p, url, lines = start_serving(["demo", "--port", "0"], env=env, timeout=180)
    if url is not None:
        return p, url, lines
    p.kill()
    pytest.fail("the demo did not start:\n" + "".join(lines))


def stop(p: subprocess.Popen) -> str:
    p.send_signal(signal.SIGINT)
    try:
        rest = p.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("Ctrl-C did not stop the demo within 30 s")
    assert p.returncode == 0, rest
    return rest


def test_demo_seeds_an_empty_catalog_serves_it_and_stops_on_ctrl_c(tmp_path):
    p, url, lines = start(tmp_path / "home")
    try:
        out = "".join(lines)
        assert "seeding a demo catalog" in out
        page = httpx.get(url + "/", timeout=10).text
        assert len(re.findall(r'class="version-row', page)) == 7
        assert 'id="metrics-chart"' in httpx.get(url + "/adapters/team-a/support-bot", timeout=10).text
        v = httpx.get(url + "/api/v1/adapters/team-a/support-bot/versions/production", timeout=10).json()
        assert v["version"] == 2 and v["merged"] and v["publications"] and v["verifications"][0]["passed"]
        assert Path(v["publications"][0]["uri"].removeprefix("dir://")).is_dir() or v["publications"][0]["uri"]
        workers = httpx.get(url + "/api/v1/workers", timeout=10).json()
        assert [w["state"] for w in workers if w["state"] != "stopped"]  # the in-process worker
    finally:
        rest = stop(p)
    assert "stopped" in rest
    p, url, lines = start(tmp_path / "home")  # a populated catalog is served as it is
    try:
        assert "seeding" not in "".join(lines)
        assert len(httpx.get(url + "/api/v1/adapters", timeout=10).json()["items"]) == 7
    finally:
        stop(p)
