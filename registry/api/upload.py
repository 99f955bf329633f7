"""Stream a multipart upload of an adapter folder into a temp folder, enforcing the size limit.

Each file part's `filename` is its path relative to the adapter folder ("adapter_config.json",
"checkpoint-20/trainer_state.json"); plain fields (base, tag, description) come back as a dict of
lists. Bytes go straight to disk as they arrive, so memory stays flat and an over-limit upload
stops with 413 as soon as it passes the limit.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from registry.errors import InvalidInput, TooLarge

MAX_FILES = 1000
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 200
MAX_PATH_CHARS = 500  # the catalog's version_files.path
MAX_NAME_BYTES = 255  # one path component (NAME_MAX on Linux, macOS, Windows)
MAX_PART_HEADER_BYTES = 16 * 1024  # all headers of one part together
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_relpath(rel: str) -> str:
    """A relative POSIX path with no '..', no absolute root, no backslashes and no control characters, each
    part at most MAX_NAME_BYTES long in UTF-8 (what file systems take), else InvalidInput."""
    p = PurePosixPath(rel)
    if (not rel or len(rel) > MAX_PATH_CHARS or p.is_absolute() or "\\" in rel or _CONTROL.search(rel)
            or any(part in ("", ".", "..") for part in rel.split("/"))):
        raise InvalidInput(f"not a safe relative file name: {rel[:200]!r}", hint="send each file with its path "
                           "relative to the adapter folder as the part's filename")
    for part in rel.split("/"):
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise InvalidInput(f"file name {part[:60]!r}... is longer than {MAX_NAME_BYTES} bytes",
                               hint="file systems take at most 255 bytes per name")
    return str(p)


@contextmanager
def upload_folder(home: Path) -> Iterator[Path]:
    """A fresh temp folder under the registry home (same filesystem as the store), removed after."""
    folder = Path(home) / "tmp" / "uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Sink:
    """The parser callbacks: headers per part, file bytes to disk, small fields to memory."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.fields: dict[str, list[str]] = {}
        self.files: list[str] = []
        self._headers: dict[bytes, bytes] = {}
        self._hname = b""
        self._hvalue = b""
        self._field: str | None = None
        self._buf = bytearray()
        self._file: BinaryIO | None = None
        self._nfields = 0
        self._header_bytes = 0
        self._file_set: set[str] = set()
        self._folders: set[str] = set()
        self.ended = False

    def callbacks(self) -> dict:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end, "on_end": self.end}

    def part_begin(self) -> None:
        self._headers, self._field, self._buf, self._file = {}, None, bytearray(), None
        self._header_bytes = 0

    def _count_header(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise InvalidInput(f"a part's headers are longer than {MAX_PART_HEADER_BYTES} bytes")

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._hname += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._hvalue += data[start:end]

    def header_end(self) -> None:
        self._headers[self._hname.lower()] = self._hvalue
        self._hname, self._hvalue = b"", b""

    def headers_finished(self) -> None:
        _disp, opts = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        filename = opts.get(b"filename")
        if filename is None:
            self._nfields += 1
            if self._nfields > MAX_FIELDS:
                raise InvalidInput(f"more than {MAX_FIELDS} form fields")
            self._field = name
            return
        rel = safe_relpath(filename.decode("utf-8", "replace"))
        if rel in self._file_set:
            raise InvalidInput(f"file {rel!r} sent twice")
        if len(self.files) >= MAX_FILES:
            raise InvalidInput(f"more than {MAX_FILES} files")
        target = self.folder / rel
        # "a" and "a/b" (in either order, at any depth): one name cannot be a file and a folder.
        parents = {"/".join(rel.split("/")[:i]) for i in range(1, rel.count("/") + 1)}
        if rel in self._folders or parents & self._file_set:
            raise InvalidInput(f"{rel!r} is both a file and a folder in this upload")
        target.parent.mkdir(parents=True, exist_ok=True)
        self.files.append(rel)
        self._file_set.add(rel)
        self._folders |= parents
        try:
            self._file = open(target, "xb")
        except OSError as e:  # a name the file system refuses (too long for it, reserved): the client's input
            raise InvalidInput(f"cannot store a file named {rel[:200]!r}: {e.strerror}") from None

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._file.write(data[start:end])
        else:
            if len(self._buf) + (end - start) > MAX_FIELD_BYTES:
                raise InvalidInput(f"form field {self._field!r} is larger than {MAX_FIELD_BYTES} bytes")
            self._buf += data[start:end]

    def part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._field is not None:
            self.fields.setdefault(self._field, []).append(self._buf.decode("utf-8", "replace"))

    def end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def receive(stream: AsyncIterator[bytes], content_type: str, content_length: str | None, folder: Path, *,
                  limit: int) -> tuple[list[str], dict[str, list[str]]]:
    """Parse a multipart/form-data body into `folder`. Returns (relative file paths, fields).

    Raises:
        TooLarge: the body passes `limit` bytes (checked on Content-Length first, then while reading)
        InvalidInput: not multipart, unsafe file names, too many parts, a truncated body
    """
    ctype, opts = parse_options_header(content_type)
    if ctype != b"multipart/form-data" or not opts.get(b"boundary"):
        raise InvalidInput("the upload must be multipart/form-data", hint="send each file as a part named 'files'")
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise TooLarge(f"the upload is {int(content_length)} bytes; this server accepts {limit}", limit=limit)
    sink = _Sink(folder)
    parser = MultipartParser(opts[b"boundary"], sink.callbacks())  # type: ignore[arg-type]  # a dict of the callbacks
    total = 0
    try:
        async for chunk in stream:
            total += len(chunk)
            if total > limit:
                raise TooLarge(f"the upload passed {limit} bytes, the most this server accepts", limit=limit)
            try:
                parser.write(chunk)
            except (InvalidInput, OSError):
                raise
            except Exception as e:  # the parser's own errors: a malformed body
                raise InvalidInput(f"malformed multipart body: {e}") from e
        parser.finalize()
    finally:
        sink.close()
    if not sink.ended:
        raise InvalidInput("the multipart body ended early (no closing boundary)")
    return sink.files, sink.fields
