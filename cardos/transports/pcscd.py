"""pcscd for tests and benchmarks: start one (root), watch its readers, stop it by PID.

Shared by the test suite's PC/SC fixtures (``tests/pcsc_fixtures.py``) and
``cardos bench``. pcscd and the vpcd ports are machine-wide, so every user
takes :func:`lock_vpcd_slots` first (``$CARDOS_PCSC_LOCK``).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .diagnose import pcscd_running, pcscd_socket_path

FIRST_PORT = 35963
LOCK_PATH = os.environ.get("CARDOS_PCSC_LOCK", "/tmp/cardos-pcsc-tests.lock")


def reader_name(port: int) -> str:
    """The pcscd reader of a vpcd slot port (Debian's configuration)."""
    return f"Virtual PCD 00 {port - FIRST_PORT:02d}"


def lock_vpcd_slots(wait: float, on_wait=None) -> int | None:
    """Take the machine-wide vpcd lock; the file descriptor, or ``None`` after ``wait`` seconds."""
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            if on_wait is not None and not told:
                on_wait()
                told = True
            time.sleep(0.1)


class PcscWatcher:
    """One PC/SC context for listing readers and waiting for cards; a new
    context is taken after pcscd restarts."""

    def __init__(self):
        from smartcard import scard

        self.scard = scard
        self._context = None

    def context(self):
        if self._context is None:
            hresult, ctx = self.scard.SCardEstablishContext(self.scard.SCARD_SCOPE_USER)
            if hresult != self.scard.SCARD_S_SUCCESS:
                raise ConnectionError(f"SCardEstablishContext: {self.scard.SCardGetErrorMessage(hresult)}")
            self._context = ctx
        return self._context

    def release(self) -> None:
        if self._context is not None:
            self.scard.SCardReleaseContext(self._context)
            self._context = None

    def readers(self) -> list[str]:
        try:
            hresult, readers = self.scard.SCardListReaders(self.context(), [])
        except ConnectionError:
            return []
        if hresult != self.scard.SCARD_S_SUCCESS:
            self.release()
            return []
        return list(readers)

    def vpcd_listed(self) -> bool:
        return any(r.startswith("Virtual PCD") for r in self.readers())

    def wait_card(self, reader: str, present: bool = True, timeout: float = 5.0) -> None:
        """Block until pcscd reports the card in ``reader`` present (or gone); ``TimeoutError`` otherwise."""
        s = self.scard
        deadline = time.monotonic() + timeout
        state = s.SCARD_STATE_UNAWARE
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"pcscd did not report the card in {reader!r} "
                                   f"{'present' if present else 'removed'} within {timeout} s")
            try:
                hresult, states = s.SCardGetStatusChange(self.context(), int(remaining * 1000) + 1,
                                                         [(reader, state)])
            except ConnectionError:
                hresult = s.SCARD_E_NO_SERVICE
            if hresult == s.SCARD_E_TIMEOUT:
                continue
            if hresult != s.SCARD_S_SUCCESS:  # e.g. pcscd restarted: a new context
                self.release()
                time.sleep(0.02)
                state = s.SCARD_STATE_UNAWARE
                continue
            event = states[0][1]
            if present and event & s.SCARD_STATE_PRESENT and not event & s.SCARD_STATE_MUTE:
                return
            if not present and event & s.SCARD_STATE_EMPTY:
                return
            if event & s.SCARD_STATE_UNKNOWN:  # reader not there (yet)
                time.sleep(0.02)
                state = s.SCARD_STATE_UNAWARE
                continue
            state = event & ~s.SCARD_STATE_CHANGED


def pcscd_command() -> list[str]:
    """``pcscd --foreground`` plus ``$CARDOS_PCSCD_ARGS`` (e.g. ``-d``)."""
    return [shutil.which("pcscd") or "/usr/sbin/pcscd", "--foreground",
            *os.environ.get("CARDOS_PCSCD_ARGS", "").split()]


def log_tail(log_path) -> str:
    try:
        return Path(log_path).read_text(errors="replace")[-800:].replace("\n", " | ")
    except (OSError, TypeError):
        return ""


def start_pcscd(log_path, watcher: PcscWatcher, timeout: float = 10.0) -> subprocess.Popen:
    """Start pcscd (needs root) and wait for its socket and the vpcd readers; ``RuntimeError`` if it fails."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(pcscd_command(), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not pcscd_running():
        if proc.poll() is not None:
            raise RuntimeError(f"pcscd exited with {proc.returncode}: {log_tail(log_path)}")
        if time.monotonic() > deadline:
            stop_pcscd(proc)
            raise RuntimeError(f"pcscd socket {pcscd_socket_path()} did not appear: {log_tail(log_path)}")
        time.sleep(0.01)
    while not watcher.vpcd_listed():
        if time.monotonic() > deadline:
            stop_pcscd(proc)
            raise RuntimeError(f"pcscd lists no vpcd reader: {log_tail(log_path)}")
        time.sleep(0.02)
    return proc


def stop_pcscd(proc: subprocess.Popen | None) -> None:
    """Stop a pcscd we started, by PID (SIGTERM, then SIGKILL)."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
