"""Opening files an untrusted folder holds without being fooled: lstat before anything, and an open
that follows no link and never blocks (a FIFO would hang a plain `open`), checked to be a regular file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def kind(path: Path) -> str:
    """'file', 'dir', 'link', 'special' (FIFO, device, socket) or 'missing', from lstat (nothing opened)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "special"


def open_regular(path: Path, *, follow: bool = False) -> int:
    """A file descriptor for a regular file (no link followed unless `follow`); OSError otherwise.

    The caller closes it. A base folder's files may be links (Hugging Face cache snapshots): `follow`,
    after the base check has made sure where they point.
    """
    fd = os.open(path, FLAGS & ~getattr(os, "O_NOFOLLOW", 0) if follow else FLAGS)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path}: not a regular file")
    os.set_blocking(fd, True)
    return fd


def read_regular(path: Path, *, limit: int, follow: bool = False) -> bytes:
    """The bytes of a regular file (no link followed unless `follow`), at most `limit` + 1 of them."""
    fd = open_regular(path, follow=follow)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    finally:
        os.close(fd)
