"""The vpcd client against a fake vpcd in this process (no pcscd, no root needed)."""
from __future__ import annotations

import socket
import struct
import time

import pytest

from cardos import Card
from cardos.transports import vpcd
from cardos.transports.diagnose import VpcdError
from cardos.transports.vpcd import INSERTED, REMOVED, Slot, VpcdServer

from .pcsc_fixtures import free_tcp_port

SELECT_MF = bytes.fromhex("00A40000023F00")


class FakeVpcd:
    """The server side of the protocol, driven by the test."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(5)
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(5)
        return self.conn

    def send(self, payload: bytes, pieces: int = 1, pause: float = 0.0) -> None:
        data = struct.pack(">H", len(payload)) + payload
        step = max(1, -(-len(data) // pieces))
        for i in range(0, len(data), step):
            self.conn.sendall(data[i:i + step])
            if pause:
                time.sleep(pause)

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.conn.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    def recv(self) -> bytes:
        (n,) = struct.unpack(">H", self._exact(2))
        return self._exact(n)

    def ask(self, payload: bytes, **kw) -> bytes:
        self.send(payload, **kw)
        return self.recv()

    def close(self) -> None:
        if self.conn:
            self.conn.close()
        self.listener.close()


class StubCard:
    """A card whose answers the test decides."""

    atr = bytes.fromhex("3B00")
    powered = False

    def __init__(self, answer: bytes = b"\x90\x00"):
        self.answer = answer
        self.seen: list[bytes] = []
        self.events: list[str] = []

    def power_on(self):
        self.events.append("on")
        self.powered = True
        return self.atr

    def reset(self):
        self.events.append("reset")
        return self.atr

    def power_off(self):
        self.events.append("off")
        self.powered = False

    def transmit(self, apdu) -> bytes:
        self.seen.append(bytes(apdu))
        return self.answer


@pytest.fixture
def fake():
    f = FakeVpcd()
    yield f
    f.close()


@pytest.fixture
def slot_for(fake):
    slots = []

    def make(card, **kw):
        slot = Slot(card, "127.0.0.1", fake.port, **kw).start()
        slots.append(slot)
        fake.accept()
        return slot

    yield make
    for slot in slots:
        slot.stop()


def test_atr_answered_at_any_time_and_power_codes_never_answered(fake, slot_for):
    card = Card.blank()
    slot_for(card)
    assert fake.ask(b"\x04") == card.atr          # before any power on
    assert not card.powered
    fake.send(b"\x01")                             # power on: no answer ...
    assert fake.ask(b"\x04") == card.atr          # ... so the next message read is this ATR
    assert card.powered
    fake.send(b"\x02")                             # reset: no answer
    fake.send(b"\x00")                             # power off: no answer
    assert fake.ask(b"\x04") == card.atr
    assert not card.powered
    fake.send(b"\x01")
    assert fake.ask(SELECT_MF) == bytes.fromhex("6117")


def test_messages_split_into_single_bytes_are_read_exactly(fake, slot_for):
    card = StubCard(b"\x61\x17")
    slot_for(card)
    assert fake.ask(b"\x04", pieces=3, pause=0.01) == card.atr
    assert fake.ask(SELECT_MF, pieces=9, pause=0.01) == b"\x61\x17"
    assert card.seen == [SELECT_MF]


def test_extended_apdu_arrives_whole(fake, slot_for):
    card = StubCard()
    slot_for(card)
    apdu = bytes.fromhex("00D60000") + b"\x00" + (6000).to_bytes(2, "big") + bytes(range(256)) * 23 + bytes(112)
    assert fake.ask(apdu, pieces=7, pause=0.005) == b"\x90\x00"
    assert card.seen == [apdu]


def test_a_mute_card_drops_the_connection_and_comes_back(fake, slot_for):
    card = StubCard(b"")
    slot = slot_for(card)
    fake.send(SELECT_MF)
    assert fake.conn.recv(1) == b""                 # no (empty) answer: vpcd 0.8 would wait for one
    card.answer = b"\x90\x00"
    fake.accept()                                   # re-inserted at once
    assert fake.ask(SELECT_MF) == b"\x90\x00"
    assert slot.insertions == 2


def test_a_response_vpcd_cannot_frame_becomes_6700(fake, slot_for):
    slot_for(StubCard(bytes(70000) + b"\x90\x00"))
    assert fake.ask(SELECT_MF) == b"\x67\x00"


def test_counts_apdus_and_insertions(fake, slot_for):
    slot = slot_for(StubCard())
    fake.ask(b"\x04")
    fake.ask(SELECT_MF)
    fake.ask(SELECT_MF)
    assert (slot.apdus, slot.insertions, slot.state) == (2, 1, INSERTED)


def test_reconnects_when_vpcd_goes_away(fake, slot_for):
    card = StubCard()
    slot = slot_for(card)
    fake.send(b"\x01")
    assert fake.ask(b"\x04") == card.atr
    fake.conn.close()                               # pcscd stopped
    fake.accept()                                   # the card comes back by itself
    assert fake.ask(b"\x04") == card.atr
    assert card.events == ["on", "off"]             # losing the reader cut the card's power
    assert slot.insertions == 2


def test_reconnect_backs_off_while_the_port_refuses():
    port = free_tcp_port()
    card = StubCard()
    slot = Slot(card, "127.0.0.1", port, max_backoff=0.2)
    slot.start(fail_fast=False)
    try:
        time.sleep(0.3)                             # refused a few times; keeps trying
        listener = socket.create_server(("127.0.0.1", port))
        listener.settimeout(5)
        conn, _ = listener.accept()
        conn.sendall(b"\x00\x01\x04")
        assert conn.recv(64)[2:] == card.atr
        conn.close()
        listener.close()
    finally:
        slot.stop()


def test_remove_and_insert(fake, slot_for):
    card = StubCard()
    slot = slot_for(card)
    fake.send(b"\x01")
    assert fake.ask(b"\x04") == card.atr
    slot.remove()
    assert slot.state == REMOVED and not slot.present
    assert fake.conn.recv(1) == b""                 # vpcd sees the card gone
    assert card.events[-1] == "off"
    slot.insert()
    fake.accept()
    assert fake.ask(b"\x04") == card.atr
    assert slot.toggle() is False
    assert fake.conn.recv(1) == b""


def test_tear_executes_the_command_but_never_answers(fake, slot_for):
    card = StubCard()
    slot = slot_for(card)
    fake.ask(b"\x04")
    slot.tear()
    fake.send(SELECT_MF)
    assert fake.conn.recv(1) == b""                 # no answer, the card is gone
    assert card.seen == [SELECT_MF]                 # ... but it did run the command
    assert slot.wait_state(REMOVED, timeout=2)
    slot.insert()
    fake.accept()
    assert fake.ask(SELECT_MF) == b"\x90\x00"       # the next command is answered again


def test_stop_removes_the_card(fake, slot_for):
    slot = slot_for(StubCard())
    fake.ask(b"\x04")
    slot.stop()
    assert fake.conn.recv(1) == b""


def test_a_slot_that_is_never_polled_is_reported_busy(fake):
    server = VpcdServer([Slot(StubCard(), "127.0.0.1", fake.port, poll_timeout=0.3)])
    with pytest.raises(VpcdError, match="busy: it accepted the connection but never polled"):
        server.start()


def test_refused_port_without_pcscd_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PCSCLITE_CSOCK_NAME", str(tmp_path / "no-pcscd.comm"))
    server = VpcdServer([Slot(StubCard(), "localhost", free_tcp_port())])
    with pytest.raises(VpcdError, match=r"pcscd is not running .* start it with `pcscd`") as info:
        server.start()
    assert "\n" not in str(info.value)
    assert server.slots[0].state == vpcd.FAILED


def test_two_slots_in_one_server():
    fakes = [FakeVpcd(), FakeVpcd()]
    cards = [StubCard(b"\x90\x01"), StubCard(b"\x90\x02")]
    server = VpcdServer([Slot(c, "127.0.0.1", f.port) for c, f in zip(cards, fakes)])
    for slot in server.slots:
        slot.start()
    try:
        for f in fakes:
            f.accept()
        assert fakes[1].ask(SELECT_MF) == b"\x90\x02"
        assert fakes[0].ask(SELECT_MF) == b"\x90\x01"
    finally:
        server.stop()
        for f in fakes:
            f.close()
