"""DirectWriter: large new files written past the page cache (O_DIRECT), exact bytes, clean failures.

Real file systems only: the test folder's own (ext4 here and in CI), a tmpfs (which refuses
O_DIRECT: the buffered fallback) and a loop-mounted 8 MiB ext4 image for a disk that fills up.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from registry.storage.directio import ALIGN, DirectWriter


def fs_type(path: Path) -> str:
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _dev, mnt, fstype, *_ = line.split()
        if str(path.resolve()).startswith(mnt.rstrip("/") + "/") and len(mnt) > len(best):
            best, kind = mnt, fstype
    return kind


def write_chunks(path: Path, chunks: list[bytes], **kw) -> DirectWriter:
    w = DirectWriter(path, **kw)
    for c in chunks:
        w.write(c)
    w.close()
    return w


@pytest.mark.parametrize("sizes", [[], [1], [ALIGN - 1], [ALIGN], [3, ALIGN * 2 + 5], [70_000] * 5, [3 * 65536 + 1]])
def test_bytes_and_length_are_exact_for_any_sizes(tmp_path, sizes):
    chunks = [os.urandom(n) for n in sizes]
    path = tmp_path / "f"
    w = write_chunks(path, chunks, buffer_size=65536, depth=2)
    assert path.read_bytes() == b"".join(chunks) and w.size == sum(sizes) and w.fd == -1


def test_writes_bypass_the_page_cache_on_a_block_file_system(tmp_path):
    if fs_type(tmp_path) not in ("ext4", "xfs", "btrfs"):
        pytest.fail(f"the test folder is on {fs_type(tmp_path)!r}: this test needs a block file system")
    path = tmp_path / "big"
    data = os.urandom(1 << 20) * 32  # 32 MiB
    w = write_chunks(path, [data[i : i + 999_999] for i in range(0, len(data), 999_999)])
    assert w.direct
    resident = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert int(resident) < 1 << 20, resident  # a buffered write would leave all 32 MiB cached
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_a_file_system_without_o_direct_gets_the_same_bytes_through_the_page_cache(mounted):
    mnt = mounted("ramfs")  # refuses O_DIRECT at open (tmpfs accepts it on recent kernels)
    data = os.urandom(100_003)
    w = write_chunks(mnt / "f", [data], buffer_size=65536)
    assert not w.direct and (mnt / "f").read_bytes() == data


def test_a_full_disk_raises_enospc_and_the_writer_closes_its_file(mounted):
    mnt = mounted("ext4")
    w = DirectWriter(mnt / "f", buffer_size=1 << 20)
    assert w.direct
    with pytest.raises(OSError) as e:
        for _ in range(32):  # 32 MiB onto an 8 MiB disk
            w.write(bytes(1 << 20))
        w.close()
    assert e.value.errno == errno.ENOSPC
    w.abort()
    assert w.fd == -1
    os.unlink(mnt / "f")


def test_append_from_copies_a_range_of_another_file_and_a_short_source_is_corrupt(tmp_path):
    from registry.errors import CorruptFile

    src = tmp_path / "src"
    data = os.urandom(300_001)
    src.write_bytes(data)
    fd = os.open(src, os.O_RDONLY)
    try:
        w = DirectWriter(tmp_path / "out", buffer_size=65536)
        w.write(b"head")
        w.append_from(fd, 7, 200_000)
        w.close()
        assert (tmp_path / "out").read_bytes() == b"head" + data[7:200_007]
        short = DirectWriter(tmp_path / "short", buffer_size=65536)
        with pytest.raises(CorruptFile, match="ended 99 bytes early"):
            short.append_from(fd, 200_000, 100_100)
        short.abort()
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", ["ext4", "ramfs"])
def test_clone_or_copy_gives_an_independent_exact_copy_with_or_without_o_direct(mounted, kind):
    from registry.storage.fsutil import clone_or_copy

    mnt = mounted(kind)
    src, dest = mnt / "src", mnt / "dest"
    data = os.urandom((1 << 20) + 123)
    src.write_bytes(data)
    assert clone_or_copy(src, dest) in ("copy", "reflink")
    assert dest.read_bytes() == data and dest.stat().st_nlink == 1 and not os.path.samefile(src, dest)
    with open(dest, "r+b") as f:
        f.write(b"changed")
    assert src.read_bytes() == data
    with pytest.raises(FileExistsError):
        clone_or_copy(src, dest)  # never over an existing file
