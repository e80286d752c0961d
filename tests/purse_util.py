"""Helpers for the purse tests: cards built through APDUs, forced randoms, MAC arithmetic.

Cards are personalized with APDUs only (the sample issuance or a small
builder below); tests then judge the card by its responses, byte-exact.
"""
from __future__ import annotations

import json
import random as _random
from datetime import datetime

from cardos import Card
from cardos.apdu import build
from cardos.config import CardConfig
from cardos.crypto import DES, SM4
from cardos.sample import TRANSPORT_KEY, SampleCard, SampleKeys, issue_sample
from cardos.terminal.secure import external_auth_cryptogram

from .conftest import Terminal, hx

SELECT_ADF = "00A4040009A00000000386980701"
PIN = "123456"
VERIFY_PIN = "0020000003123456"
SERIAL = hx("3100000000000001")
WHEN = datetime(2026, 5, 1, 8, 30, 0)


class Randoms:
    """A card random source: forced values first (queue), then a seeded generator."""

    def __init__(self, *forced: str, seed: int = 1):
        self.queue = [hx(v) for v in forced]
        self.rng = _random.Random(seed)

    def push(self, *values: str) -> None:
        self.queue.extend(hx(v) for v in values)

    def __call__(self, n: int) -> bytes:
        if self.queue:
            value = self.queue.pop(0)
            assert len(value) == n, f"forced random of {len(value)} bytes, card asked {n}"
            return value
        return self.rng.randbytes(n)


def sample_card(config: CardConfig | None = None, **keys) -> tuple[Card, Terminal, SampleCard]:
    """The sample issuance (EP 0002, ED 0001, log 0018, composite 001A) with ``keys`` replaced;
    powered on, application selected. ``t.randoms`` feeds the card's randoms."""
    card = Card.blank(config)
    card.power_on()
    sample = issue_sample(card.transmit, SampleCard(keys=SampleKeys(**keys)))
    card.power_on()
    t = Terminal(card)
    t.randoms = Randoms()
    card.set_random_source(t.randoms)
    t.ok(SELECT_ADF)
    return card, t, sample


def clone(card: Card, path=None) -> Card:
    """An independent copy of ``card`` (through its image): in memory, or backed by a new image at ``path``."""
    from cardos import image

    atr, config, blocked, mf = image.card_state_from_dict(json.loads(image.dumps(card)))
    copy = Card(mf, config=config, atr=atr, card_blocked=blocked)
    return copy.save_as(path) if path is not None else copy


def authenticate(t: Terminal, key: bytes, kid: int = 0, algorithm=DES) -> None:
    challenge = t.challenge(4)
    t.ok(build(0x00, 0x82, 0x00, kid, external_auth_cryptogram(key, challenge, algorithm)))


def key_record(key_type: int, value: bytes, use: int = 0xF0, b3: int = 0x01, b4: int = 0x00) -> bytes:
    return bytes((key_type, use, 0x02, b3, b4)) + value


def built_card(*, keys: dict, ed: bool = True, ep: bool = True, log: str | None = "2E0A17F1EF",
               extra_files=(), config: CardConfig | None = None, tac_id: int = 0x00):
    """A minimal city application built on a blank card through APDUs.

    ``keys``: {(type, id): record data (type ‖ header ‖ value)}; ``log``:
    the 0018 CREATE data after the FID (None: no log file); ``extra_files``:
    (fid, create data hex) pairs. 0015 carries ``SERIAL``.
    """
    card = Card.blank(config)
    t = Terminal(card)
    t.randoms = Randoms()
    card.set_random_source(t.randoms)
    t.ok("00A40000023F00")
    authenticate(t, TRANSPORT_KEY)
    t.ok("800E000000")
    t.ok("80E00000073F005001F0FFFF")
    t.ok(build(0x80, 0xD4, 0x01, 0x00, key_record(0x39, hx("4D" * 16), b3=0xAA, b4=0x33)))
    t.ok(build(0x80, 0xE0, 0x10, 0x01, hx("380800F0F095FFFF A00000000386980701")))
    t.ok(SELECT_ADF)
    t.ok("80E00000073F020095F0FFFF")
    for (key_type, kid), data in keys.items():
        t.ok(build(0x80, 0xD4, 0x01, kid, data))
    t.ok("80E0001507 28 001E F0F0 FFFF")
    t.ok(build(0x00, 0xD6, 0x95, 0x00, hx("0000 3100 0000 0000 01 01 0000") + SERIAL
                                           + hx("20260101 20351231 01 00")))
    if log is not None:
        t.ok("80E0001807" + log + "FFFF")
    for fid, data in extra_files:
        t.ok(build(0x80, 0xE0, fid >> 8, fid & 0xFF, hx(data)))
    if ep:
        t.ok(build(0x80, 0xE0, 0x00, 0x02, hx("2F0208F0") + bytes((tac_id,)) + hx("FF18")))
    if ed:
        t.ok(build(0x80, 0xE0, 0x00, 0x01, hx("2F0208F1") + bytes((tac_id,)) + hx("FF18")))
    card.power_on()
    t.ok(SELECT_ADF)
    return card, t


def mac(key: bytes, data: str | bytes, alg=DES) -> bytes:
    return alg.mac(key, hx(data) if isinstance(data, str) else data)


def tac_of(dtk: bytes, data: str | bytes, alg=DES) -> bytes:
    return alg.mac(alg.tac_key(dtk), hx(data) if isinstance(data, str) else data)


def session_key(key: bytes, data: str, alg=DES) -> bytes:
    return alg.session_key(key, hx(data))


__all__ = [
    "DES",
    "PIN",
    "SELECT_ADF",
    "SERIAL",
    "SM4",
    "VERIFY_PIN",
    "WHEN",
    "Randoms",
    "authenticate",
    "built_card",
    "clone",
    "key_record",
    "mac",
    "sample_card",
    "session_key",
    "tac_of",
]
