"""Deliberately broken cards for the conformance suite: a cardos Card whose answers are right
except for one MAC or one status word. The suite must fail on each, naming that command
(``tests/test_conformance.py``). Used as ``--cardos-factory tests.conformance_doubles:NAME``.
"""
from __future__ import annotations

from cardos import Card


class BrokenCard:
    """Wraps a blank :class:`cardos.Card`; ``mutate(card, apdu, response)`` may change an answer."""

    def __init__(self, mutate):
        self.inner = Card.blank()
        self.mutate = mutate
        self.last_init = None

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def power_on(self) -> bytes:
        self.last_init = None
        return self.inner.power_on()

    reset = power_on

    def power_off(self) -> None:
        self.last_init = None
        self.inner.power_off()

    def transmit(self, apdu) -> bytes:
        apdu = bytes(apdu)
        response = self.inner.transmit(apdu)
        changed = self.mutate(self, apdu, response) if len(response) >= 2 else None
        if len(apdu) >= 4 and apdu[0] & 0x80 and apdu[1] == 0x50:
            self.last_init = apdu[2]
        return response if changed is None else changed

    def __getattr__(self, name):  # the power-cut hook and the rest of the Card API
        return getattr(self.inner, name)


def _flip_last(response: bytes, back: int = 1) -> bytes:
    """Flip one bit of the data byte ``back`` bytes before the status word."""
    i = len(response) - 2 - back
    return response[:i] + bytes((response[i] ^ 0x01,)) + response[i + 1:]


def _sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


def _is(apdu: bytes, cla_class: int, ins: int, p1: int | None = None) -> bool:
    return len(apdu) >= 4 and apdu[0] & 0xF0 in (cla_class, cla_class | 0x04) and apdu[1] == ins \
        and (p1 is None or apdu[2] == p1)


# -- wrong MACs ------------------------------------------------------------------------------------

def _credit_tac(card, apdu, response):
    if _is(apdu, 0x80, 0x52) and _sw(response) == 0x9000 and len(response) == 6:
        return _flip_last(response)
    return None


def _purchase_mac2(card, apdu, response):
    if _is(apdu, 0x80, 0x54, 0x01) and card.last_init == 0x01 and _sw(response) == 0x9000 and len(response) == 10:
        return _flip_last(response)
    return None


def _load_mac1(card, apdu, response):
    if _is(apdu, 0x80, 0x50, 0x00) and _sw(response) == 0x9000 and len(response) == 18:
        return _flip_last(response)
    return None


def _unload_mac3(card, apdu, response):
    if _is(apdu, 0x80, 0x54, 0x03) and _sw(response) == 0x9000 and len(response) == 6:
        return _flip_last(response, 4)
    return None


# -- wrong status words ----------------------------------------------------------------------------

def _replace_sw(ins_test, old: int, new: int):
    def mutate(card, apdu, response):
        if ins_test(card, apdu) and _sw(response) == old:
            return response[:-2] + new.to_bytes(2, "big")
        return None
    return mutate


_read_record_6a82 = _replace_sw(lambda c, a: _is(a, 0x00, 0xB2), 0x6A83, 0x6A82)
_verify_blocked_63c0 = _replace_sw(lambda c, a: _is(a, 0x00, 0x20), 0x6983, 0x63C0)
_write_key_mac_6988 = _replace_sw(lambda c, a: _is(a, 0x80, 0xD4), 0x9302, 0x6988)
_insufficient_6985 = _replace_sw(lambda c, a: _is(a, 0x80, 0x50, 0x01), 0x9401, 0x6985)
_ext_auth_no_countdown = _replace_sw(lambda c, a: _is(a, 0x00, 0x82), 0x63C1, 0x63C2)


def credit_tac():
    return BrokenCard(_credit_tac)


def purchase_mac2():
    return BrokenCard(_purchase_mac2)


def load_mac1():
    return BrokenCard(_load_mac1)


def unload_mac3():
    return BrokenCard(_unload_mac3)


def read_record_6a82():
    return BrokenCard(_read_record_6a82)


def verify_blocked_63c0():
    return BrokenCard(_verify_blocked_63c0)


def write_key_mac_6988():
    return BrokenCard(_write_key_mac_6988)


def insufficient_6985():
    return BrokenCard(_insufficient_6985)


def ext_auth_no_countdown():
    return BrokenCard(_ext_auth_no_countdown)


def honest():
    """The wrapper with nothing changed (the suite must pass)."""
    return BrokenCard(lambda card, apdu, response: None)


#: factory name → the one command the suite must name.
EXPECTED = {
    "credit_tac": "CREDIT FOR LOAD",
    "purchase_mac2": "DEBIT FOR PURCHASE",
    "load_mac1": "INITIALIZE FOR LOAD",
    "unload_mac3": "DEBIT FOR UNLOAD",
    "read_record_6a82": "READ RECORD",
    "verify_blocked_63c0": "VERIFY",
    "write_key_mac_6988": "WRITE KEY",
    "insufficient_6985": "INITIALIZE FOR PURCHASE",
    "ext_auth_no_countdown": "EXTERNAL AUTHENTICATE",
}
