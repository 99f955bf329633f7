"""Jobs and workers: list and follow them, enqueue verify / merge / publish, cancel and retry.

What a job shows to anyone but the unrestricted admin carries no server path: absolute paths in
its error, errors and result are replaced (registry.api.views.redact_paths), whatever the worker wrote. With closed
reads a namespaced token sees only the jobs of its namespace (registry.jobs), and workers (hosts,
processes, devices) are for admin tokens.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from registry import types as T
from registry.api.deps import Reader, Writer
from registry.api.errors import responses
from registry.api.render import json
from registry.api.views import check_workers, shown
from registry.enums import Engine, JobState

router = APIRouter(prefix="/api/v1", tags=["jobs"])
JobId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ENQUEUE_ERRORS = responses(400, 401, 403, 404, 409, 422)
Dtype = Literal["bfloat16", "bf16", "float16", "fp16", "float32", "fp32"]
@router.get("/jobs", response_model=list[T.Job], responses=responses(400, 401, 403, 422))
def list_jobs(caller: Reader, state: JobState | None = None,
              kind: Annotated[str | None, Query(max_length=50)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 50):
    """Jobs, newest first."""
    return json([shown(j, caller) for j in caller.registry.jobs.list(state=state, kind=kind, limit=limit)])


@router.get("/jobs/{job_id}", response_model=T.Job, responses=responses(401, 403, 404, 422))
def show_job(job_id: JobId, caller: Reader):
    """One job: state, attempts, progress, errors, result."""
    return json(shown(caller.registry.jobs.get(job_id), caller))


def _job_subject(job: T.Job) -> str | None:
    ref = (job.payload or {}).get("ref")
    return str(ref).partition("@")[0] if ref else None


@router.post("/jobs/{job_id}/cancel", response_model=T.Job, responses=responses(401, 403, 404, 409, 422))
def cancel_job(job_id: JobId, caller: Writer):
    """Cancel a queued job, or ask a running one to stop at its next check."""
    jobs = caller.registry.jobs
    caller.can_write(_job_subject(jobs.get(job_id)) or "")  # a namespaced token: only jobs in its namespace
    return json(shown(jobs.cancel(job_id), caller))


@router.post("/jobs/{job_id}/retry", response_model=T.Job, responses=responses(401, 403, 404, 409, 422))
def retry_job(job_id: JobId, caller: Writer):
    """Queue a failed or cancelled job again."""
    jobs = caller.registry.jobs
    caller.can_write(_job_subject(jobs.get(job_id)) or "")  # a namespaced token: only jobs in its namespace
    return json(shown(jobs.retry(job_id), caller))


@router.get("/workers", response_model=list[T.WorkerInfo], responses=responses(401, 403, 422))
def list_workers(caller: Reader, stopped: Annotated[bool, Query(description="Include stopped workers.")] = False):
    """Registered workers, most recently seen first (admin scope when reads are closed)."""
    check_workers(caller)
    return json(caller.registry.jobs.workers(include_stopped=stopped))


class VerifyIn(BaseModel):
    base: str | None = Field(default=None, max_length=200, description="Verify against this base instead")
    dtype: Dtype | None = None
    engine: Literal["peft", "vllm", "llama.cpp"] = Field(
        default="peft", description="peft (the reference), or a serving engine whose output must equal peft's")


class MergeIn(BaseModel):
    dtype: Dtype | None = None
    engine: Engine = Engine.AUTO
    validate_logits: bool = Field(default=False, alias="validate", description="Also compare logits")
    device: str | None = Field(default=None, max_length=20, pattern=r"^(cpu|cuda(:\d+)?)$",
                               description="Merge on this device (default: the device of the worker that takes it)")


class PublishIn(BaseModel):
    to: str = Field(max_length=2000, description="dir:///path, s3://bucket/prefix or hf://org/repo[@revision]")
    dtype: Dtype | None = None
    engine: Engine = Engine.AUTO
    force: bool = Field(default=False, description="Publish without a passing verification (admin scope)")


def _status(job: T.Job) -> int:
    return 202 if job.created else 200


@router.post("/adapters/{name:path}/versions/{ref}/verify", response_model=T.Job, status_code=202,
             responses={200: {"model": T.Job, "description": "The same verification is already queued or done"},
                        **ENQUEUE_ERRORS})
def verify(name: str, ref: str, caller: Writer, body: Annotated[VerifyIn, Body()] = VerifyIn()):
    """Enqueue a dynamic verification of a version (a worker loads base and adapter and compares)."""
    caller.can_write(name)
    job = caller.registry.jobs.verify(f"{name}@{ref}", base=body.base, dtype=body.dtype, engine=body.engine)
    return json(shown(job, caller), _status(job))


@router.post("/adapters/{name:path}/versions/{ref}/merge", response_model=T.Job, status_code=202,
             responses={200: {"model": T.Job, "description": "Already merged (or queued)"}, **ENQUEUE_ERRORS})
def merge(name: str, ref: str, caller: Writer, body: Annotated[MergeIn, Body()] = MergeIn()):
    """Enqueue a merge of a version into its base."""
    caller.can_write(name)
    job = caller.registry.jobs.merge_async(f"{name}@{ref}", dtype=body.dtype, engine=body.engine,
                                           validate=body.validate_logits, device=body.device)
    return json(shown(job, caller), _status(job))


@router.post("/adapters/{name:path}/versions/{ref}/publish", response_model=T.Job, status_code=202,
             responses={200: {"model": T.Job, "description": "The same publish is already queued"},
                        **ENQUEUE_ERRORS})
def publish(name: str, ref: str, body: Annotated[PublishIn, Body()], caller: Writer):
    """Enqueue: merge if needed, then publish the merged model to a target."""
    caller.can_write(name, scope="admin" if body.force else "write")
    job = caller.registry.jobs.publish(f"{name}@{ref}", to=body.to, dtype=body.dtype, force=body.force,
                                       engine=body.engine)
    return json(shown(job, caller), _status(job))


@router.get("/adapters/{name:path}/versions/{ref}/merged", response_model=list[T.MergedArtifact],
            responses=responses(400, 401, 403, 404, 422))
def merged(name: str, ref: str, caller: Reader):
    """Merged artifacts of a version (every base revision, dtype and engine)."""
    caller.can_read(name)
    return json(caller.registry.merged(f"{name}@{ref}"))
