"""Batch output files: which matched paths are read, their bytes as UTF-8 lines, cut into chunks, and their job order.

A plain file is read in blocks (never whole) and can be cut at line starts into chunks that
worker processes read on their own. gzip, bzip2 and xz files are read on purpose; zip, zstd and
7z archives are reported, never read as data. A UTF-8 BOM at the start of a file is dropped and a
UTF-16 file (known by its BOM) is re-encoded, so every line of a file is read the same way.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import io
import lzma
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from tqc_dagster.core.batch_lines import BOM

_UTF16_STARTS = (re.compile(rb"\xff\xfe[\x09-\x7e]\x00"), re.compile(rb"\xfe\xff\x00[\x09-\x7e]"))  # a BOM, then ASCII


def _utf16(head: bytes) -> bool:
    """A UTF-16 file (as PowerShell's `>` writes), known by its BOM and an ASCII character after it."""
    return any(start.match(head) for start in _UTF16_STARTS)


_READ_ON_PURPOSE = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
_NOT_READ = {b"PK\x03\x04": "zip", b"\x28\xb5\x2f\xfd": "zstd", b"7z\xbc\xaf\x27\x1c": "7z"}
READ_BLOCK_BYTES = 1 << 24  # bytes read at a time: memory holds a block, never a whole file
SLICE_LINES = 20_000  # lines decoded before their values become a frame
CHUNK_BYTES = 1 << 23  # a worker's share of a plain file


def _head(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(8)


def input_problem(path: str) -> str | None:
    """Why a matched path is not read as batch output (a directory, a special file, an archive), or None."""
    if os.path.isdir(path):
        return "a directory, not a batch output file"
    if not os.path.isfile(path):
        return "not a regular file"
    kind = next((name for magic, name in _NOT_READ.items() if _head(path).startswith(magic)), None)
    return None if kind is None else f"a {kind} archive; unpack it (gzip, bzip2 and xz files are read as they are)"


@dataclass(frozen=True)
class Chunk:
    """A byte range of a file that starts at a line start; `end` None: the whole decoded file."""

    path: str
    start: int = 0
    end: int | None = None


def chunks(path: str, size: int | None = None) -> list[Chunk]:
    """A plain file cut at line starts about every `size` (CHUNK_BYTES) bytes; a compressed or UTF-16 file is one chunk."""
    size = size or CHUNK_BYTES
    head = _head(path)
    if _utf16(head) or any(head.startswith(magic) for magic in _READ_ON_PURPOSE):
        return [Chunk(path)]
    total, bounds = os.path.getsize(path), [0]
    with open(path, "rb") as handle:
        while bounds[-1] + size < total:
            handle.seek(bounds[-1] + size)
            bounds.append(bounds[-1] + size + len(handle.readline()))  # just after the next newline
    return [Chunk(path, start, end) for start, end in zip(bounds, [*bounds[1:], total], strict=True) if end > start]


def _open_chunk(chunk: Chunk) -> IO[bytes]:
    """The chunk's bytes as UTF-8: gzip, bzip2 and xz decompressed, UTF-16 (by its BOM) re-encoded."""
    if chunk.end is not None:
        handle = open(chunk.path, "rb")
        handle.seek(chunk.start)
        return handle
    opener = next((fn for magic, fn in _READ_ON_PURPOSE.items() if _head(chunk.path).startswith(magic)), open)
    handle = opener(chunk.path, "rb")
    if not _utf16(handle.peek(4)[:4]):
        return handle
    with io.TextIOWrapper(handle, encoding="utf-16", errors="replace", newline="") as text:
        return io.BytesIO(text.read().encode("utf-8"))  # UTF-16 inputs are rare and small


def chunk_lines(chunk: Chunk, size: int | None = None) -> Iterator[list[bytes]]:
    """The chunk's lines (bytes, without "\\n"), `size` (SLICE_LINES) at a time; a file's leading UTF-8 BOM is dropped.

    A final line without a newline is a line; nothing after the last newline is not.
    """
    size = size or SLICE_LINES
    remaining = None if chunk.end is None else chunk.end - chunk.start
    with _open_chunk(chunk) as handle:
        carry, lines, first = b"", [], chunk.start == 0
        while block := handle.read(READ_BLOCK_BYTES if remaining is None else min(READ_BLOCK_BYTES, remaining)):
            remaining = None if remaining is None else remaining - len(block)
            block, first = (block[3:] if first and block.startswith(BOM) else block), False
            lines += (carry + block).split(b"\n")
            carry = lines.pop()
            while len(lines) >= size:
                yield lines[:size]
                del lines[:size]
        if carry:
            lines.append(carry)
        if lines:
            yield lines


# --- which job ran when ----------------------------------------------------------------------------

_PATH_TIMES = (
    re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?:[T_ ](\d{2})[:-]?(\d{2})[:-]?(\d{2}))?(?!\d)"),  # 2025-02-01[T05:18:17]
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})"),  # 20250201T051817Z
)


def path_time(uri: str) -> float | None:
    """The last date or date-time written in a path (read as UTC), in POSIX seconds; None when there is none."""
    found = []
    for pattern in _PATH_TIMES:
        for match in pattern.finditer(uri):
            try:
                moment = dt.datetime(*(int(part or 0) for part in match.groups()), tzinfo=dt.timezone.utc)
            except ValueError:
                continue
            found.append((match.end(), moment.timestamp()))
    return max(found)[1] if found else None


def local_mtime(uri: str) -> float | None:
    """A local file's modification time; None for s3:// URIs and missing files."""
    if uri.startswith("s3://"):
        return None
    try:
        return os.stat(uri).st_mtime
    except OSError:
        return None


def job_order(files: Sequence[str], modified: Callable[[str], float | None] = local_mtime) -> list[str]:
    """Files oldest job first: by a time in the path, else the store's modification time, else by name.

    Bedrock job folders are random ids, so their names say nothing about when a job ran. Files
    with no known time come first, by name.
    """

    def when(uri: str) -> tuple[bool, float, str]:
        moment = path_time(uri)
        moment = modified(uri) if moment is None else moment
        return moment is not None, moment or 0.0, uri

    return sorted(files, key=when)
