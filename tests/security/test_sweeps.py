"""Temp files of killed pushes and uploads are swept at server start and by gc; fresh ones survive.

Nothing is killed for real: stale files are made by setting old mtimes on what a killed upload
(home/tmp/uploads/<id>/...) or a killed store write (store/tmp/put-...) leaves behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.factories import ROOT, cli_env, wait_for

DAY = 24 * 3600


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (t, t))


def _leftovers(settings) -> dict[str, Path]:
    """A stale upload folder, a stale store temp file, a stale stray under home/tmp, and fresh ones of each."""
    home, store = settings.home, Path(settings.store_url)
    out = {}
    for name, age in (("old", 2 * DAY), ("new", 60)):
        up = home / "tmp" / "uploads" / f"{name}-upload"
        (up / "checkpoint-1").mkdir(parents=True)
        (up / "checkpoint-1" / "adapter_model.safetensors").write_bytes(b"x" * 10)
        _age(up, age)
        put = store / "tmp" / f"put-{name}"
        put.parent.mkdir(parents=True, exist_ok=True)
        put.write_bytes(b"y")
        _age(put, age)
        stray = home / "tmp" / f"stray-{name}"
        stray.write_bytes(b"z")
        _age(stray, age)
        out.update({f"upload-{name}": up, f"put-{name}": put, f"stray-{name}": stray})
    return out


def _assert_swept(files: dict[str, Path]) -> None:
    gone = sorted(k for k, p in files.items() if not p.exists())
    assert gone == ["put-old", "stray-old", "upload-old"], gone
    assert (files["upload-new"].parent).is_dir()  # the uploads folder itself stays


def test_an_upload_folder_being_written_counts_as_fresh_even_if_the_folder_is_old(sqlite_registry):
    from registry.release.gc import sweep_temp

    up = sqlite_registry.settings.home / "tmp" / "uploads" / "busy"
    (up / "sub").mkdir(parents=True)
    _age(up, 2 * DAY)
    (up / "sub" / "part").write_bytes(b"still arriving")  # written just now
    assert sweep_temp(sqlite_registry.store, home=sqlite_registry.settings.home, older_than_s=DAY) == 0
    assert up.is_dir()


def test_gc_sweeps_stale_temp_files_and_keeps_fresh_ones(sqlite_registry):
    from registry.release import gc as G

    files = _leftovers(sqlite_registry.settings)
    s = sqlite_registry.settings
    G.collect(sqlite_registry.db, sqlite_registry.store, home=s.home, temp_max_age_s=s.temp_max_age_s)
    _assert_swept(files)


def test_release_gc_sweeps_stale_uploads_and_temp_files_too(sqlite_registry):
    files = _leftovers(sqlite_registry.settings)
    sqlite_registry.release.gc()
    _assert_swept(files)


def test_a_dry_run_gc_sweeps_nothing(sqlite_registry):
    from registry.release import gc as G

    files = _leftovers(sqlite_registry.settings)
    G.collect(sqlite_registry.db, sqlite_registry.store, dry_run=True, home=sqlite_registry.settings.home)
    assert all(p.exists() for p in files.values())


def test_the_threshold_is_the_temp_max_age_setting(sqlite_registry):
    from registry.release.gc import sweep_temp

    files = _leftovers(sqlite_registry.settings)
    assert sweep_temp(sqlite_registry.store, home=sqlite_registry.settings.home, older_than_s=3 * DAY) == 0
    assert sweep_temp(sqlite_registry.store, home=sqlite_registry.settings.home, older_than_s=30) == 6
    assert not any(p.exists() for p in files.values())


def test_the_server_sweeps_stale_temp_files_when_it_starts(sqlite_registry):
    files = _leftovers(sqlite_registry.settings)
    env = {**os.environ, **cli_env(sqlite_registry.settings)}
    proc = subprocess.Popen([sys.executable, "-m", "registry", "serve", "--port", "0"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: not files["upload-old"].exists() or proc.poll() is not None, timeout=30,
                 what="the server's start-up sweep")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
    _assert_swept(files)
    assert "removed 3 stale temp file(s)" in err, err
