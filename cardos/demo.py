"""The main job: a card created (personalized through APDUs), topped up and used.

Everything goes through a pyscard connection, the way terminal software
talks to a card: by default the embedded in-process reader holding a fresh
emulated card; with ``--reader NAME`` any PC/SC reader (for instance the
slot that ``cardos serve`` fills, or a real FM1208 card with its transport
key still set). Run with ``cardos demo`` (or ``./dev.sh demo``).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

from .redact import apdu_hex  # key values never shown (docs/robustness.md)
from .image import ImageError
from .sample import IssueError, issue_sample
from .sw import describe
from .tries import NotBlank, check_blank

LOAD_TERMINAL = bytes.fromhex("000000000001")
POS_TERMINAL = bytes.fromhex("123456789012")


def _hex(b: bytes) -> str:
    return b.hex().upper()


@contextmanager
def _embedded_connection(image):
    """A connection to a fresh emulated card in the in-process pyscard reader."""
    from smartcard.System import readers

    from .card import Card
    from .transports.pyscard_reader import emulated_reader, transmit_function

    card = Card.blank()
    if image:
        try:
            card.save_as(image)
        except OSError as exc:  # a missing directory, a read-only place
            raise ImageError(image, f"cannot write: {exc.strerror}") from None
    with emulated_reader(card):
        reader = readers()[0]
        connection = reader.createConnection()
        connection.connect()
        try:
            yield str(reader), bytes(connection.getATR()), transmit_function(connection)
        finally:
            connection.disconnect()


@contextmanager
def _pcsc_connection(spec):
    from .transports.pcsc import PcscTransport

    transport = PcscTransport(spec)
    try:
        yield transport.label, transport.atr, transport.transmit
    finally:
        transport.close()


def run_demo(out=sys.stdout, image=None, reader=None, yes: bool = False, err=None) -> int:
    """The demo; 1 when the card in ``reader`` is not blank (nothing sent that spends a try) or refuses a step."""
    from .terminal.purse import TransactionError

    opened = _pcsc_connection(reader) if reader else _embedded_connection(image)
    with opened as (label, atr, transmit):
        print(f"reader {label!r}: card present, ATR {_hex(atr)}", file=out)
        try:
            if reader:  # a card of the user's: its transport key has only a few tries
                check_blank(transmit, f"the card in reader {label!r}", yes)
            _issue_and_use(transmit, out)
        except (NotBlank, IssueError, TransactionError) as exc:
            print(f"cardos demo: error: {exc}", file=err or sys.stderr)
            return 1
    if image:
        print(f"card image saved to {image}", file=out)
    return 0


def _issue_and_use(transmit, out) -> None:
    """Personalize the blank card with the sample TEST keys, read it back, top it up and spend from it."""
    def log(step, apdu, response):
        sw = int.from_bytes(response[-2:], "big")
        print(f"  {step:38s} > {apdu_hex(apdu)[:44]:44s} < {_hex(response[-2:])} {describe(sw)}", file=out)

    print("personalizing (发卡) through APDUs:", file=out)
    issued = issue_sample(transmit, log=log)
    print(f"issued application serial {_hex(issued.serial)}", file=out)
    for step, apdu in (("select city application", "00A4040009A0000000038698070100"),
                       ("read 0015 (public application data)", "00B095001E")):
        response = transmit(bytes.fromhex(apdu))
        print(f"  {step:38s} > {apdu} < {_hex(response)}", file=out)
    _top_up_and_spend(transmit, issued, out)


def _top_up_and_spend(card_transmit, issued, out) -> None:
    """圈存 100.00 through a load host, 消费 12.50 through a PSAM (cardos.terminal, sample TEST keys)."""
    from .terminal import purse as tx
    from .terminal.host import LoadHost
    from .terminal.keys import IssuerKeys
    from .terminal.psam import PSAM

    k = issued.keys
    keys = IssuerKeys(load=k.load, purchase=k.purchase, tac=k.tac, diversify=False)

    def transmit(apdu: bytes) -> bytes:
        response = card_transmit(apdu)
        print(f"    > {_hex(apdu)}\n    < {_hex(response)}", file=out)
        return response

    print(f"EP balance {tx.get_balance(card_transmit) / 100:.2f}", file=out)
    print("top-up (圈存) of 100.00 at a load terminal:", file=out)
    record = tx.load(transmit, LoadHost(keys), 10000, terminal=LOAD_TERMINAL, serial=issued.serial)
    print(f"  {record}", file=out)
    print("purchase (消费) of 12.50 at a POS:", file=out)
    record = tx.purchase(transmit, PSAM(keys, POS_TERMINAL), 1250, serial=issued.serial)
    print(f"  {record}", file=out)
    print(f"EP balance {tx.get_balance(card_transmit) / 100:.2f}", file=out)
