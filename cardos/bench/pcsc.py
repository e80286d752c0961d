"""Through a real pcscd + vpcd, with pyscard's low-level ``SCardTransmit``.

vpcd has two slots (``Virtual PCD 00 00`` on 35963, ``… 00 01`` on 35964), so
cards are measured in pairs, side by side in short alternating blocks.
``cardos serve IMAGE`` (persistence on) stays in slot 1 while slot 0 holds:

A. the transport floor;
B. vicc (with ``TCP_QUICKACK``), on the ISO APDUs;
C. the bench card in memory (persistence off), APDUs and transactions.

D. ``cardos serve A B``: two served cards, purchases on one alone, then on both at once.

Every card runs in its own process. pcscd and the vpcd ports are
machine-wide: the benchmark takes the same lock as the test suite's PC/SC
fixtures (``$CARDOS_PCSC_LOCK``, default ``/tmp/cardos-pcsc-tests.lock``),
uses a pcscd that already runs, or starts one (root) and stops it by PID.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..transports.diagnose import pcscd_running, vpcd_config
from ..transports.pcscd import (FIRST_PORT, LOCK_PATH, PcscWatcher, lock_vpcd_slots, reader_name, start_pcscd,
                               stop_pcscd)
from .stats import sample, summary
from .workload import OPS, SELECT_MF, TRANSACTIONS, Terminal, check, make_card

BLOCK = 25     # APDUs per alternating block
TX_BLOCK = 10  # transactions per alternating block


class StackUnavailable(Exception):
    """No usable pcscd + vpcd (the message says why)."""


class Stack:
    """pcscd with the vpcd driver for the duration of the benchmark."""

    def __init__(self, say=print, lock_wait: float = 600.0, log_dir: str | None = None):
        self.watch = PcscWatcher()
        self.readers = self.watch.readers
        self.say = say
        self.lock_wait = lock_wait
        self.log_dir = log_dir or tempfile.gettempdir()
        self.proc: subprocess.Popen | None = None
        self._lock_fd = -1

    # -- lifetime ---------------------------------------------------------------------
    def __enter__(self) -> Stack:
        self._lock()
        try:
            self._ensure_pcscd()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.watch.release()
        stop_pcscd(self.proc)  # our own pcscd, by PID
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    @property
    def owned(self) -> bool:
        return self.proc is not None

    def _lock(self) -> None:
        def waiting():
            self.say(f"pcsc: waiting for {LOCK_PATH} (a test session or another benchmark uses the vpcd slots)")

        fd = lock_vpcd_slots(self.lock_wait, waiting)
        if fd is None:
            raise StackUnavailable(f"{LOCK_PATH} held by another PC/SC user for {self.lock_wait:.0f} s")
        self._lock_fd = fd

    def _ensure_pcscd(self) -> None:
        if pcscd_running():
            if not self.watch.vpcd_listed():
                raise StackUnavailable("a pcscd runs without the vpcd driver (restart it after installing "
                                       "vsmartcard-vpcd)")
            self.say("pcsc: using the pcscd that is already running")
            return
        if shutil.which("pcscd") is None and not Path("/usr/sbin/pcscd").exists():
            raise StackUnavailable("pcscd is not installed (./dev.sh setup)")
        if not vpcd_config():
            raise StackUnavailable("the vpcd driver is not installed (./dev.sh setup)")
        if os.geteuid() != 0:
            raise StackUnavailable("no pcscd running, and starting one needs root")
        try:
            self.proc = start_pcscd(os.path.join(self.log_dir, "cardos-bench-pcscd.log"), self.watch)
        except RuntimeError as exc:
            raise StackUnavailable(str(exc)) from None
        self.say(f"pcsc: started pcscd (pid {self.proc.pid})")

    def wait_card(self, reader: str, present: bool = True, timeout: float = 10.0) -> None:
        try:
            self.watch.wait_card(reader, present, timeout)
        except TimeoutError as exc:
            raise RuntimeError(str(exc)) from None


class Connection:
    """One pyscard low-level connection (T=1, shared)."""

    def __init__(self, reader: str):
        from smartcard import scard

        self.scard = scard
        self.reader = reader
        hresult, self.ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            raise RuntimeError(f"SCardEstablishContext: {scard.SCardGetErrorMessage(hresult)}")
        hresult, self.hcard, _protocol = scard.SCardConnect(self.ctx, reader, scard.SCARD_SHARE_SHARED,
                                                            scard.SCARD_PROTOCOL_T1)
        if hresult != scard.SCARD_S_SUCCESS:
            scard.SCardReleaseContext(self.ctx)
            raise RuntimeError(f"SCardConnect {reader!r}: {scard.SCardGetErrorMessage(hresult)}")
        self.pci = scard.SCARD_PCI_T1

    def transmit(self, apdu: bytes) -> bytes:
        hresult, response = self.scard.SCardTransmit(self.hcard, self.pci, list(apdu))
        if hresult != self.scard.SCARD_S_SUCCESS:
            raise RuntimeError(f"SCardTransmit: {self.scard.SCardGetErrorMessage(hresult)}")
        return bytes(response)

    def timed(self, apdu: bytes):
        """The cheapest call for timing: the APDU list is built once."""
        send, hcard, pci, apdu_list = self.scard.SCardTransmit, self.hcard, self.pci, list(apdu)
        return lambda: send(hcard, pci, apdu_list)

    def close(self) -> None:
        self.scard.SCardDisconnect(self.hcard, self.scard.SCARD_LEAVE_CARD)
        self.scard.SCardReleaseContext(self.ctx)


class CardProcess:
    """A card in vpcd slot(s), run as a child process; stopped by PID."""

    def __init__(self, name: str, command: list[str], ports: list[int], log_dir: str, env: dict | None = None):
        self.name = name
        self.ports = ports
        self.log_path = os.path.join(log_dir, f"{name.replace(' ', '_')}.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env)

    def log_tail(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-600:]
        except OSError:
            return ""

    def wait_inserted(self, stack: Stack, timeout: float = 20.0) -> None:
        for port in self.ports:
            try:
                stack.wait_card(reader_name(port), True, timeout)
            except RuntimeError as exc:
                raise RuntimeError(f"{self.name}: {exc} (exit code {self.proc.poll()}; log: {self.log_tail()})")

    def stop(self, stack: Stack | None = None) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if stack is not None:
            for port in self.ports:
                try:
                    stack.wait_card(reader_name(port), False, 5.0)
                except RuntimeError:
                    pass


def _cardos(*args: str) -> list[str]:
    return [sys.executable, "-m", "cardos.cli", *args]


def _proc(*args: str) -> list[str]:
    return [sys.executable, "-m", "cardos.bench.cardproc", *args]


def _save_card(path: str, serial: int) -> str:
    make_card(serial).save_as(path)
    return path


class _Run:
    def __init__(self, stack: Stack, cfg, workdir: str, say):
        self.stack, self.cfg, self.workdir, self.say = stack, cfg, workdir, say
        self.n_apdu = cfg.pcsc_apdus
        self.n_tx = cfg.transactions

    def start(self, *cards: CardProcess) -> list[Connection]:
        try:
            for card in cards:
                card.wait_inserted(self.stack)
            return [Connection(reader_name(port)) for card in cards for port in card.ports]
        except BaseException:
            for card in cards:
                card.stop(self.stack)
            raise

    def apdus(self, players) -> dict:
        """Per-APDU samples of several cards in short alternating blocks (the order rotates every
        block), so a burst of load from elsewhere on the machine hits every side alike.

        ``players``: ``(name, connection, ops, setup)``; ``setup`` None = each op's own setup
        (our card), else the APDU sent before every block (vicc: SELECT MF; floor: nothing)."""
        for name, conn, ops, setup in players:
            for op in ops:
                if setup is None:
                    if op.setup:
                        conn.transmit(op.setup)
                    check(op, conn.transmit(op.apdu), name)
        out = {name: {} for name, *_ in players}
        for op in OPS:
            jobs = [(name, conn, op.setup if setup is None else setup) for name, conn, ops, setup in players
                    if op in ops]
            if not jobs:
                continue
            for i in range(max(1, self.n_apdu // BLOCK)):
                k = i % len(jobs)
                for name, conn, setup in jobs[k:] + jobs[:k]:
                    if setup:
                        conn.transmit(setup)
                    out[name].setdefault(op.key, []).extend(sample(conn.timed(op.apdu), BLOCK, warmup=1))
        return {name: {key: summary(v) for key, v in d.items()} for name, d in out.items()}

    def transactions(self, conns: dict) -> dict:
        """Purchases and loads on each card of ``conns`` (name -> connection), alternating blocks."""
        terminals = {name: Terminal(conn.transmit) for name, conn in conns.items()}
        out = {name: {key: [] for key, _ in TRANSACTIONS} for name in conns}
        for i in range(max(1, self.n_tx // TX_BLOCK)):
            names = list(terminals) if i % 2 == 0 else list(terminals)[::-1]
            for key, _title in TRANSACTIONS:
                for name in names:
                    out[name][key] += sample(getattr(terminals[name], key), TX_BLOCK, warmup=1)
        return {name: {key: summary(v) for key, v in d.items()} for name, d in out.items()}


def run(cfg, say=print, vicc_env: dict | None = None) -> dict:
    """Phases A-D (see the module docstring); ``vicc_env``: the vicc worker environment (None: no vicc)."""
    workdir = tempfile.mkdtemp(prefix="cardos-bench-pcsc-", dir=cfg.image_dir)
    p0, p1 = FIRST_PORT, FIRST_PORT + 1
    iso = [op for op in OPS if op.iso]
    result: dict = {}
    try:
        with Stack(say, log_dir=workdir) as stack:
            result["pcscd"] = "started by the benchmark" if stack.owned else "already running"
            bench = _Run(stack, cfg, workdir, say)
            say(f"pcsc: {bench.n_apdu} APDUs per kind and card in alternating blocks of {BLOCK}, "
                f"{bench.n_tx} transactions per kind and card in blocks of {TX_BLOCK}")
            image = _save_card(os.path.join(workdir, "on.card"), 201)
            served = CardProcess("cardos serve", _cardos("serve", image, "--vpcd", f"localhost:{p1}", "-q"), [p1],
                                 workdir)
            try:
                (ours,) = bench.start(served)
                # A: the floor beside cardos serve
                floor = CardProcess("floor", _proc("floor", "--port", str(p0)), [p0], workdir)
                try:
                    (floor_conn,) = bench.start(floor)
                    say("pcsc A: transport floor | cardos serve (persistence on)")
                    a = bench.apdus([("floor", floor_conn, OPS, b""), ("on", ours, OPS, None)])
                    result["floor"], result["apdus_on"] = a["floor"], a["on"]
                    floor_conn.close()
                finally:
                    floor.stop(stack)
                # B: vicc beside cardos serve
                if vicc_env is not None:
                    from .vicc import worker_command

                    vicc = CardProcess("vicc", worker_command("serve", "--port", str(p0)), [p0], workdir, env=vicc_env)
                    try:
                        (vicc_conn,) = bench.start(vicc)
                        say("pcsc B: vicc (TCP_QUICKACK) | cardos serve (persistence on)")
                        b = bench.apdus([("vicc", vicc_conn, iso, SELECT_MF), ("on", ours, iso, None)])
                        result["vicc"], result["apdus_on_vicc"] = b["vicc"], b["on"]
                        vicc_conn.close()
                    finally:
                        vicc.stop(stack)
                # C: persistence off (the card in memory) beside on
                memory = CardProcess("memory card", _proc("memory", "--port", str(p0), "--serial", "202"), [p0],
                                     workdir)
                try:
                    (off,) = bench.start(memory)
                    say("pcsc C: card in memory (persistence off) | cardos serve (persistence on)")
                    c = bench.apdus([("off", off, OPS, None), ("on", ours, OPS, None)])
                    result["apdus_off"], result["apdus_on_off"] = c["off"], c["on"]
                    t = bench.transactions({"off": off, "on": ours})
                    result["transactions_off"], result["transactions_on"] = t["off"], t["on"]
                    off.close()
                finally:
                    memory.stop(stack)
                ours.close()
            finally:
                served.stop(stack)

            # D: two served cards at once
            images = [_save_card(os.path.join(workdir, f"two{i}.card"), 300 + i) for i in range(2)]
            pair = CardProcess("cardos serve two", _cardos("serve", *images, "--vpcd", f"localhost:{p0}", "-q"),
                               [p0, p1], workdir)
            try:
                conns = bench.start(pair)
                say("pcsc D: cardos serve A B: purchases on one card, then on both at once")
                result["two_cards"] = _two_cards(conns, bench.n_tx)
                for conn in conns:
                    conn.close()
            finally:
                pair.stop(stack)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _two_cards(conns: list[Connection], n: int) -> dict:
    terminals = [Terminal(c.transmit) for c in conns]
    alone = sample(terminals[0].purchase, n, warmup=min(10, n))
    alone_s = sum(alone) / 1e9
    results: list = [None, None]
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = sample(terminals[i].purchase, n)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    both_s = time.perf_counter() - t0
    return {"alone": summary(alone), "alone_per_s": round(n / alone_s, 1),
            "together": [summary(r) for r in results], "together_per_s": round(2 * n / both_s, 1)}
