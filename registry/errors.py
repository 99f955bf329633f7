"""Every error the registry raises.

One root (`RegistryError`); each subclass also inherits the matching builtin so that callers can
catch `LookupError`, `ValueError`, ... without knowing this module. Context travels as attributes,
`status` is the HTTP status the API answers with, and the class docstring is the default message.
Foreign errors (SQLAlchemy, botocore, HTTP) are translated at the boundary with `raise ... from e`.
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """The adapter registry failed."""

    status: int = 500
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

    status = 400
    code = "invalid_input"


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


class CorruptFile(InvalidInput):
    """A file is corrupt or truncated."""

    code = "corrupt_file"


class InvalidModel(InvalidInput):
    """The folder is not a valid Hugging Face model."""

    code = "invalid_model"


class Incompatible(RegistryError, ValueError):
    """The adapter does not fit the base model."""

    status = 422
    code = "incompatible"


class NotFound(RegistryError, LookupError):
    """Not found."""

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


class Conflict(RegistryError):
    """The request conflicts with the catalog's current state."""

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

    status = 500
    code = "integrity_failure"


class StorageError(RegistryError, OSError):
    """The artifact store failed."""

    status = 503
    code = "storage_error"


class DiskFull(StorageError):
    """No space left on the device."""

    status = 507
    code = "disk_full"


class MergeError(RegistryError, RuntimeError):
    """The merge failed."""

    status = 422
    code = "merge_error"


class Unsupported(MergeError, NotImplementedError):
    """The streaming engine cannot do this exactly."""

    code = "unsupported"


class Unauthorized(RegistryError, PermissionError):
    """A valid token is required."""

    status = 401
    code = "unauthorized"


class Forbidden(RegistryError, PermissionError):
    """The token does not allow this."""

    status = 403
    code = "forbidden"


class TooLarge(InvalidInput):
    """The upload is too large."""

    status = 413
    code = "too_large"


def translate_os_error(e: OSError, *, path: str | None = None) -> RegistryError:
    """Map an OSError to ours (ENOSPC becomes DiskFull)."""
    import errno

    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"no space left on device while writing {path or e.filename}", path=path)
    return StorageError(f"{e.strerror or e} ({path or e.filename})", path=path)
