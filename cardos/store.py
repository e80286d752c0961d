"""Where a card image lives on disk: its lock, its atomic save, and the files beside it.

One process at a time writes an image. :class:`ImageLock` is an advisory
``flock`` on ``.NAME.lock`` beside the image, taken by every opener that
writes (``Card.open`` and ``Card.save_as``; so ``serve``, ``run``, ``shell``,
``issue``, ``demo --image``) and released by the kernel even on SIGKILL. A
second opener is refused with the holder's PID and command. Readers
(``cardos inspect``) take no lock: a save renames a complete file over the
old one, so a reader always sees one whole image.

Files beside the image are never trusted: the lock file and the temporary
file are opened without following links, must be regular files of our own
with one link, and the temporary file is created exclusively (``O_EXCL``), so
a file or link planted at either name is refused without touching its target.
An image path that is a symlink is resolved once when it is opened: the real
file is the one updated and locked. An image with several hard links is
refused (a save replaces the file, which would split the links, and two
names would give two locks). Before each save the image must still be the
file this process last read or wrote: if something else replaced it, the save
is refused instead of overwriting it. See docs/robustness.md.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
import weakref
from pathlib import Path

from .image import ImageError

FILE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_LOCK_ATTEMPTS = 20  # a lock file unlinked by its releasing holder between our open and our flock: retry


class ImageBusy(ImageError):
    """The image is being written by another process (or another card object)."""

    def __init__(self, path, holder: str):
        super().__init__(path, f"in use by another process ({holder or 'holder unknown'}); "
                               "stop it first, or work on a copy")
        self.holder = holder


class PlantedFile(OSError):
    """A file cardos writes beside the image is in the way and is not ours: the save is refused."""


class ImageReplaced(OSError):
    """The image on disk is no longer the file this process read or wrote: the save is refused."""


class NotDurable(OSError):
    """The new image is in place, but the directory could not be synced (``--durable``)."""


def beside(image: Path, suffix: str) -> Path:
    """``.NAME<suffix>`` in the image's directory (the lock and the temporary file)."""
    return image.with_name(f".{image.name}{suffix}")


def foreign(st: os.stat_result) -> str | None:
    """Why a file beside the image is not one cardos may use, or ``None``."""
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != os.geteuid():
        return f"belongs to another user (uid {st.st_uid})"
    if st.st_nlink != 1:
        return "has other hard links"
    return None


def holder_text() -> str:
    """Who holds a lock, as shown to the next opener: PID and command."""
    argv = sys.argv or ["python"]
    program = Path(argv[0])
    if program.parent.name == "cardos":  # python -m cardos.cli
        name = "cardos"
    else:
        name = program.parent.name if program.name == "__main__.py" else program.name  # python -m NAME
    command = " ".join([name] + [a for a in argv[1:2] if not a.startswith("-")])
    return f"pid {os.getpid()}, {command}"


def resolve(path) -> Path:
    """The real path of an image: a symlink is followed once, here, and never again."""
    return Path(os.path.realpath(os.fspath(path)))


class ImageLock:
    """The exclusive lock of one image (``.NAME.lock`` beside the real file).

    The lock file is removed when the lock is released (:meth:`release`, the
    owner's garbage collection, or interpreter exit); a lock file left by a
    killed process is harmless and reused.
    """

    def __init__(self, image, shown=None):
        image = Path(image)
        shown = image if shown is None else shown
        self.path = beside(image, ".lock")
        fd, ino = self._acquire(shown)
        self._finalizer = weakref.finalize(self, _release, str(self.path), fd, ino, os.getpid())

    def _acquire(self, shown) -> tuple[int, tuple[int, int]]:
        for _ in range(_LOCK_ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, FILE_MODE)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise ImageError(shown, f"its lock file {self.path} is a symbolic link: refusing to follow "
                                            "it (remove it if you did not put it there)") from None
                raise ImageError(shown, f"cannot create its lock file {self.path}: {exc.strerror}") from None
            st = os.fstat(fd)
            problem = foreign(st)
            if problem:
                os.close(fd)
                raise ImageError(shown, f"its lock file {self.path} {problem}: refusing to use it "
                                        "(remove it if you did not put it there)")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise ImageBusy(shown, holder) from None
                raise ImageError(shown, f"cannot lock {self.path}: {exc.strerror}") from None
            try:
                now = os.lstat(self.path)
            except FileNotFoundError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                os.close(fd)  # its previous holder removed it as we opened it: take the new one
                continue
            try:  # who holds it, for the next opener's message; a full disk leaves it unsaid, not unlocked
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{holder_text()}\n".encode(), 0)
            except OSError:
                pass
            return fd, (st.st_dev, st.st_ino)
        raise ImageError(shown, f"cannot take the lock {self.path}: it keeps being replaced")

    @property
    def held(self) -> bool:
        return self._finalizer.alive

    def release(self) -> None:
        self._finalizer()


def _release(path: str, fd: int, ino: tuple[int, int], owner: int) -> None:
    try:
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == ino and os.getpid() == owner:  # never a forked child's exit
            os.unlink(path)  # while still holding the lock: a waiter re-checks and takes a fresh file
    except OSError:
        pass
    os.close(fd)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _check_image_file(shown, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(shown, "is a directory, not a card image")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(shown, "not a regular file (a card image is a JSON file; refusing a FIFO or device)")
    if st.st_nlink > 1:
        raise ImageError(shown, f"has {st.st_nlink} hard links: every save replaces the file, which would "
                                "split them (use one name, or a symbolic link)")


class ImageStore:
    """One image on disk, locked by this process; ``write`` is the atomic commit.

    ``durable=True`` adds ``fsync`` of the file and its directory, which
    protects against the *host* losing power; without it a crash of the
    process (even SIGKILL) still never loses a committed image.
    """

    def __init__(self, path: Path, durable: bool, lock: ImageLock, identity=None):
        self.path = path
        self.durable = durable
        self.lock = lock
        self._tmp = beside(path, ".tmp")
        self._identity = identity

    @classmethod
    def open(cls, path, durable: bool, load):
        """Lock the existing image at ``path`` and load it: returns ``(store, load(text))``.

        ``load`` parses and validates (raising :class:`ImageError`); it runs
        before the lock is taken, so a bad image leaves no lock file, and
        again under the lock if the file changed meanwhile.
        """
        real = resolve(path)
        state, ident = _load_unlocked(path, real, load)
        lock = ImageLock(real, path)
        try:
            _check_beside(path, beside(real, ".tmp"))
            st = os.stat(real)
            if _identity(st) != ident:  # written between our read and our lock: read what the lock protects
                state, ident = _load_unlocked(path, real, load)
        except BaseException:
            lock.release()
            raise
        return cls(real, durable, lock, ident[:2]), state

    @classmethod
    def create(cls, path, text: str, durable: bool = False) -> "ImageStore":
        """Write a new image at ``path`` and lock it; refuses to replace any existing file."""
        shown = path
        path = Path(path)
        if os.path.lexists(path):
            raise ImageError(shown, "already exists (refusing to overwrite a card image)")
        if not path.parent.is_dir():
            raise ImageError(shown, f"no such directory: {path.parent}")
        real = resolve(path)
        lock = ImageLock(real, shown)
        store = cls(real, durable, lock)
        try:
            fd = store._write_temp(text.encode("utf-8"))
            try:
                _place_new(store._tmp, real)
                st = os.fstat(fd)
            except FileExistsError:
                raise ImageError(shown, "already exists (refusing to overwrite a card image)") from None
            except OSError as exc:
                raise ImageError(shown, f"cannot write: {exc.strerror}") from None
            finally:
                os.close(fd)
                _unlink_quietly(store._tmp)
            store._identity = (st.st_dev, st.st_ino)
            if durable:
                store._sync_directory()
        except BaseException:
            lock.release()
            raise
        return store

    def close(self) -> None:
        """Release the lock (and remove the lock file); the store writes no more."""
        self.lock.release()

    def write(self, text: str, tick=None) -> None:
        """Replace the image with ``text`` atomically. ``tick`` is called at each write point (tests cut power there).

        Raises :class:`OSError` when nothing changed on disk, :class:`NotDurable`
        when the new image is in place but its directory entry may not be on disk yet.
        """
        if not self.lock.held:
            raise ImageReplaced(errno.ENOLCK, f"{self.path}: the card image was closed")
        self._check_unchanged()
        fd = self._write_temp(text.encode("utf-8"))
        try:
            new = os.fstat(fd)
        finally:
            os.close(fd)
        try:
            if tick:
                tick()  # power lost after the temporary file: the old image stands
            os.replace(self._tmp, self.path)
        except BaseException:
            _unlink_quietly(self._tmp)
            raise
        self._identity = (new.st_dev, new.st_ino)
        if self.durable:
            try:
                self._sync_directory()
            except OSError as exc:
                raise NotDurable(exc.errno, f"{self.path}: saved, but the directory could not be synced: "
                                            f"{exc.strerror}") from None

    def _check_unchanged(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            raise ImageReplaced(errno.ENOENT, f"{self.path}: the card image was removed while in use; "
                                              "refusing to recreate it") from None
        if self._identity is not None and (st.st_dev, st.st_ino) != self._identity:
            raise ImageReplaced(errno.EEXIST, f"{self.path}: the card image was replaced by another program "
                                              "while in use; refusing to overwrite it")

    def _write_temp(self, data: bytes) -> int:
        """The complete new image in the temporary file; returns its open descriptor."""
        fd = self._create_temp()
        try:
            view = memoryview(data)
            while view:  # a short write (disk full) must not become a truncated image
                view = view[os.write(fd, view):]
            if self.durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(self._tmp)
            raise
        return fd

    def _create_temp(self) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
        try:
            return os.open(self._tmp, flags, FILE_MODE)
        except FileExistsError:
            pass
        st = os.lstat(self._tmp)
        problem = foreign(st)
        if problem:
            raise PlantedFile(errno.EEXIST, f"{self._tmp} {problem}: refusing to write the card image through it "
                                            "(remove it if you did not put it there)")
        os.unlink(self._tmp)  # our own, left by a crash: we hold the lock, so nobody else is writing it
        return os.open(self._tmp, flags, FILE_MODE)

    def _sync_directory(self) -> None:
        dir_fd = os.open(self.path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _place_new(tmp: Path, path: Path) -> None:
    """Give the complete temporary file the image's name, never replacing a file that is there."""
    try:
        os.link(tmp, path)  # atomic and never replaces: a file that appeared meanwhile wins
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if os.path.lexists(path):  # a file system without hard links: we hold the lock, so check, then rename
            raise FileExistsError(errno.EEXIST, "exists") from None
        os.rename(tmp, path)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _check_beside(shown, tmp: Path) -> None:
    """A temporary file that a save could not remove is reported when the image is opened."""
    try:
        st = os.lstat(tmp)
    except FileNotFoundError:
        return
    problem = foreign(st)
    if problem:
        raise ImageError(shown, f"{tmp} beside it {problem}: refusing to save through it "
                                "(remove it if you did not put it there)")


def _load_unlocked(shown, real: Path, load):
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ImageError(shown, f"cannot read: {exc.strerror}") from None
    if st is not None:
        _check_image_file(shown, st)
    state = load(shown, real)  # raises for a missing file
    return state, _identity(st)  # as it was before the read: a change after it is seen under the lock
