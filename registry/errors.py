"""Every error the registry raises.

One root (`RegistryError`); each subclass also inherits the matching builtin so that callers can
catch `LookupError`, `ValueError`, ... without knowing this module. Context travels as attributes,
`status` is the HTTP status the API answers with, `exit_code` the CLI's exit status (one per
meaning: EXIT_CODES), and the class docstring is the default message. The CLI, the HTTP API and
the client derive their tables from these classes (`by_code`, `for_status`), never keep their own.
Foreign errors (SQLAlchemy, botocore, HTTP) are translated at the boundary with `raise ... from e`.
"""

from __future__ import annotations

from typing import Any

# The CLI's exit statuses, each with one meaning (the README's "Exit codes" table lists them).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "failed: an unexpected error, or the job that was waited for failed or was cancelled",
    2: "bad input: invalid arguments, names, files or requests; the adapter does not fit its base",
    3: "not found: no such adapter, version, base model, blob, job or token",
    4: "conflict: it exists already, or a promotion or publish gate refused it",
    5: "not allowed: no valid token, or the token does not allow this",
    6: "disk full: no space left while writing",
    7: "unavailable: the artifact store or the registry server cannot be reached",
    8: "merge failed: the merge or its validation failed at run time (the input was accepted)",
    9: "integrity failure: stored bytes do not match their digest",
    10: "timed out: waiting for a job ended before the job did (the job goes on)",
    130: "interrupted (Ctrl-C)",
}


class RegistryError(Exception):
    """The adapter registry failed."""

    status: int = 500
    exit_code: int = 1
    code: str = "registry_error"
    hint: str | None = None

    def __init__(self, message: str | None = None, *, hint: str | None = None, **context: Any):
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        if hint is not None:
            self.hint = hint
        self.context = context
        for key, value in context.items():
            setattr(self, key, value)
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The one JSON error shape of the CLI (--json) and the HTTP API."""
        out: dict[str, Any] = {"error": self.code, "message": self.message, "status": self.status}
        if self.hint:
            out["hint"] = self.hint
        ctx = {k: v for k, v in self.context.items() if isinstance(v, (str, int, float, bool, list, type(None)))}
        if ctx:
            out["context"] = ctx
        return out


class InvalidInput(RegistryError, ValueError):
    """The input is not valid."""

    exit_code = 2
    status = 400
    code = "invalid_input"


class InvalidRequest(InvalidInput):
    """The request or its content is not valid."""

    status = 422
    code = "invalid_request"


class Incompatible(InvalidInput):
    """The adapter does not fit the base model."""

    status = 422
    code = "incompatible"


class InvalidName(InvalidInput):
    """The name is not valid."""

    code = "invalid_name"
    hint = "names match [a-z0-9][a-z0-9._-]*(/[a-z0-9._-]+)?, e.g. team-a/support-bot"


class InvalidAdapter(InvalidInput):
    """The folder is not a valid PEFT adapter."""

    code = "invalid_adapter"


class UnsafeFormat(InvalidAdapter):
    """Pickle weights are refused: they can run code when loaded."""

    code = "unsafe_format"
    hint = "convert to safetensors (peft: model.save_pretrained(dir, safe_serialization=True))"


class ValidationFailed(InvalidInput):
    """The folder failed validation."""

    status = 422
    code = "validation_failed"

    @classmethod
    def of(cls, findings: list[dict[str, Any]]) -> ValidationFailed:
        """One error for every finding of a folder: the first one's message and hint, "and N more".

        Each finding ({code, message, file, field, hint}) is in `.findings` and in the API error's context.
        """
        first = findings[0]
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        return cls(f"{first['message']}{more}", hint=first.get("hint"), findings=findings,
                   codes=[f["code"] for f in findings])


class AdapterValidationFailed(ValidationFailed, InvalidAdapter):
    """The adapter folder failed validation: nothing was registered."""

    code = "adapter_validation_failed"


class CorruptFile(InvalidInput):
    """A file is corrupt or truncated."""

    code = "corrupt_file"


class InvalidModel(InvalidInput):
    """The folder is not a valid Hugging Face model."""

    code = "invalid_model"


class BaseValidationFailed(ValidationFailed, InvalidModel):
    """The base model folder failed validation: nothing was registered."""

    code = "base_validation_failed"


class NotFound(RegistryError, LookupError):
    """Not found."""

    exit_code = 3
    status = 404
    code = "not_found"


class AdapterNotFound(NotFound):
    """No such adapter."""

    code = "adapter_not_found"


class VersionNotFound(NotFound):
    """No such adapter version."""

    code = "version_not_found"


class BaseModelNotFound(NotFound):
    """No such base model."""

    code = "base_model_not_found"
    hint = "register it first: adapter-registry base add PATH --name NAME"


class BlobNotFound(NotFound, FileNotFoundError):
    """The blob is not in the artifact store."""

    code = "blob_not_found"


class JobNotFound(NotFound):
    """No such job."""

    code = "job_not_found"


class TokenNotFound(NotFound):
    """No such token."""

    code = "token_not_found"


class Conflict(RegistryError):
    """The request conflicts with the catalog's current state."""

    exit_code = 4
    status = 409
    code = "conflict"


class AlreadyExists(Conflict):
    """It already exists."""

    code = "already_exists"


class PolicyViolation(Conflict):
    """The move breaks the alias's promotion policy."""

    code = "policy_violation"


class IntegrityFailure(RegistryError, OSError):
    """Stored bytes do not match their digest."""

    exit_code = 9
    status = 500
    code = "integrity_failure"


class StorageError(RegistryError, OSError):
    """The artifact store failed."""

    exit_code = 7
    status = 503
    code = "storage_error"


class DiskFull(StorageError):
    """No space left on the device."""

    exit_code = 6
    status = 507
    code = "disk_full"


class MergeError(RegistryError, RuntimeError):
    """The merge failed."""

    exit_code = 8
    status = 500
    code = "merge_error"


class EngineFailed(RegistryError, RuntimeError):
    """The serving engine's process failed (its own message is kept)."""

    exit_code = 1
    status = 502
    code = "engine_failed"


class EngineInstallFailed(EngineFailed):
    """Building a serving-engine environment failed (its log has the details)."""

    code = "engine_install_failed"


class DeployFailed(EngineFailed):
    """Deploying to vLLM failed: it refused a load or unload (its answer is kept), or could not be reached."""

    code = "deploy_failed"


class Unsupported(InvalidInput, NotImplementedError):
    """The streaming engine cannot do this exactly."""

    status = 422
    code = "unsupported"


class Unauthorized(RegistryError, PermissionError):
    """A valid token is required."""

    exit_code = 5
    status = 401
    code = "unauthorized"


class Forbidden(RegistryError, PermissionError):
    """The token does not allow this."""

    exit_code = 5
    status = 403
    code = "forbidden"


class TooLarge(InvalidInput):
    """The upload is too large."""

    status = 413
    code = "too_large"


class RangeNotSatisfiable(InvalidInput):
    """The byte range is not satisfiable."""

    status = 416
    code = "range_not_satisfiable"


class MethodNotAllowed(InvalidInput):
    """The method is not allowed on this route."""

    status = 405
    code = "method_not_allowed"


class RemoteUnsupported(InvalidInput, AttributeError):
    """Not available through the HTTP API."""

    code = "remote_unsupported"
    hint = "run it where the catalog is, without --remote"


class Unreachable(StorageError):
    """The registry server cannot be reached."""

    code = "unreachable"
    hint = "check --remote / ADAPTER_REGISTRY_REMOTE and that the server runs"


class JobTimeout(RegistryError, TimeoutError):
    """Waiting for the job timed out (the job goes on)."""

    status = 504
    exit_code = 10
    code = "job_timeout"


class StopTask(BaseException):
    """Raised inside a job's task to unwind it. BaseException: a task's `except Exception` must not eat it.

    `why` is "cancelled" (the user cancelled it), "stopping" (the worker hands the job back) or
    "lost" (the lease expired and the job was rescued). Control flow between a worker and its
    task, never shown to a user.
    """

    def __init__(self, why: str):
        self.why = why
        super().__init__(why)


class Rollback(Exception):
    """Raised inside a write transaction to undo it (dry runs) while keeping what it computed.

    Control flow inside registry.release, never shown to a user.
    """

    def __init__(self, result: Any):
        self.result = result
        super().__init__("rolled back")


def classes() -> list[type[RegistryError]]:
    """Every RegistryError class, the root first, then breadth first in definition order."""
    out: list[type[RegistryError]] = []
    todo: list[type[RegistryError]] = [RegistryError]
    while todo:
        c = todo.pop(0)
        if c not in out:
            out.append(c)
            todo.extend(c.__subclasses__())
    return out


def by_code() -> dict[str, type[RegistryError]]:
    """{code: class}: how a client turns a JSON error body back into our exception."""
    return {c.code: c for c in reversed(classes())}


def for_status(status: int) -> type[RegistryError]:
    """The most general class answering with `status` (RegistryError when none does)."""
    return next((c for c in classes() if c.status == status), RegistryError)


def translate_os_error(e: OSError, *, path: str | None = None) -> RegistryError:
    """Map an OSError to ours (ENOSPC becomes DiskFull)."""
    import errno

    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"no space left on device while writing {path or e.filename}", path=path)
    return StorageError(f"{e.strerror or e} ({path or e.filename})", path=path)
