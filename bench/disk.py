"""The disk's own floors for the merge and copy benches: read, O_DIRECT read and write, both at once,
and `cp FILE && sync`, for one large file, each from a cold page cache.

    .venv/bin/python bench/disk.py FILE [--scratch DIR]

FILE is read (e.g. a stored blob of the 1B bench); the writes go to a new scratch file in DIR
(default: FILE's folder), removed at the end. Linux only (O_DIRECT, posix_fadvise). Prints seconds and GB/s per probe.
"""

from __future__ import annotations

import argparse
import mmap
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

CHUNK = 8 << 20


def drop(path: Path) -> None:
    subprocess.run(["sync"], check=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_all(path: Path, direct: bool) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    buf, off = mmap.mmap(-1, CHUNK), 0
    try:
        if not direct:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while (n := os.preadv(fd, [buf], off)) > 0:
            off += n
    finally:
        os.close(fd)


def write_all(path: Path, size: int, threads: int = 1) -> None:
    """`size` bytes (whole chunks, then cut to size) with O_DIRECT from `threads` threads, fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
    offsets = list(range(0, size, CHUNK))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        buf = mmap.mmap(-1, CHUNK)
        buf.write(os.urandom(4096) * (CHUNK // 4096))
        try:
            while True:
                with lock:
                    if not offsets:
                        return
                    off = offsets.pop(0)
                os.pwrite(fd, buf, off)
        except BaseException as e:  # noqa: BLE001  (reported by the caller)
            errors.append(e)

    try:
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        if errors:
            raise errors[0]
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--scratch", type=Path)
    args = ap.parse_args()
    src: Path = args.file.resolve()
    size = src.stat().st_size
    fd, name = tempfile.mkstemp(dir=args.scratch or src.parent, prefix=".disk-bench-")
    os.close(fd)
    out = Path(name)
    assert out.resolve() != src
    probes = {
        "buffered read": lambda: read_all(src, False),
        "O_DIRECT read": lambda: read_all(src, True),
        "O_DIRECT write (1 thread)": lambda: write_all(out, size),
        "O_DIRECT write (2 threads)": lambda: write_all(out, size, 2),
        "O_DIRECT read + write at once": lambda: _both(src, out, size),
        "cp FILE && sync": lambda: (subprocess.run(["cp", str(src), str(out)], check=True), os.sync()),
    }
    print(f"{src} ({size / 1e9:.2f} GB)")
    try:
        for name, probe in probes.items():
            drop(src)
            t0 = time.perf_counter()
            probe()
            dt = time.perf_counter() - t0
            print(f"{name:<32} {dt:6.2f} s  {size / dt / 1e9:5.2f} GB/s", flush=True)
    finally:
        out.unlink(missing_ok=True)


def _both(src: Path, out: Path, size: int) -> None:
    errors: list[BaseException] = []

    def write() -> None:
        try:
            write_all(out, size)
        except BaseException as e:  # noqa: BLE001  (raised below)
            errors.append(e)

    t = threading.Thread(target=write)
    t.start()
    read_all(src, True)
    t.join()
    if errors:
        raise errors[0]


if __name__ == "__main__":
    main()
