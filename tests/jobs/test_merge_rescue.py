"""A worker SIGKILLed in the middle of a merge: another worker rescues the job and completes it,
and nothing partial is ever visible: no catalog row, no merged folder, no published artifact."""

from __future__ import annotations

import signal

from sqlalchemy import func, select

from registry.catalog import models as M
from registry.storage.cache import MARKER
from tests.factories import push, start_worker, wait_for


def merged_rows(reg) -> int:
    with reg.db.read() as s:
        return s.scalar(select(func.count()).select_from(M.MergedArtifact))


def visible_merged_folders(reg) -> list:
    root = reg.settings.cache_dir / "merged"
    return [p for p in root.iterdir() if not p.name.startswith(".")] if root.exists() else []


def test_worker_killed_mid_merge_is_rescued_and_completed_with_no_partial_output(sqlite_registry, tiny_llama,
                                                                               tiny_adapter):
    from transformers import AutoModelForCausalLM

    reg = sqlite_registry
    ref = push(reg, tiny_llama, tiny_adapter)
    # throttle_s slows each progress report (one per tensor) so that the kill lands mid-merge
    job = reg.jobs.enqueue("merge", {"ref": ref, "dtype": "float32", "throttle_s": 0.15})
    a = start_worker(reg.settings, "--lease", "2", "--heartbeat", "0.3", "--poll", "0.1", "--kinds", "merge")
    try:
        wait_for(lambda: ((reg.jobs.get(job.id).progress or {}).get("done") or 0) >= 3, timeout=60,
                 what="worker A to be half-way through the merge")
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
    mid = reg.jobs.get(job.id)
    assert mid.state == "running" and mid.progress["done"] < mid.progress["total"]
    assert merged_rows(reg) == 0 and visible_merged_folders(reg) == []

    b = start_worker(reg.settings, "--lease", "10", "--poll", "0.1", "--rescue-every", "0.2", "--retry-base", "0.1",
                     "--kinds", "merge")
    try:
        done = wait_for(lambda: (j := reg.jobs.get(job.id)).state in ("succeeded", "failed") and j, timeout=90,
                        what="worker B to rescue and finish the merge")
    finally:
        b.send_signal(signal.SIGTERM)
        b.wait(timeout=20)
    assert done.state == "succeeded", done.error
    assert done.attempt == 2 and "lease expired" in done.errors[0]["error"]
    assert merged_rows(reg) == 1
    [art] = reg.show(ref).merged
    assert all(reg.store.verify(f["digest"]) for f in art.files.values())
    [folder] = visible_merged_folders(reg)
    assert sorted(p.name for p in folder.iterdir() if p.name != MARKER) == sorted(art.files)  # MARKER: its seal
    AutoModelForCausalLM.from_pretrained(folder)
