"""A safetensors header against the format's rules, over bytes (no torch, no file access).

The rules of the reference implementation (huggingface/safetensors, `SafeTensors::read_metadata`
and `Metadata::validate`): the 8-byte length within bounds and within the file; the header UTF-8
JSON, an object, starting with '{'; `__metadata__` string to string; each entry exactly dtype,
shape, data_offsets with a known dtype and a shape whose element and byte counts do not overflow
64 bits (sub-byte dtypes end on a byte boundary); sorted by offset, the tensors tile the data
section exactly: each starts where the previous one ended, the first at 0, the last at the end of
the file (no gap, no overlap, no trailing byte). Added here because the reference leaves them to
chance: two entries with one name (serde keeps one of them silently), and an entry-count cap.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from registry.adapters.validate import Finding, strictjson

MAX_HEADER = 100_000_000  # the reference implementation's MAX_HEADER_SIZE
MAX_ENTRIES = 100_000  # the largest real checkpoints hold a few thousand tensors per file
U64 = 2**64 - 1
# bits per element of every dtype the format defines (safetensors 0.8)
BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32,
    "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}
FLOAT_DTYPES = frozenset({"F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
                          "F8_E5M2FNUZ", "F16", "BF16", "F32", "F64"})
ENTRY_FIELDS = {"dtype", "shape", "data_offsets"}


@dataclass(frozen=True)
class Entry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # relative to the data section
    end: int


@dataclass
class HeaderCheck:
    """What `check_header` found: the findings, and the entries when the header could be read."""

    findings: list[Finding] = field(default_factory=list)
    header_len: int = 0
    entries: list[Entry] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def data_start(self) -> int:
        return 8 + self.header_len


def header_length(name: str, first8: bytes, size: int, *,
                  max_header_bytes: int = MAX_HEADER) -> tuple[int, Finding | None]:
    """The header length from the first 8 bytes, or the finding that forbids reading further."""
    if size < 8 or len(first8) < 8:
        return 0, Finding("ST_TOO_SMALL", f"{name}: not a safetensors file (only {size} bytes)", file=name)
    (n,) = struct.unpack("<Q", first8[:8])
    if n > max_header_bytes:
        return n, Finding("ST_HEADER_TOO_LARGE", f"{name}: safetensors header of {n} bytes exceeds the limit of "
                          f"{max_header_bytes}", file=name, field="header length")
    if 8 + n > size:
        return n, Finding("ST_HEADER_LENGTH", f"{name}: truncated safetensors file (header says {n} bytes, file has "
                          f"{size - 8})", file=name, field="header length")
    return n, None


def _is_uint(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= U64


def check_header(name: str, data: bytes, size: int | None = None, *, max_header_bytes: int = MAX_HEADER,
                 max_entries: int = MAX_ENTRIES) -> HeaderCheck:
    """Check a safetensors header. `data` holds at least the file's first 8 + header-length bytes, `size`
    is the whole file's size (default: len(data))."""
    size = len(data) if size is None else size
    out = HeaderCheck()
    n, bad = header_length(name, data[:8], size, max_header_bytes=max_header_bytes)
    out.header_len = n
    if bad:
        out.findings.append(bad)
        return out
    raw = data[8:8 + n]

    def add(code: str, msg: str, fld: str | None = None) -> None:
        out.findings.append(Finding(code, f"{name}: {msg}", file=name, field=fld))

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        add("ST_HEADER_NOT_UTF8", "safetensors header is not valid JSON (not UTF-8)")
        return out
    if not text.startswith("{"):
        add("ST_HEADER_START", "safetensors header is not valid JSON: it does not start with '{'")
        return out
    try:
        parsed = strictjson.loads(text)
    except RecursionError:
        add("ST_HEADER_JSON", "safetensors header is not valid JSON (nested too deep)")
        return out
    except ValueError as e:
        add("ST_HEADER_JSON", f"safetensors header is not valid JSON ({e.__class__.__name__})")
        return out
    if parsed.constant is not None:
        add("ST_HEADER_JSON", f"safetensors header is not valid JSON ({parsed.constant} is no JSON token)")
        return out
    if parsed.duplicate is not None:
        add("ST_DUPLICATE_KEY", f"two header entries named {parsed.duplicate!r}", parsed.duplicate)
        return out
    doc = parsed.doc
    if not isinstance(doc, dict):
        add("ST_HEADER_NOT_OBJECT", "safetensors header is not a JSON object")
        return out
    if len(doc) > max_entries:
        add("ST_TOO_MANY_ENTRIES", f"safetensors header has {len(doc)} entries, more than {max_entries}")
        return out
    meta = doc.pop("__metadata__", None)
    if meta is not None:
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            bad_keys = [k for k, v in meta.items() if not isinstance(v, str)][:3] if isinstance(meta, dict) else []
            add("ST_METADATA_TYPE", "__metadata__ must map strings to strings"
                + (f" ({', '.join(map(repr, bad_keys))} are not strings)" if bad_keys else ""), "__metadata__")
        else:
            out.metadata = dict(meta)
    entries: list[Entry] = []
    for tname, info in doc.items():
        if not isinstance(info, dict) or set(info) != ENTRY_FIELDS:
            add("ST_ENTRY_MALFORMED", f"malformed entry for tensor {tname!r} (needs exactly dtype, shape, "
                "data_offsets)", tname)
            continue
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in BITS:
            add("ST_DTYPE_UNKNOWN", f"tensor {tname!r} has unknown dtype {dtype!r}", tname)
            continue
        if (not isinstance(shape, list) or not all(_is_uint(d) for d in shape) or not isinstance(offs, list)
                or len(offs) != 2 or not all(_is_uint(o) for o in offs)):
            add("ST_ENTRY_MALFORMED", f"tensor {tname!r} has a shape or data_offsets that are not non-negative "
                "integers", tname)
            continue
        numel = math.prod(shape)
        if numel > U64 or numel * BITS[dtype] > U64 * 8:
            add("ST_SHAPE_OVERFLOW", f"tensor {tname!r}: shape {shape} overflows 64 bits", tname)
            continue
        nbits = numel * BITS[dtype]
        if nbits % 8:
            add("ST_MISALIGNED", f"tensor {tname!r}: {dtype}{shape} does not end on a byte boundary", tname)
            continue
        lo, hi = offs
        if hi < lo:
            add("ST_ENTRY_MALFORMED", f"tensor {tname!r} has a negative span ({lo} > {hi})", tname)
            continue
        if hi - lo != nbits // 8:
            add("ST_SIZE_MISMATCH", f"tensor {tname!r} spans {hi - lo} bytes but {dtype}{shape} needs {nbits // 8}",
                tname)
            continue
        entries.append(Entry(tname, dtype, tuple(shape), lo, hi))
    data_len = size - 8 - n
    entries.sort(key=lambda x: (x.start, x.end))
    pos = 0
    for ent in entries:
        if ent.end > data_len:
            add("ST_TRUNCATED", f"truncated: tensor {ent.name!r} ends at byte {8 + n + ent.end} of {size}", ent.name)
        elif ent.start < pos:
            add("ST_OFFSETS_OVERLAP", f"tensors overlap in the data section (at {ent.name!r})", ent.name)
        elif ent.start > pos:
            add("ST_OFFSETS_GAP", f"a gap of {ent.start - pos} bytes in the data section before tensor {ent.name!r}",
                ent.name)
        pos = max(pos, ent.end)
    if not out.findings and pos < data_len:
        add("ST_TRAILING_BYTES", f"{data_len - pos} bytes after the last tensor")
    out.entries = entries
    return out
