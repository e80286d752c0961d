"""Shared fixtures: cards are built through APDUs, never by poking internals."""
from __future__ import annotations

import pytest

from cardos import Card
from cardos.sample import SampleCard, issue_sample

from .pcsc_fixtures import pcscd, serve_process, vpcd  # noqa: F401  (real pcscd + vpcd; see that module)


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


class Terminal:
    """A tiny test terminal: send hex, get (data, sw)."""

    def __init__(self, card: Card):
        self.card = card

    def send(self, apdu) -> tuple[bytes, int]:
        raw = hx(apdu) if isinstance(apdu, str) else apdu
        response = self.card.transmit(raw)
        assert len(response) >= 2, "card answered nothing"
        return response[:-2], int.from_bytes(response[-2:], "big")

    def sw(self, apdu) -> int:
        return self.send(apdu)[1]

    def ok(self, apdu) -> bytes:
        """Send, fetch a 61XX response with GET RESPONSE (as a T=0 driver does), expect 9000."""
        data, sw = self.send(apdu)
        if sw >> 8 == 0x61:
            data, sw = self.send(bytes((0x00, 0xC0, 0x00, 0x00, sw & 0xFF)))
        assert sw == 0x9000, f"{apdu if isinstance(apdu, str) else apdu.hex().upper()} -> {sw:04X}"
        return data

    def challenge(self, n: int = 4) -> bytes:
        return self.ok(f"00840000{n:02X}")


@pytest.fixture
def blank():
    card = Card.blank()
    card.power_on()
    return card


@pytest.fixture
def term(blank) -> Terminal:
    return Terminal(blank)


@pytest.fixture
def issued():
    """A card personalized with the sample issuance; returns (card, SampleCard)."""
    card = Card.blank()
    card.power_on()
    sample = issue_sample(card.transmit)
    card.power_on()
    return card, sample


def transport_auth(t: Terminal) -> None:
    """External authentication with the blank card's transport key FF×8."""
    from cardos.terminal.secure import external_auth_cryptogram

    t.ok("00A40000023F00 00")
    challenge = t.challenge()
    t.ok(b"\x00\x82\x00\x00\x08" + external_auth_cryptogram(b"\xff" * 8, challenge))


@pytest.fixture
def erased(term) -> Terminal:
    """A Terminal on a blank card whose MF was erased (empty MF: free access)."""
    transport_auth(term)
    term.ok("800E000000")
    return term


@pytest.fixture
def workbench(erased) -> Terminal:
    """An erased MF with a key file (add-key right free): files may be created."""
    erased.ok("80E0000007 3F 0100 01 F0 FF FF")
    return erased
