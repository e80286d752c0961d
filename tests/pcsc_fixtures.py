"""pytest fixtures for the real PC/SC stack: pcscd + the vpcd driver, cards served into it.

``pcscd`` (session)
    A pcscd with the vpcd driver. If one already answers on its socket it is
    used and never stopped; otherwise ``pcscd --foreground`` is started
    (as root, after ``./dev.sh setup``), the fixture waits for its socket and
    the ``Virtual PCD`` readers, and stops it **by PID** at the end of the
    session. When that is impossible (not root, packages missing) the tests
    that need it are skipped — or fail, with ``CARDOS_REQUIRE_PCSC=1`` (CI).
``vpcd``
    ``vpcd.serve(card, port=35963)`` puts a :class:`cardos.Card` into a vpcd
    slot from this process (a :class:`cardos.transports.vpcd.VpcdServer`)
    and waits until pcscd reports it present; every card is removed again
    after the test.
``serve_process``
    ``serve_process(image, ..., args=[...])`` runs ``cardos serve`` as a
    child process and waits for its "serving" lines; killed by PID after the test.

Waiting is event driven (``SCardGetStatusChange``) with timeouts; pcscd
polls vpcd slots every ~0.4 s, so an insertion or a removal takes up to
half a second to show.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cardos.transports.diagnose import pcscd_running, vpcd_config
from cardos.transports.pcscd import (FIRST_PORT, LOCK_PATH, PcscWatcher, lock_vpcd_slots, log_tail,  # noqa: F401
                                     reader_name, start_pcscd, stop_pcscd)
from cardos.transports.vpcd import Slot, VpcdServer

ROOT = Path(__file__).resolve().parents[1]
LOCK_WAIT = 600.0


def _unavailable(reason: str):
    if os.environ.get("CARDOS_REQUIRE_PCSC"):
        pytest.fail(f"real PC/SC stack required (CARDOS_REQUIRE_PCSC) but {reason}", pytrace=False)
    pytest.skip(reason)


class Pcscd:
    """A running pcscd; ``owned`` if this test session started it (then stopped by PID)."""

    def __init__(self, proc: subprocess.Popen | None, log_path: Path | None):
        self.proc = proc
        self.log_path = log_path
        self.watch = PcscWatcher()
        self.readers = self.watch.readers

    @property
    def owned(self) -> bool:
        return self.proc is not None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @classmethod
    def start(cls, log_path: Path) -> Pcscd:
        daemon = cls(None, log_path)
        daemon.proc = start_pcscd(log_path, daemon.watch)
        return daemon

    def stop(self) -> None:
        self.watch.release()
        stop_pcscd(self.proc)

    def restart(self) -> None:
        """Stop our pcscd and start a new one (the vpcd ports go away and come back)."""
        if not self.owned:
            pytest.skip("pcscd was already running before the tests; not restarting someone else's daemon")
        self.stop()
        deadline = time.monotonic() + 5
        while pcscd_running() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.proc = start_pcscd(self.log_path, self.watch)

    def log_tail(self) -> str:
        return log_tail(self.log_path)

    def wait_card(self, reader: str, present: bool = True, timeout: float = 5.0) -> None:
        """Block until pcscd reports the card in ``reader`` present (or gone)."""
        try:
            self.watch.wait_card(reader, present, timeout)
        except TimeoutError as exc:
            raise AssertionError(str(exc)) from None


def _lock_stack() -> int:
    """The vpcd ports are machine-wide: test sessions on one machine take turns."""
    fd = lock_vpcd_slots(LOCK_WAIT)
    if fd is None:
        _unavailable(f"another test session held {LOCK_PATH} for {LOCK_WAIT:.0f} s")
    return fd


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory):
    """A pcscd with the vpcd driver (started and stopped by this session unless one already runs)."""
    try:
        import smartcard.scard  # noqa: F401  (pyscard must be importable)
    except ImportError as exc:
        _unavailable(f"pyscard is not installed ({exc})")
    lock = _lock_stack()
    try:
        yield from _pcscd(tmp_path_factory)
    finally:
        os.close(lock)


def _pcscd(tmp_path_factory):
    if pcscd_running():
        daemon = Pcscd(None, None)
        if not daemon.watch.vpcd_listed():
            _unavailable("a pcscd runs without the vpcd driver (restart it after installing vsmartcard-vpcd)")
        yield daemon
        daemon.watch.release()
        return
    if shutil.which("pcscd") is None and not Path("/usr/sbin/pcscd").exists():
        _unavailable("pcscd is not installed (run ./dev.sh setup)")
    if not vpcd_config():
        _unavailable("the vpcd driver is not installed (run ./dev.sh setup)")
    if os.geteuid() != 0:
        _unavailable("starting pcscd needs root")
    log_path = tmp_path_factory.mktemp("pcscd") / "pcscd.log"
    try:
        daemon = Pcscd.start(log_path)
    except RuntimeError as exc:
        _unavailable(str(exc))
    try:
        yield daemon
    finally:
        daemon.stop()


class Vpcd:
    """Cards served into pcscd from this process."""

    def __init__(self, pcscd: Pcscd):
        self.pcscd = pcscd
        self.servers: list[VpcdServer] = []
        self.connections: list = []

    def serve(self, *cards, port: int = FIRST_PORT, wait: bool = True) -> VpcdServer:
        """Serve ``cards`` into consecutive slots from ``port``; returns the server."""
        server = VpcdServer([Slot(card, "localhost", port + i) for i, card in enumerate(cards)])
        server.start(timeout=10)
        self.servers.append(server)
        if wait:
            for i in range(len(cards)):
                self.pcscd.wait_card(reader_name(port + i), True)
        return server

    def stop(self, server: VpcdServer, wait: bool = True) -> None:
        server.stop()
        if wait:
            for slot in server.slots:
                self.pcscd.wait_card(reader_name(slot.port), False)

    def connect(self, reader: str):
        """A connected pyscard connection (through ``smartcard.System.readers()``), released after the test."""
        connection = pcsc_connection(reader)
        self.connections.append(connection)
        return connection

    def close(self) -> None:
        for connection in self.connections:
            try:
                connection.release()
            except Exception:  # noqa: BLE001, S110 - the card or pcscd may be gone already
                pass
        for server in self.servers:
            server.stop()
        for server in self.servers:
            for slot in server.slots:
                self.pcscd.wait_card(reader_name(slot.port), False)


TEST_TIMEOUT = float(os.environ.get("CARDOS_PCSC_TEST_TIMEOUT", "60"))


class Watchdog:
    """Breaks a hung PC/SC test: after ``TEST_TIMEOUT`` s it calls ``action``
    (pull the cards, kill ``cardos serve``), which makes a blocked pcscd call
    fail instead of hanging the session."""

    def __init__(self, action, timeout: float = TEST_TIMEOUT):
        self.fired = False
        self._action = action
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self):
        self.fired = True
        self._action()

    def cancel(self):
        self._timer.cancel()
        if self.fired:
            pytest.fail(f"PC/SC test still running after {TEST_TIMEOUT:.0f} s: cards pulled by the watchdog",
                        pytrace=False)


@pytest.fixture
def vpcd(pcscd):
    """``vpcd.serve(card, port=...)``: cards in pcscd's vpcd slots for one test."""
    v = Vpcd(pcscd)
    watchdog = Watchdog(lambda: [server.stop(timeout=1) for server in v.servers])
    try:
        yield v
    finally:
        v.close()
        watchdog.cancel()


def pcsc_connection(reader: str):
    """A connected pyscard connection to ``reader`` found through ``smartcard.System.readers()``."""
    from smartcard.System import readers

    matches = [r for r in readers() if str(r) == reader]
    assert matches, f"no reader {reader!r} in {readers()}"
    connection = matches[0].createConnection()
    connection.connect()
    return connection


def cardos_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cardos.cli", *args]


class ServeProcess:
    """``cardos serve`` running as a child process."""

    def __init__(self, args: list[str], env: dict | None = None, ready_lines: int = 1, timeout: float = 15.0):
        self.args = args
        self.proc = subprocess.Popen(cardos_command("serve", *args), cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._ready = threading.Event()
        self._want = ready_lines
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout_lines, True), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines, False), daemon=True)]
        for t in self._threads:
            t.start()
        self.timeout = timeout

    def _pump(self, stream, lines, is_stdout):
        for line in stream:
            lines.append(line.rstrip("\n"))
            if is_stdout and sum("serving at" in l or "waiting for vpcd" in l for l in lines) >= self._want:
                self._ready.set()
        if is_stdout:
            self._ready.set()  # EOF: the process ended

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self) -> ServeProcess:
        if not self._ready.wait(self.timeout) or self.proc.poll() is not None:
            self.proc.poll()
            raise AssertionError(f"cardos serve not ready (rc={self.proc.returncode}): {self.stderr_text()}")
        return self

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def wait(self, timeout: float = 10.0) -> int:
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(2)
        return rc

    def stderr_text(self) -> str:
        time.sleep(0)  # let the pump threads catch up
        return "\n".join(self.stderr_lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def serve_process():
    """``serve_process(*args, env=None, ready=True)`` → a running ``cardos serve`` child."""
    procs: list[ServeProcess] = []

    def start(*args: str, env: dict | None = None, ready: bool = True, ready_lines: int = 1) -> ServeProcess:
        p = ServeProcess(list(args), env=env, ready_lines=ready_lines)
        procs.append(p)
        return p.wait_ready() if ready else p

    watchdog = Watchdog(lambda: [p.kill() for p in procs])
    try:
        yield start
    finally:
        for p in procs:
            p.kill()
        watchdog.cancel()


def free_tcp_port() -> int:
    """A local TCP port nothing listens on (just released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a purse card for transaction tests -------------------------------------------------------

PURSE_SERIAL = bytes.fromhex("3100000000000001")
HOST_TERMINAL = bytes.fromhex("000000000001")
POS_TERMINAL = bytes.fromhex("123456789012")


def issuer_keys():
    """TEST issuer master keys; the purse card's keys are diversified from them."""
    from cardos.terminal.keys import IssuerKeys

    h = bytes.fromhex
    return IssuerKeys(load=h("0F1E2D3C4B5A69788796A5B4C3D2E1F0"), purchase=h("00112233445566778899AABBCCDDEEFF"),
                      unload=h("FEDCBA98765432100123456789ABCDEF"), overdraw=h("13579BDF02468ACE0123456789ABCDEF"),
                      tac=h("2468ACE013579BDFFEDCBA9876543210"))


def purse_sample(serial: bytes = PURSE_SERIAL):
    """The sample issuance with purse keys diversified from :func:`issuer_keys` (for ``issue_sample``)."""
    from cardos.sample import SampleCard, SampleKeys

    masters = issuer_keys()
    keys = SampleKeys(**{role: masters.card_key(role, 1, serial)
                         for role in ("load", "purchase", "unload", "overdraw", "tac")})
    return SampleCard(serial=serial, keys=keys)


def purse_image(path: Path, serial: bytes = PURSE_SERIAL) -> Path:
    """A personalized card image (issued in process), ready for load and purchase."""
    from cardos import Card
    from cardos.sample import issue_sample

    card = Card.blank().save_as(path)
    issue_sample(card.transmit, purse_sample(serial))
    card.transmit(bytes.fromhex("00A4040009A0000000038698070100"))
    card.transmit(bytes.fromhex("00E200D007AA050000000000"))  # a composite (CAPP) record, tag AA
    card.power_off()
    return path
