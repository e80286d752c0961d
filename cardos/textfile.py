"""Reading the text files cardos is given (scripts, logs, uploaded records) with one readable phrase
for every way they can be bad: missing, a directory, not text, unreadable; and the same for a place
an output file is to be written, checked before any work is done."""
from __future__ import annotations

import os
from pathlib import Path

from .boundedfile import FileRefused, read_bounded


class TextFileProblem(Exception):
    """What is wrong with the file, as one phrase (the caller names the file)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def read_text(path, kind: str, limit: int | None = None) -> str:
    """The UTF-8 text of the file at ``path`` (a ``kind`` such as "script"); raises :class:`TextFileProblem`.

    With ``limit``, only a regular file of at most ``limit`` bytes is read: a FIFO or a device is refused
    before it is opened, a larger file before it is read (:mod:`cardos.boundedfile`).
    """
    try:
        if limit is None:
            return Path(path).read_text(encoding="utf-8")
        if os.path.isdir(path):
            raise IsADirectoryError(path)
        return read_bounded(path, limit, f"a {kind}").decode("utf-8")
    except FileRefused as exc:
        raise TextFileProblem(exc.problem) from None
    except FileNotFoundError:
        raise TextFileProblem(f"no such {kind}") from None
    except IsADirectoryError:
        raise TextFileProblem(f"a directory, not a {kind}") from None
    except UnicodeDecodeError as exc:
        raise TextFileProblem(f"not a text file (byte {exc.start} is not UTF-8; a {kind} is text)") from None
    except OSError as exc:
        raise TextFileProblem(f"cannot read: {exc.strerror}") from None


def write_problem(path, makes_directories: bool = False) -> str | None:
    """Why a new file cannot be written at ``path`` (a directory there, no such directory — unless the
    writer ``makes_directories`` — or a file where a directory should be), or ``None``."""
    if os.path.isdir(path):
        return "is a directory (give a file name)"
    folder = os.path.dirname(os.path.abspath(path))
    if not makes_directories:
        return None if os.path.isdir(folder) else f"no such directory {os.path.dirname(path) or '.'}"
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return None if os.path.isdir(folder) else f"{folder} is not a directory"
