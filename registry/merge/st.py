"""Safetensors shards written deterministically (headers are read by registry.adapters.safetensors).

No torch here. The streaming engine reads tensor bytes with `pread` (no mmap, so the base never
counts towards our RSS) and writes shards through `ShardWriter`, whose header is a pure function of
the tensor list, which is what makes merged weight files byte-identical from run to run.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from registry.dtypes import ITEMSIZE
from registry.errors import CorruptFile
from registry.storage.directio import DirectWriter


def parse_size(size: str | int) -> int:
    """"5GB" -> 5_000_000_000 (decimal units, and GiB/MiB binary ones, as transformers reads them)."""
    if isinstance(size, int):
        return size
    s = size.strip().upper()
    units = {"GIB": 2**30, "MIB": 2**20, "KIB": 2**10, "GB": 10**9, "MB": 10**6, "KB": 10**3, "B": 1}
    for u, mult in units.items():
        if s.endswith(u):
            return int(float(s[: -len(u)]) * mult)
    return int(s)


@dataclass(frozen=True)
class OutTensor:
    """One tensor of the merged checkpoint: where it comes from is the engine's business."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = ITEMSIZE[self.dtype]
        for d in self.shape:
            n *= d
        return n


def plan_shards(tensors: list[OutTensor], max_shard_size: int) -> list[list[OutTensor]]:
    """Greedy split in the given order; a tensor larger than the limit gets a shard of its own.

    Inside a shard, tensors are ordered by item size (largest first, stable) so that every data
    offset is aligned to its dtype, as the safetensors library itself does.
    """
    shards: list[list[OutTensor]] = [[]]
    size = 0
    for t in tensors:
        if shards[-1] and size + t.nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return [sorted(s, key=lambda t: -ITEMSIZE[t.dtype]) for s in shards if s]


def shard_name(i: int, n: int) -> str:
    return f"model-{i + 1:05d}-of-{n:05d}.safetensors"


def encode_header(tensors: list[OutTensor]) -> bytes:
    """The header bytes (length prefix included) for tensors laid out back to back in this order."""
    header: dict = {"__metadata__": {"format": "pt"}}
    pos = 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [pos, pos + t.nbytes]}
        pos += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


class ShardWriter:
    """Writes one shard: the header first, then each tensor's bytes in the planned order.

    The sha256 of the file is computed on the way (the manifest needs it), so nothing is read back.
    The bytes go to disk through `DirectWriter` (O_DIRECT where the file system allows: no page
    cache to fill, written by a background thread; the caller fsyncs). With `mirror`, every byte
    also goes to a second new file (the user's `--out` copy, written while the merge runs instead
    of copied after it): two files, one hash, never a link between them. The mirror is a courtesy:
    when it cannot be written (its disk is full) it is dropped and removed and the merge goes on
    (the caller copies that shard afterwards, which reports the error if it persists).
    """

    _CHUNK = 8 << 20

    def __init__(self, path: Path, tensors: list[OutTensor], *, mirror: Path | None = None):
        self.path = path
        self.mirror = mirror
        self.tensors = tensors
        self._next = 0
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._buf: bytearray | None = None
        self._main: DirectWriter | None = DirectWriter(path)
        self._copy: DirectWriter | None = None
        if mirror is not None:
            try:
                self._copy = DirectWriter(mirror)
            except OSError:
                pass  # no mirror: the caller copies this shard after the merge
            except BaseException:
                self.abort()
                raise
        try:
            self._write(encode_header(tensors))
        except BaseException:
            self.abort()
            raise

    @property
    def files(self) -> list[DirectWriter]:
        """The writers still open: the shard's, and the mirror's while it lasts."""
        return [w for w in (self._main, self._copy) if w is not None]

    def _write(self, data) -> None:
        view = memoryview(data).cast("B")
        self.sha256.update(view)
        self.size += view.nbytes
        assert self._main is not None, "shard writer used after close"
        self._main.write(view)
        if self._copy is not None:
            try:
                self._copy.write(view)
            except OSError:
                self._drop_mirror()

    def _drop_mirror(self) -> None:
        assert self._copy is not None and self.mirror is not None
        self._copy.abort()
        self._copy = None
        try:
            os.unlink(self.mirror)
        except OSError:
            pass

    def write(self, name: str, data) -> None:
        """Append the bytes of tensor `name` (must be the next one in the plan)."""
        t = self.tensors[self._next]
        if t.name != name or memoryview(data).nbytes != t.nbytes:
            raise AssertionError(f"shard writer expected {t.name} ({t.nbytes} B), got {name}")
        self._write(data)
        self._next += 1

    def copy_from(self, name: str, src_fd: int, offset: int) -> None:
        """Append tensor `name` from another file, in chunks through one small reused buffer."""
        t = self.tensors[self._next]
        if t.name != name:
            raise AssertionError(f"shard writer expected {t.name}, got {name}")
        if self._buf is None:
            self._buf = bytearray(self._CHUNK)
        view = memoryview(self._buf)
        left, off = t.nbytes, offset
        while left:
            n = os.preadv(src_fd, [view[: min(left, self._CHUNK)]], off)
            if n == 0:
                raise CorruptFile(f"unexpected end of file while copying {name}")
            self._write(view[:n])
            left -= n
            off += n
        self._next += 1

    def close(self) -> None:
        if self._next != len(self.tensors):
            raise AssertionError(f"{self.path.name}: {len(self.tensors) - self._next} tensors never written")
        try:
            assert self._main is not None, "shard writer closed twice"
            self._main.close()
            if self._copy is not None:
                try:
                    self._copy.close()
                except OSError:
                    self._drop_mirror()
        finally:
            self.abort()

    def abort(self) -> None:
        for w in self.files:
            w.abort()
        self._main = self._copy = None
