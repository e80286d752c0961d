"""What the benchmark runs: the bench card, the APDUs and the transactions.

The bench card is the shipped ``city`` profile (TEST key set) plus one
128-byte public binary EF 0011 (SFI 11) in the city application, because
READ BINARY of 128 bytes is one of the measured APDUs and no city file is
that long. It is topped up and has one purchase in its transaction log, so
READ RECORD and the purse commands answer ``9000``.

The ISO APDUs are byte-for-byte the same for every card (cardos, vicc,
the transport floor):

* SELECT MF ``00A4000C023F00`` (P2 ``0C``: no FCI; the form vicc's Debian
  build does not crash on),
* READ BINARY ``00B0910080`` (SFI 11, offset 0, 128 bytes),
* READ RECORD ``00B201C417`` (record 1 of SFI 18, 23 bytes).

GET BALANCE ``805C000204`` and the purse transactions are ours only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from .. import profiles as P
from ..card import Card
from ..keyset import load as load_keyset
from ..personalize import issue
from ..terminal import purse as tx
from ..terminal.host import LoadHost
from ..terminal.psam import PSAM

ISSUE_DAY = date(2026, 5, 1)
SELECT_ADF = bytes.fromhex("00A4040009A0000000038698070100")
SELECT_MF = bytes.fromhex("00A4000C023F00")
TERMINAL = bytes.fromhex("000000000001")
PSAM_ID = bytes.fromhex("123456789012")
INITIAL_LOAD = 100_000_000  # 1,000,000.00 yuan: enough for every purchase of 0.01
BENCH_FILE_SFI = 0x11
LOG_SFI = 0x18
RECORD_LENGTH = 23


@dataclass(frozen=True)
class Op:
    """One measured APDU: ``setup`` is sent (untimed) before a block of them."""

    key: str
    title: str
    apdu: bytes
    setup: bytes
    iso: bool  # also run on vicc
    response_length: int  # data bytes expected with 9000


OPS = [
    Op("select_mf", "SELECT MF", SELECT_MF, b"", True, 0),
    Op("read_binary", "READ BINARY 128 B", bytes.fromhex("00B0910080"), SELECT_ADF, True, 128),
    Op("read_record", "READ RECORD 23 B", bytes.fromhex("00B201C417"), SELECT_ADF, True, RECORD_LENGTH),
    Op("get_balance", "GET BALANCE", bytes.fromhex("805C000204"), SELECT_ADF, False, 4),
]
TRANSACTIONS = [("purchase", "purchase (SELECT ADF, INIT, DEBIT)"), ("load", "load (SELECT ADF, INIT, CREDIT)")]


def bench_profile() -> P.Profile:
    """``city`` plus EF 0011: 128 public bytes (read F0, write F0, no protection)."""
    city = P.load("city")
    with open(city.path, encoding="utf-8") as f:
        raw = json.load(f)
    raw["name"] = "city-bench"
    raw["applications"][0]["files"].insert(0, {
        "fid": "0011", "name": "bench data (128 bytes)", "type": "binary", "size": 128, "read": "F0",
        "write": "F0", "content": [{"name": "data", "length": 128, "fill": "A5"}]})
    return P.from_dict(raw, "<city + bench EF 0011>")


class Terminal:
    """The terminal side of the purse transactions on one card (any ``transmit``)."""

    def __init__(self, transmit, keys=None):
        self.keys = keys or load_keyset("test")
        self.transmit = transmit
        self.host = LoadHost(self.keys)
        self.psam = PSAM(self.keys, PSAM_ID)
        self.when = datetime.now().replace(microsecond=0)
        self.serial = tx.select_application(transmit)

    def purchase(self, amount: int = 1) -> None:
        tx.select_application(self.transmit)
        tx.purchase(self.transmit, self.psam, amount, when=self.when, serial=self.serial)

    def load(self, amount: int = 1) -> None:
        tx.select_application(self.transmit)
        tx.load(self.transmit, self.host, amount, terminal=TERMINAL, when=self.when, serial=self.serial)


def make_card(serial: int = 1, keys=None, profile: P.Profile | None = None) -> Card:
    """An issued, topped-up bench card in memory (one purchase in its log), powered on."""
    keys = keys or load_keyset("test")
    card = Card.blank()
    issue(card, profile or bench_profile(), keys, {"serial": serial}, today=ISSUE_DAY)
    card.power_on()
    terminal = Terminal(card.transmit, keys)
    terminal.load(INITIAL_LOAD)
    terminal.purchase(1)
    card.power_on()
    return card


def check(op: Op, response: bytes, who: str) -> None:
    """Refuse to time an APDU that does not do its job (a wrong SW is fast, and meaningless)."""
    if response[-2:] != b"\x90\x00" or len(response) - 2 != op.response_length:
        raise RuntimeError(f"{who}: {op.title} {op.apdu.hex().upper()} answered {response.hex().upper()}")
