"""Jobs and workers: `worker`, `jobs ls|show|cancel|retry|enqueue|wait`, `workers ls`, `verify`, `publish`."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from registry.enums import JobState

from .common import json_option, kv, pass_ctx, print_json, short, table

if TYPE_CHECKING:  # pragma: no cover
    from registry.types import WorkerInfo

JOB_COLUMNS = ("id", "kind", "state", "attempt", "priority", "subject", "worker", "created", "error")


# -- worker ---------------------------------------------------------------------------------------
@click.command("worker")
@click.option("--device", default="cpu", show_default=True, help="Device the tasks run on (cpu, cuda, cuda:1).")
@click.option("--kinds", default=None, help="Comma-separated job kinds to take (default: all known).")
@click.option("--once", is_flag=True, help="Exit when no job is ready instead of waiting for more.")
@click.option("--max-jobs", type=int, default=None, help="Exit after this many jobs.")
@click.option("--lease", "lease_s", type=float, default=60.0, show_default=True,
              help="Seconds a job stays ours without a heartbeat before others rescue it.")
@click.option("--heartbeat", "heartbeat_s", type=float, default=None, help="Seconds between heartbeats (lease/4).")
@click.option("--poll", "poll_s", type=float, default=1.0, show_default=True, help="Seconds between polls when idle.")
@click.option("--rescue-every", "rescue_every_s", type=float, default=5.0, show_default=True,
              help="Seconds between sweeps for jobs of lost workers.")
@click.option("--retry-base", "retry_base_s", type=float, default=5.0, show_default=True,
              help="Backoff after the first failed attempt (x4 per attempt, +-10 % jitter).")
@click.option("--grace", "grace_s", type=float, default=30.0, show_default=True,
              help="On SIGTERM, seconds the current job may take to finish before it is handed back.")
@click.option("--cache-gb", type=float, default=None, help="Base models kept loaded, in GiB (default: 70 % of "
              "the GPU, 40 % of RAM on CPU).")
@click.option("--no-cache", is_flag=True, help="Reload the base model for every job (benchmarks).")
@click.option("-v", "--verbose", is_flag=True, help="Log every job.")
@pass_ctx
def worker_cmd(c, device, kinds, once, max_jobs, lease_s, heartbeat_s, poll_s, rescue_every_s, retry_base_s, grace_s,
               cache_gb, no_cache, verbose) -> None:
    """Run jobs from the catalog's queue until stopped (SIGTERM: finish or hand back the current job)."""
    import logging

    from registry.jobs.retry import RetryPolicy
    from registry.jobs.worker import Worker

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("registry.jobs").setLevel(logging.INFO if verbose else logging.WARNING)
    w = Worker(c.registry.core, device=device,
               kinds=[k.strip() for k in kinds.split(",") if k.strip()] if kinds else None,
               lease_s=lease_s, heartbeat_s=heartbeat_s, poll_s=poll_s, rescue_every_s=rescue_every_s,
               retry=RetryPolicy(base_s=retry_base_s), grace_s=grace_s,
               cache_bytes=int(cache_gb * 1024**3) if cache_gb else None, cache_enabled=not no_cache)
    w.install_signal_handlers()
    n = w.run(once=once, max_jobs=max_jobs)
    click.echo(f"worker {w.id}: {n} job(s)", err=True)


# -- jobs -----------------------------------------------------------------------------------------
@click.group("jobs")
def jobs() -> None:
    """Durable jobs: list, inspect, cancel, retry."""


@jobs.command("ls")
@click.option("--state", type=click.Choice([s.value for s in JobState]))
@click.option("--kind", default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@pass_ctx
def jobs_ls(c, state, kind, limit, as_json) -> None:
    """Jobs, newest first."""
    items = c.registry.jobs.list(state=state, kind=kind, limit=limit)
    if as_json:
        return print_json(items)
    table(JOB_COLUMNS, [_row(j) for j in items])


@jobs.command("show")
@click.argument("job_id", type=int)
@json_option
@pass_ctx
def jobs_show(c, job_id, as_json) -> None:
    """One job with its payload, result, progress and error history."""
    _show(c.registry.jobs.get(job_id), as_json)


@jobs.command("cancel")
@click.argument("job_id", type=int)
@json_option
@pass_ctx
def jobs_cancel(c, job_id, as_json) -> None:
    """Cancel a queued job, or ask a running one to stop at its next check."""
    j = c.registry.jobs.cancel(job_id)
    if as_json:
        return print_json(j)
    click.echo(f"job {j.id}: {'cancel requested' if j.state == 'running' else j.state}")


@jobs.command("retry")
@click.argument("job_id", type=int)
@json_option
@pass_ctx
def jobs_retry(c, job_id, as_json) -> None:
    """Queue a failed or cancelled job again."""
    j = c.registry.jobs.retry(job_id)
    if as_json:
        return print_json(j)
    click.echo(f"job {j.id}: {j.state} (attempt {j.attempt} of {j.max_attempts} used)")


@jobs.command("enqueue")
@click.argument("kind")
@click.option("--payload", default="{}", help="JSON object.")
@click.option("--unique-key", default=None)
@click.option("--priority", type=int, default=0)
@click.option("--max-attempts", type=int, default=3)
@json_option
@pass_ctx
def jobs_enqueue(c, kind, payload, unique_key, priority, max_attempts, as_json) -> None:
    """Add a job of any kind (noop and sleep are there for smoke tests)."""
    from registry.errors import InvalidInput

    try:
        data = json.loads(payload)
    except ValueError as e:
        raise InvalidInput(f"--payload is not JSON: {e}") from e
    j = c.registry.jobs.enqueue(kind, data, unique_key=unique_key, priority=priority, max_attempts=max_attempts)
    _report(j, as_json)


@jobs.command("wait")
@click.argument("job_id", type=int)
@click.option("--timeout", type=float, default=None)
@json_option
@pass_ctx
def jobs_wait(c, job_id, timeout, as_json) -> None:
    """Follow a job to its end (exit code 1 if it failed or was cancelled)."""
    _finish(c, c.registry.jobs.get(job_id), wait=True, timeout=timeout, as_json=as_json)


# -- workers --------------------------------------------------------------------------------------
@click.group("workers")
def workers() -> None:
    """Worker processes registered in the catalog."""


@workers.command("ls")
@click.option("--all", "include_stopped", is_flag=True, help="Include stopped workers.")
@json_option
@pass_ctx
def workers_ls(c, include_stopped, as_json) -> None:
    """Workers, most recently seen first."""
    items = c.registry.jobs.workers(include_stopped=include_stopped)
    if as_json:
        return print_json(items)
    from registry.jobs.queue import aware, utcnow

    now = utcnow()

    def seen(w: WorkerInfo) -> str:
        last = aware(w.last_seen)
        return f"{(now - last).total_seconds():.0f}s ago" if last is not None else ""

    table(("id", "host", "device", "gpu", "memory", "kinds", "state", "job", "last seen", "torch"),
          [(w.id, w.host, w.device, w.gpu_name, _gib(w.gpu_memory), ",".join(w.kinds), w.state, w.current_job_id,
            seen(w), w.versions.get("torch")) for w in items])


# -- verify / publish -----------------------------------------------------------------------------
@click.command("verify")
@click.argument("ref")
@click.option("--base", default=None, help="Verify against this base (default: the version's own).")
@click.option("--dtype", default=None, help="bf16, fp16 or fp32 (default: the base's).")
@click.option("--wait", is_flag=True, help="Follow the job to its end with a progress display.")
@click.option("--inline", is_flag=True, help="Run it in this process instead of a worker (implies --wait).")
@click.option("--device", default="cpu", show_default=True, help="Device for --inline.")
@click.option("--timeout", type=float, default=None, help="Seconds to wait at most.")
@click.option("--engine", type=click.Choice(["peft", "vllm", "llama.cpp"]), default="peft", show_default=True,
              help="peft: merged equals unmerged. vllm / llama.cpp: that engine's greedy output must equal peft's "
                   "(a job like any verify: the worker runs the engine in its pinned environment).")
@click.option("--lora-target-modules", "lora_target_modules", multiple=True, metavar="SUFFIX",
              help="vllm: verify under the server's --lora-target-modules (repeatable; runs here, on the local "
                   "catalog).")
@click.option("--engines-dir", metavar="DIR",
              help="Run the engine from this engines folder, here, on the local catalog (default: the "
                   "engines_dir setting, on the worker).")
@json_option
@pass_ctx
def verify_cmd(c, ref, base, dtype, wait, inline, device, timeout, engine, lora_target_modules, engines_dir,
               as_json) -> None:
    """Enqueue a dynamic verification of NAME@REF: load it on a worker's device and probe it."""
    if engine != "peft" and (lora_target_modules or engines_dir):
        return _verify_engine(c, ref, base=base, dtype=dtype, device=device, engine=engine,
                              serving={"lora_target_modules": list(lora_target_modules)} if lora_target_modules
                              else None, engines_dir=engines_dir, as_json=as_json)
    j = c.registry.jobs.verify(ref, base=base, dtype=dtype, engine=engine, inline=inline, device=device)
    _finish(c, j, wait=wait or inline, timeout=timeout, as_json=as_json)


def _verify_engine(c, ref, *, base, dtype, device, engine, serving, engines_dir, as_json) -> None:
    """An engine verification, in this process on the local catalog (recorded at once)."""
    from registry import dtypes
    from registry.workflows import verify as verify_wf

    from .server import _local

    click.echo(f"verifying {ref} on {engine} (the engine starts in its own process) ...", err=True)
    v = verify_wf.verify(_local(c).core, ref, base=base, dtype=dtypes.optional(dtype), device=device, engine=engine,
                         engines_dir=engines_dir, serving=serving)
    if as_json:
        print_json(v)
    else:
        f = v.figures
        kv([("ref", v.ref), ("engine", f"{engine} {v.versions.get('engine_version')}"),
            ("passed", v.passed), ("device", v.device_kind), ("dtype", v.dtype),
            ("tokens equal (adapter / base)", f"{f.get('adapter_tokens_equal')} / {f.get('base_tokens_equal')}"),
            ("max logprob diff", f.get("adapter_max_logprob_diff")), ("seconds", f"{v.duration_s:.1f}")])
        for r in f.get("reasons", []):
            click.echo(f"  - {r}")
    if not v.passed:
        sys.exit(1)


@click.command("publish")
@click.argument("ref")
@click.option("--to", "target", required=True, help="dir:///path, s3://bucket/prefix or hf://org/repo[@revision].")
@click.option("--dtype", default=None, help="bf16, fp16 or fp32 (default: the base's).")
@click.option("--force", is_flag=True, help="Publish without a verified merge (recorded as forced).")
@click.option("--wait", is_flag=True, help="Follow the job to its end.")
@click.option("--inline", is_flag=True, help="Run it in this process instead of a worker (implies --wait).")
@click.option("--device", default="cpu", show_default=True, help="Device for --inline.")
@click.option("--timeout", type=float, default=None)
@json_option
@pass_ctx
def publish_cmd(c, ref, target, dtype, force, wait, inline, device, timeout, as_json) -> None:
    """Merge NAME@REF if needed, then publish the merged model to TARGET."""
    j = c.registry.jobs.publish(ref, to=target, dtype=dtype, force=force, inline=inline, device=device)
    _finish(c, j, wait=wait or inline, timeout=timeout, as_json=as_json)


# -- rendering ------------------------------------------------------------------------------------
def _finish(c, job, *, wait: bool, timeout: float | None, as_json: bool) -> None:
    if wait and job.state in ("queued", "running"):
        with _follow() as on_progress:
            job = c.registry.jobs.wait(job.id, timeout=timeout, progress=on_progress)
    if wait:
        _show(job, as_json)
        if job.state != "succeeded":
            sys.exit(1)
    else:
        _report(job, as_json)


def _report(j, as_json: bool) -> None:
    if as_json:
        return print_json(j)
    how = "queued" if j.created else f"already {j.state}"
    click.echo(f"job {j.id} ({j.kind}): {how}" + ("" if j.created or j.state != "succeeded" else " (cached)"))


def _show(j, as_json: bool) -> None:
    if as_json:
        return print_json(j)
    kv([("job", j.id), ("kind", j.kind), ("state", j.state), ("attempt", f"{j.attempt} of {j.max_attempts}"),
        ("priority", j.priority), ("unique key", j.unique_key), ("worker", j.worker_id),
        ("created", f"{j.created_at:%Y-%m-%d %H:%M:%S} by {j.created_by}"),
        ("started", j.started_at and f"{j.started_at:%Y-%m-%d %H:%M:%S}"),
        ("finished", j.finished_at and f"{j.finished_at:%Y-%m-%d %H:%M:%S}"),
        ("cancel asked", "yes" if j.cancel_requested else None), ("payload", json.dumps(j.payload)),
        ("progress", j.progress and f"{j.progress.get('stage')} {j.progress.get('done')}/{j.progress.get('total')}"),
        ("result", j.result and json.dumps(j.result, default=str)[:2000]), ("error", j.error)])
    for e in j.errors:
        click.echo(f"  attempt {e.get('attempt')}: {e.get('error')} -> {e.get('outcome')}")


def _row(j):
    subject = j.payload.get("ref") or j.payload.get("requested") or ""
    return (j.id, j.kind, j.state, f"{j.attempt}/{j.max_attempts}", j.priority, subject, short(j.worker_id, 24),
            f"{j.created_at:%Y-%m-%d %H:%M:%S}", (j.error or "")[:60])


def _gib(n):
    return None if n is None else f"{n / 1024**3:.0f} GiB"


@contextmanager
def _follow():
    """A progress display fed by the job's stored progress (stage, done, total)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as p:
        task = p.add_task("queued", total=None)

        def update(job) -> None:
            prog = job.progress or {}
            desc = f"job {job.id} {job.kind}: {job.state}" + (f" ({prog['stage']})" if prog.get("stage") else "")
            p.update(task, description=desc, completed=prog.get("done") or 0, total=prog.get("total") or None)

        yield update


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (worker_cmd, jobs, workers, verify_cmd, publish_cmd)
