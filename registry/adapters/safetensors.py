"""Read safetensors files as plain data: the header, and a scan of the values (no torch).

The header is an 8-byte little-endian length followed by that much JSON. Everything is checked
against the file's real size before anything is trusted, so a truncated or hostile file is a
clear CorruptFile error, never a crash or a huge allocation. This is the one header reader: the
registration, the static check and the merge engine (which streams the bytes a `TensorInfo`
points at) all take their tensors from `read_header`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from registry.adapters.validate.files import open_regular
from registry.adapters.validate.safetensors import check_header, header_length
from registry.errors import CorruptFile

DEFAULT_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file: what it is and which bytes of `file` hold it."""

    name: str
    dtype: str  # safetensors code: "BF16", "F32", ...
    shape: tuple[int, ...]
    start: int  # absolute offset in the file
    end: int
    file: Path

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def offset(self) -> int:
        return self.start

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Header:
    path: str
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int
    file_size: int


def read_header(path: Path, *, max_header_bytes: int = DEFAULT_MAX_HEADER) -> Header:
    """Parse and validate a safetensors header (`validate.safetensors.check_header`, every rule of the format).

    Raises:
        CorruptFile: naming the file and the first problem; `.findings` holds every finding.
    """
    path = Path(path)
    name = path.name
    try:
        fd = open_regular(path, follow=True)  # a FIFO must not hang the reader
    except OSError as e:
        raise CorruptFile(f"{name}: not a regular file ({e.strerror or e})", path=str(path)) from e
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        first8 = f.read(8)
        n, bad = header_length(name, first8, size, max_header_bytes=max_header_bytes)
        data = first8 if bad else first8 + f.read(n)
    chk = check_header(name, data, size, max_header_bytes=max_header_bytes)
    if chk.findings:
        first = chk.findings[0]
        raise CorruptFile(first.message, path=str(path), findings=[x.to_dict() for x in chk.findings])
    start = chk.data_start
    tensors = {e.name: TensorInfo(e.name, e.dtype, e.shape, start + e.start, start + e.end, path)
               for e in chk.entries}  # in offset order
    return Header(str(path), tensors, chk.metadata, start, size)


# the float codes a scan reads, and the numpy type it views their values as (half precision as bits)
SCANNED_DTYPES = {"F16": "uint16", "BF16": "uint16", "F32": "float32", "F64": "float64"}


def iter_values(path: Path, info: TensorInfo, *, chunk_elems: int = 1 << 22) -> Iterator[np.ndarray]:
    """Yield the tensor's raw values in chunks as numpy arrays (bf16 as uint16 bit patterns)."""
    import numpy as np  # only scans need numpy; lookups stay light

    np_dtype = np.dtype(SCANNED_DTYPES[info.dtype])
    if info.numel == 0:
        return
    mm = np.memmap(path, dtype=np_dtype, mode="r", offset=info.start, shape=(info.numel,))
    for i in range(0, info.numel, chunk_elems):
        yield mm[i:i + chunk_elems]


def scan_tensor(path: Path, info: TensorInfo) -> tuple[int, bool]:
    """(non-finite count, all zero) for a float tensor, reading it in chunks."""
    import numpy as np

    bad = 0
    all_zero = True
    for chunk in iter_values(path, info):
        if info.dtype == "BF16":
            bad += int(np.count_nonzero((chunk & 0x7F80) == 0x7F80))
            nz = np.any(chunk & 0x7FFF)
        elif info.dtype == "F16":
            bad += int(np.count_nonzero((chunk & 0x7C00) == 0x7C00))
            nz = np.any(chunk & 0x7FFF)
        else:
            bad += int(chunk.size - np.count_nonzero(np.isfinite(chunk)))
            nz = np.any(chunk != 0)
        if nz:
            all_zero = False
    return bad, all_zero
