"""Reading a file cardos was pointed at without trusting it to be a small regular file.

A FIFO blocks ``open`` until a writer comes (forever), ``/dev/zero`` never
ends, a 3 GB file is read whole into memory, and opening some devices has side
effects (``/dev/watchdog`` starts a timer). So: ``stat`` first and refuse
anything but a regular file before opening it; open with ``O_NONBLOCK`` and
check the descriptor again (the name may have been swapped in between); read
at most ``limit + 1`` bytes, so a file that grows meanwhile is caught too.
"""
from __future__ import annotations

import os
import stat

KIB = 1 << 10
MIB = 1 << 20

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
_CHUNK = MIB


class FileRefused(Exception):
    """The file is not one cardos reads: not regular, or too large (``problem`` is one phrase)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def size_text(n: int) -> str:
    """``4194304`` → ``4 MiB``, ``65536`` → ``64 KiB``, else bytes.

    >>> size_text(4 * MIB), size_text(64 * KIB), size_text(1000)
    ('4 MiB', '64 KiB', '1000 bytes')
    """
    for unit, name in ((MIB, "MiB"), (KIB, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n} bytes"


def _check(st: os.stat_result, limit: int, kind: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        what = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
        raise FileRefused(f"not a regular file ({what})")
    if st.st_size > limit:
        raise _too_large(st.st_size, limit, kind)


def _too_large(size: int | None, limit: int, kind: str) -> FileRefused:
    shown = f"{size} bytes" if size is not None else "it grew while being read"
    return FileRefused(f"too large for {kind} ({shown}; at most {size_text(limit)})")


def read_bounded(path, limit: int, kind: str) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    ``kind`` names what the file should be (``"a card image"``) in the
    too-large message. Raises :class:`FileRefused`; ``FileNotFoundError`` and
    other ``OSError`` pass through for the caller to word.
    """
    _check(os.stat(path), limit, kind)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        _check(os.fstat(fd), limit, kind)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(limit + 1 - total, _CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise _too_large(None, limit, kind)
        return b"".join(chunks)
    finally:
        os.close(fd)
