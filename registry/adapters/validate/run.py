"""Validate a folder before any push: the same passes push and add_base run, every finding listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry.adapters.validate.files import kind


def check_path(path: Path, *, max_header_bytes: int = 100 * 1024 * 1024) -> tuple[str, list[dict[str, Any]]]:
    """(what the folder is: "adapter" or "base", every finding as a dict). An adapter folder has
    adapter_config.json (or Trainer checkpoints holding one); a base folder has config.json.

    Raises:
        InvalidAdapter / UnsafeFormat: neither kind of folder, or pickle weights only
    """
    from registry.adapters.basemodel import fingerprint_base
    from registry.adapters.inspect import CONFIG, inspect_adapter
    from registry.errors import InvalidAdapter, ValidationFailed

    path = Path(path)
    is_base = kind(path / CONFIG) == "missing" and kind(path / "config.json") != "missing"
    try:
        if is_base:
            fingerprint_base(path, max_header_bytes=max_header_bytes)
        else:
            inspect_adapter(path, max_header_bytes=max_header_bytes)
    except ValidationFailed as e:
        return ("base" if is_base else "adapter"), list(e.context.get("findings") or [])
    except InvalidAdapter:
        raise
    return ("base" if is_base else "adapter"), []


def folder_report(path: Path, *, max_header_bytes: int = 100 * 1024 * 1024) -> dict[str, Any]:
    """`check PATH --json` without a base: {path, kind, status (ok|refused), findings, compat: None}."""
    what, findings = check_path(path, max_header_bytes=max_header_bytes)
    return {"path": str(path), "kind": what, "status": "refused" if findings else "ok", "findings": findings,
            "compat": None}
