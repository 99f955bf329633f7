"""The disk's own floors for the merge and copy benches: read, O_DIRECT read and write, both at once,
and `cp FILE && sync`, for one large file, each from a cold page cache.

    .venv/bin/python bench/disk.py FILE [--scratch DIR]

FILE is read (e.g. a stored blob of the 1B bench); the writes go to DIR (default: FILE's folder)
and are removed. Linux only (O_DIRECT, posix_fadvise). Prints seconds and GB/s per probe.
"""

from __future__ import annotations

import argparse
import mmap
import os
import subprocess
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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
    offsets = list(range(0, size, CHUNK))
    lock = threading.Lock()

    def work() -> None:
        buf = mmap.mmap(-1, CHUNK)
        buf.write(os.urandom(4096) * (CHUNK // 4096))
        while True:
            with lock:
                if not offsets:
                    return
                off = offsets.pop(0)
            os.pwrite(fd, buf, off)

    try:
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--scratch", type=Path)
    args = ap.parse_args()
    src: Path = args.file
    size = src.stat().st_size
    out = (args.scratch or src.parent) / ".disk-bench.tmp"
    probes = {
        "buffered read": lambda: read_all(src, False),
        "O_DIRECT read": lambda: read_all(src, True),
        "O_DIRECT write (1 thread)": lambda: write_all(out, size),
        "O_DIRECT write (2 threads)": lambda: write_all(out, size, 2),
        "O_DIRECT read + write at once": lambda: _both(src, out, size),
        "cp FILE && sync": lambda: subprocess.run(["sh", "-c", f"cp '{src}' '{out}' && sync"], check=True),
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
    t = threading.Thread(target=write_all, args=(out, size))
    t.start()
    read_all(src, True)
    t.join()


if __name__ == "__main__":
    main()
