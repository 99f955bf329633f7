"""The registry's gatekeeper: one validation pass per artifact kind, pure functions over bytes and JSON.

- `safetensors.check_header`: a safetensors file's header against the format's rules (the
  reference implementation's `Metadata::validate`, plus what it leaves to chance: duplicate names,
  non-string metadata, an absurd number of entries).
- `config.check_config`: adapter_config.json, before peft_config parses it.
- `folder.check_adapter_folder`: the adapter folder as files (no links, no FIFOs or devices) and
  as weights (dtypes, DoRA magnitudes).
- `base.check_base_folder`: a base model folder (Hugging Face cache snapshots included): index,
  shards, the tensors its architecture needs, shapes against config.json, tokenizer.json.

Every problem is a `Finding` with a stable code (listed in `codes.CODES` and docs/VALIDATION.md),
a one-line message naming the file and the field, and a hint. A folder's findings are reported
together: `raise_findings` raises one error carrying all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from registry.adapters.validate.codes import CODES
from registry.errors import AdapterValidationFailed, BaseValidationFailed, ValidationFailed


@dataclass(frozen=True)
class Finding:
    """One problem: a stable code, the file and field it is about, a one-line message, a hint."""

    code: str
    message: str
    file: str | None = None
    field: str | None = None
    hint: str | None = None

    def __post_init__(self) -> None:
        if self.code not in CODES:  # a code nobody documented is a bug here, not in the input
            raise KeyError(f"undocumented validation code {self.code}")

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "file": self.file, "field": self.field,
                "hint": self.hint if self.hint is not None else CODES[self.code].hint}


def raise_findings(findings: Sequence[Finding], *, kind: str = "adapter") -> None:
    """Raise one error carrying every finding (nothing when there are none)."""
    if not findings:
        return
    cls: type[ValidationFailed] = BaseValidationFailed if kind == "base" else AdapterValidationFailed
    raise cls.of([f.to_dict() for f in findings])


__all__ = ["CODES", "Finding", "raise_findings"]
