"""Writing a file that can hold a secret: mode 0600 whatever the umask, never through a planted link.

Every file cardos writes that may carry a PIN or a key value goes through
here: key sets, ``issue --save-script``, ``convert -o``, ``run --json`` and
``--junit-xml`` reports, ``serve --trace`` files, the shell's history
(docs/robustness.md, "Secrets").

* A new file is created with mode 0600 (the umask can only remove bits).
* An existing regular file is truncated and set to 0600 (``fchmod``): a
  report written over an old 0644 one is private too.
* A symbolic link at the path is refused (``O_NOFOLLOW``): nobody can plant a
  link that makes cardos write keys into another file.
* Something that is not a regular file (``/dev/null``, a FIFO a reader holds
  open) is written as it is, without changing its mode.

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> path = os.path.join(folder, "report.json")
>>> old = os.umask(0o022)
>>> write_private(path, "{}\\n")
>>> _ = os.umask(old)
>>> oct(os.stat(path).st_mode & 0o777)
'0o600'
"""
from __future__ import annotations

import errno
import io
import os
import stat

FILE_MODE = 0o600
LINK_REFUSED = "is a symbolic link (files that can hold secrets are written only to a real path)"


def open_private(path, overwrite: bool = True) -> int:
    """A descriptor open for writing on ``path`` (see the module); the caller closes it.

    ``overwrite=False`` refuses an existing file (``FileExistsError``). A
    symbolic link raises ``OSError`` (``ELOOP``) whose ``strerror`` says so
    plainly; other failures are the ``OSError`` of the system call, for the
    caller to word.
    """
    flags = (os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
             | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # "too many levels of symbolic links" would puzzle
            raise OSError(errno.ELOOP, LINK_REFUSED, os.fspath(path)) from None
        raise
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode) and hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)  # an existing file keeps its old mode otherwise
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path, data: str | bytes, overwrite: bool = True) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` as a private file, all of it or an ``OSError``."""
    view = memoryview(data.encode("utf-8") if isinstance(data, str) else data)
    fd = open_private(path, overwrite)
    try:
        while view:  # a short write (disk full) must not pass for a complete file
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def open_private_text(path) -> io.TextIOWrapper:
    """``open(path, "w", encoding="utf-8")`` made private: for reports written as they go."""
    return open(open_private(path), "w", encoding="utf-8")


def planted_link(path) -> str | None:
    """The refusal a symbolic link at ``path`` will meet, for saying it before any work rather than after."""
    return LINK_REFUSED if os.path.islink(path) else None


def write_failure(exc: OSError) -> str:
    """The reason an :class:`OSError` from this module gives, worded for a one-line error."""
    if exc.errno == errno.ELOOP:
        return LINK_REFUSED
    if isinstance(exc, FileExistsError):
        return "already exists"
    return f"cannot write: {exc.strerror or exc}"
