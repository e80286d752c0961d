"""The card side of vsmartcard's vpcd protocol: a card inside a real pcscd.

pcscd loads the vpcd driver (Debian ``vsmartcard-vpcd``), which opens one
TCP port per reader slot (``Virtual PCD 00 00`` on 35963, ``… 00 01`` on
35964, on all interfaces). A card is a TCP *client* of that port: while it
is connected the reader holds a card; closing the connection removes it.

Wire format, both ways: a 2-byte big-endian length, then that many bytes.
From vpcd a 1-byte message is a control code (``00`` power off, ``01``
power on, ``02`` reset, ``04`` get ATR); anything else is a command APDU.
The card answers only get-ATR (with its ATR, at any time, even unpowered)
and APDUs (data ‖ SW1 SW2) — never the power codes. A card that has
nothing to say (a simulated power cut) closes the connection instead of
sending an empty answer: bookworm's vpcd 0.8 would wait for more bytes.

A :class:`Slot` keeps one card in one slot from a background thread:
exact-length reads, ``TCP_QUICKACK`` re-armed after every read (bookworm's
vpcd 0.8 otherwise stalls 44 ms per APDU on delayed ACKs), reconnection
with backoff when pcscd restarts, simulated removal and re-insertion.
:class:`VpcdServer` runs several slots (``cardos serve A B``).
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
import time

from .diagnose import VpcdError, await_activation, busy_message, explain_connect_error
from .shared_card import PurseSessionWatch

log = logging.getLogger(__name__)

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 35963  # 0x8C7B, vpcd's first slot

POWER_OFF, POWER_ON, RESET, GET_ATR = 0x00, 0x01, 0x02, 0x04
MAX_MESSAGE = 0xFFFF

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_IPPROTO_TCP = socket.IPPROTO_TCP
_pack_length = struct.Struct(">H").pack
_WRONG_LENGTH = b"\x67\x00"
# control code -> (Card method, trace event)
_POWER_EVENTS = {POWER_ON: ("power_on", "power on"), RESET: ("reset", "reset"), POWER_OFF: ("power_off", "power off")}

#: Slot states (``Slot.state``).
IDLE, CONNECTING, INSERTED, RETRYING, REMOVED, FAILED, STOPPED = (
    "idle", "connecting", "inserted", "retrying", "removed", "failed", "stopped")


class _NoPoll(Exception):
    """Connected, but vpcd never asked for the ATR: the slot is taken."""


class _Torn(Exception):
    """The card was pulled while it answered (simulated)."""


class _Mute(Exception):
    """The card answered nothing (a simulated power cut)."""


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST``, ``:PORT`` or ``[IPv6]:PORT`` → ``(host, port)``.

    >>> parse_address("localhost:35964")
    ('localhost', 35964)
    >>> parse_address("[::1]:35963"), parse_address(":35964"), parse_address("example.org")
    (('::1', 35963), ('localhost', 35964), ('example.org', 35963))
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {text!r} (expected [IPv6]:PORT)")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError(f"bad address {text!r} (write IPv6 addresses as [ADDR]:PORT)")
    else:
        host, port_text = text, ""
    host = host or DEFAULT_HOST
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {text!r} (expected 1-65535)")
    return host, int(port_text)


class Slot:
    """One card in one vpcd reader slot, served from a background thread.

    ``card`` needs ``atr``, ``power_on()``, ``reset()``, ``power_off()`` and
    ``transmit(bytes-like) -> bytes`` (a :class:`cardos.Card`); ``transmit``
    gets a view of the receive buffer and must not keep it. ``trace``: an
    :class:`cardos.transports.trace.ApduTrace` that gets every APDU and power
    event (never the ATR polls).
    """

    def __init__(self, card, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, label: str | None = None,
                 connect_timeout: float = 3.0, poll_timeout: float = 3.0, max_backoff: float = 1.0, trace=None):
        self.card = card
        self.host = host
        self.port = port
        self.label = label or f"{host}:{port}"
        self.card = PurseSessionWatch(card, self.label)  # warns when shared clients interleave purse transactions
        self.connect_timeout = connect_timeout
        self.poll_timeout = poll_timeout
        self.max_backoff = max_backoff
        self.trace = trace
        self.apdus = 0            # APDUs answered since start
        self.insertions = 0       # times vpcd took the card in
        self.error: VpcdError | None = None
        self._cond = threading.Condition()
        self._state = IDLE
        self._present = True
        self._stopping = False
        self._tear = False
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._buf = bytearray(MAX_MESSAGE)
        self._view = memoryview(self._buf)

    def __repr__(self) -> str:
        return f"<Slot {self.label} {self._state}>"

    # -- control (any thread) ---------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def present(self) -> bool:
        """Whether the card is (meant to be) in the reader."""
        return self._present

    def start(self, fail_fast: bool = True) -> Slot:
        """Start serving. With ``fail_fast`` the first connection problem ends the
        slot (state ``failed``, :attr:`error` set); later ones are retried forever."""
        if self._thread is not None:
            raise RuntimeError("slot already started")
        self._thread = threading.Thread(target=self._run, args=(fail_fast,), name=f"vpcd {self.label}", daemon=True)
        self._thread.start()
        return self

    def wait_state(self, *states: str, timeout: float | None = None) -> bool:
        """Wait until the slot is in one of ``states``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._state in states, timeout)

    def wait_ready(self, timeout: float | None = None) -> VpcdError | None:
        """Wait for the first insertion (or failure); returns the error if it failed."""
        if not self.wait_state(INSERTED, FAILED, STOPPED, REMOVED, timeout=timeout):
            return VpcdError(f"{self.label}: no answer from vpcd within {timeout} s")
        return self.error

    def wait_inserted(self, count: int | None = None, timeout: float | None = None) -> bool:
        """Wait until vpcd has taken the card in ``count`` times (default: once
        more than now) and it is in the reader; False on timeout."""
        with self._cond:
            want = self.insertions + 1 if count is None else count
            return self._cond.wait_for(lambda: self.insertions >= want and self._state == INSERTED, timeout)

    def remove(self, wait: float | None = 5.0) -> None:
        """Pull the card out of the reader (close the connection) until :meth:`insert`."""
        with self._cond:
            self._present = False
            self._shutdown_locked()
            self._cond.notify_all()
        if wait and threading.current_thread() is not self._thread:
            self.wait_state(REMOVED, FAILED, STOPPED, IDLE, timeout=wait)

    def insert(self) -> None:
        """Put the card back (reconnect to vpcd)."""
        with self._cond:
            self._present = True
            self._cond.notify_all()

    def toggle(self) -> bool:
        """Remove the card if present, else insert it; returns the new presence."""
        if self._present:
            self.remove(wait=None)
            return False
        self.insert()
        return True

    def tear(self) -> None:
        """Execute the next APDU, then pull the card before its answer leaves
        (the terminal never sees the response). The card stays out until :meth:`insert`."""
        self._tear = True

    def stop(self, timeout: float | None = 5.0) -> None:
        """Remove the card and end the thread (the clean way to exit)."""
        self._signal_stop()
        if self._thread is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _signal_stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._shutdown_locked()
            self._cond.notify_all()

    def _shutdown_locked(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv with EOF
            except OSError:
                pass

    def _set_state(self, state: str) -> None:
        with self._cond:
            self._state = state
            self._cond.notify_all()

    # -- the slot thread --------------------------------------------------------
    def _run(self, fail_fast: bool) -> None:
        backoff = 0.05
        reported = False
        try:
            while True:
                with self._cond:
                    if not self._present and not self._stopping:
                        self._state = REMOVED
                        self._cond.notify_all()
                    self._cond.wait_for(lambda: self._present or self._stopping)
                    if self._stopping:
                        return
                    self._state = CONNECTING
                    self._cond.notify_all()
                try:
                    self._connect_and_serve(fail_fast and not self.insertions)
                    backoff = 0.05
                    continue
                except VpcdError as exc:
                    if fail_fast and not self.insertions:
                        self.error = exc
                        self._set_state(FAILED)
                        log.debug("%s: %s", self.label, exc)
                        return
                    if not reported:
                        log.warning("%s (retrying)", exc)
                        reported = True
                if self.insertions or reported:
                    log.debug("%s: reconnecting in %.2f s", self.label, backoff)
                with self._cond:
                    self._state = RETRYING
                    self._cond.notify_all()
                    self._cond.wait_for(lambda: self._stopping or not self._present, backoff)
                backoff = min(backoff * 2, self.max_backoff)
        finally:
            with self._cond:
                self._sock = None
                if self._state != FAILED:
                    self._state = STOPPED
                self._cond.notify_all()

    def _connect_and_serve(self, first: bool) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except ConnectionRefusedError as exc:
            # a socket-activated pcscd opens the vpcd ports only once a client wakes it
            sock = await_activation(self.host, self.port, self.connect_timeout) if first else None
            if sock is None:
                raise explain_connect_error(self.host, self.port, exc) from None
        except OSError as exc:
            raise explain_connect_error(self.host, self.port, exc) from None
        with self._cond:
            if self._stopping or not self._present:
                sock.close()
                return
            self._sock = sock
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: connected from port %d", self.label, sock.getsockname()[1])
        was_inserted = False
        try:
            sock.setsockopt(_IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._serve(sock)
            was_inserted = True
        except _NoPoll:
            raise VpcdError(busy_message(self.host, self.port)) from None
        except _Torn:
            was_inserted = True
            with self._cond:
                self._present = False
            log.info("%s: card pulled out while it answered (tear)", self.label)
        except _Mute:
            # An empty answer would leave bookworm's vpcd 0.8 blocked in recv();
            # dropping the connection makes it fail the command and eject the
            # card, which comes straight back (the terminal re-powers it).
            was_inserted = True
            log.info("%s: the card answered nothing (power cut): dropped and re-inserted", self.label)
        except (OSError, EOFError) as exc:
            was_inserted = self._state == INSERTED
            if not was_inserted:
                raise explain_connect_error(self.host, self.port, exc) from None
            if self._present and not self._stopping:
                log.info("%s: vpcd closed the connection (%s); reconnecting", self.label,
                         exc.strerror if isinstance(exc, OSError) and exc.strerror else "pcscd stopped or card ejected")
        finally:
            with self._cond:
                self._sock = None
            sock.close()
            self.card.power_off()
        if was_inserted and not self._present and not self._stopping:
            log.info("%s: card removed", self.label)
        if was_inserted and self.trace is not None:
            self.trace.event("card removed", self.label)

    def _serve(self, sock: socket.socket) -> None:
        """The message loop; returns or raises when the connection ends."""
        card = self.card
        buf = self._buf
        view = self._view
        recv_into = sock.recv_into
        sendmsg = sock.sendmsg
        setsockopt = sock.setsockopt
        quickack = _QUICKACK
        trace = self.trace
        clock = time.perf_counter

        def recv_exact(n: int) -> None:
            got = 0
            while got < n:
                k = recv_into(view[got:n])
                if not k:
                    raise EOFError("connection closed")
                if quickack is not None:
                    setsockopt(_IPPROTO_TCP, quickack, 1)  # Linux clears it after each read
                got += k

        def send(payload: bytes) -> None:
            n = len(payload)
            if n > MAX_MESSAGE:  # an extended response vpcd cannot frame
                payload, n = _WRONG_LENGTH, 2
            sent = sendmsg((_pack_length(n), payload))
            if sent != n + 2:
                sock.sendall((_pack_length(n) + payload)[sent:])

        sock.settimeout(self.poll_timeout)
        try:
            recv_exact(2)
        except TimeoutError:
            raise _NoPoll() from None
        sock.settimeout(None)
        self.insertions += 1
        self._set_state(INSERTED)
        log.info("%s: card inserted", self.label)
        if trace is not None:
            trace.event("card inserted", self.label)

        while True:
            length = buf[0] << 8 | buf[1]
            recv_exact(length)
            if length == 1:
                code = buf[0]
                if code == GET_ATR:  # pcscd's presence poll, ~30 a second: never traced
                    send(card.atr)
                elif code in _POWER_EVENTS:
                    getattr(card, _POWER_EVENTS[code][0])()
                    if trace is not None:
                        trace.event(_POWER_EVENTS[code][1], self.label)
            else:
                if trace is None:
                    response = card.transmit(view[:length])
                else:
                    command = bytes(view[:length])
                    started = clock()
                    response = card.transmit(command)
                    trace.exchange(command, response, clock() - started, self.label)
                self.apdus += 1
                if self._tear:
                    self._tear = False
                    if trace is not None:
                        trace.event("torn: the card was pulled before this answer left", self.label)
                    raise _Torn()
                if not response:
                    raise _Mute()
                send(response)
            recv_exact(2)


class VpcdServer:
    """Several cards in several vpcd slots, served from one process.

    >>> from cardos import Card
    >>> server = VpcdServer([Slot(Card.blank(), "localhost", 35963)])
    >>> [slot.label for slot in server.slots]
    ['localhost:35963']
    """

    def __init__(self, slots):
        self.slots = list(slots)

    def start(self, fail_fast: bool = True, timeout: float | None = 10.0) -> VpcdServer:
        """Connect every slot. With ``fail_fast`` wait until each card is inserted;
        on a problem stop everything and raise :class:`VpcdError` (one line, with the fix)."""
        for slot in self.slots:
            slot.start(fail_fast)
        if fail_fast:
            for slot in self.slots:
                error = slot.wait_ready(timeout)
                if error is not None:
                    self.stop()
                    raise error
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Remove every card (close the connections) and end the threads."""
        for slot in self.slots:
            slot._signal_stop()
        for slot in self.slots:
            slot.stop(timeout)

    def __enter__(self) -> VpcdServer:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
