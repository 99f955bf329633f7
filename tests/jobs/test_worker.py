"""The worker loop in this process: results, failures, backoff, registration, and no torch on import."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from registry.errors import InvalidInput
from registry.jobs.retry import RetryPolicy
from registry.jobs.worker import Worker
from tests.factories import ROOT, cli_env, run_cli


def boom(ctx, payload):
    raise OSError("the disk hiccuped")


def bad_input(ctx, payload):
    raise InvalidInput("this payload will never work")


def test_worker_runs_ready_jobs_and_records_their_results(registry):
    a = registry.jobs.enqueue("noop", {})
    b = registry.jobs.enqueue("sleep", {"seconds": 0.05})
    assert registry.jobs.work() == 2
    got = [registry.jobs.get(j.id) for j in (a, b)]
    assert [j.state for j in got] == ["succeeded", "succeeded"]
    assert got[1].result == {"slept": 0.05} and got[1].finished_at is not None


def test_failing_job_is_retried_with_growing_backoff_then_fails(registry):
    job = registry.jobs.enqueue("boom", {}, max_attempts=3)
    w = Worker(registry.core, tasks={"boom": boom}, kinds=["boom"], retry=RetryPolicy(base_s=0.3, factor=2, jitter=0))
    gaps = []
    for attempt in (1, 2, 3):
        t0 = time.monotonic()
        while w.run(once=True) == 0 or registry.jobs.get(job.id).attempt < attempt:
            time.sleep(0.02)  # not ready yet: the backoff holds it back
        gaps.append(time.monotonic() - t0)
        w.jobs_run = 0
    final = registry.jobs.get(job.id)
    assert final.state == "failed" and [e["attempt"] for e in final.errors] == [1, 2, 3]
    assert final.error == "OSError: the disk hiccuped"
    assert gaps[1] >= 0.28 and gaps[2] >= 0.58, gaps  # 0.3 s, then 0.6 s


def test_error_that_retrying_cannot_fix_fails_the_job_at_once(registry):
    job = registry.jobs.enqueue("bad", {}, max_attempts=5)
    Worker(registry.core, tasks={"bad": bad_input}).run(once=True)
    final = registry.jobs.get(job.id)
    assert final.state == "failed" and final.attempt == 1 and final.errors[0]["outcome"] == "not retryable"


def test_worker_registers_host_device_kinds_and_library_versions(registry):
    w = Worker(registry.core, kinds=["noop"])
    w.run(once=True)
    [info] = registry.jobs.workers(include_stopped=True)
    assert info.id == w.id and info.device == "cpu" and info.kinds == ("noop",) and info.state == "stopped"
    assert info.versions["torch"] and info.pid > 0 and info.host
    assert registry.jobs.workers() == []  # stopped ones are hidden by default


def test_worker_does_not_import_torch_for_jobs_that_do_not_need_it(sqlite_registry):
    registry = sqlite_registry
    registry.jobs.enqueue("noop", {})
    code = ("import sys; from registry.app import Registry; from registry.settings import Settings; "
            "r = Registry(Settings.from_env()); n = r.jobs.work(); print(n, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=cli_env(registry.settings), capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ["1", "False"], out.stderr


def test_cli_lists_jobs_and_workers_as_json(sqlite_registry):
    registry = sqlite_registry
    registry.jobs.enqueue("noop", {})
    env = cli_env(registry.settings)
    run = lambda *a: run_cli(*a, env=env)
    assert run("worker", "--once").returncode == 0
    jobs = json.loads(run("jobs", "ls", "--json").stdout)
    assert [(j["kind"], j["state"]) for j in jobs] == [("noop", "succeeded")]
    workers = json.loads(run("workers", "ls", "--all", "--json").stdout)
    assert workers[0]["state"] == "stopped" and workers[0]["device"] == "cpu"
    shown = run("jobs", "show", str(jobs[0]["id"]))
    assert "succeeded" in shown.stdout
    missing = run("jobs", "show", "999999")
    assert missing.returncode == 3 and "no job 999999" in missing.stderr
