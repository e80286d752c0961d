"""The main job: a card created (personalized through APDUs), then used.

Run with ``cardos demo`` (or ``./dev.sh demo``).
"""
from __future__ import annotations

import sys

from .card import Card
from .sample import issue_sample
from .sw import describe


def _hex(b: bytes) -> str:
    return b.hex().upper()


def run_demo(out=sys.stdout, image=None) -> int:
    card = Card.blank()
    if image:
        card.save_as(image)
    atr = card.power_on()
    print(f"card powered on, ATR {_hex(atr)}", file=out)

    def log(label, apdu, response):
        sw = int.from_bytes(response[-2:], "big")
        print(f"  {label:38s} > {_hex(apdu)[:44]:44s} < {_hex(response[-2:])} {describe(sw)}", file=out)

    print("personalizing (发卡) through APDUs:", file=out)
    issued = issue_sample(card.transmit, log=log)
    print(f"issued application serial {_hex(issued.serial)}", file=out)
    for label, apdu in (("select city application", "00A4040009A0000000038698070100"),
                        ("read 0015 (public application data)", "00B095001E")):
        response = card.transmit(bytes.fromhex(apdu))
        print(f"  {label:38s} > {apdu} < {_hex(response)}", file=out)
    _top_up_and_spend(card, issued, out)
    if image:
        print(f"card image saved to {image}", file=out)
    return 0


def _top_up_and_spend(card, issued, out) -> None:
    """圈存 100.00 through a load host, 消费 12.50 through a PSAM (cardos.terminal, sample TEST keys)."""
    from .terminal import purse as tx
    from .terminal.host import LoadHost
    from .terminal.keys import IssuerKeys
    from .terminal.psam import PSAM

    k = issued.keys
    keys = IssuerKeys(load=k.load, purchase=k.purchase, tac=k.tac, diversify=False)

    def transmit(apdu: bytes) -> bytes:
        response = card.transmit(apdu)
        print(f"    > {_hex(apdu)}\n    < {_hex(response)}", file=out)
        return response

    print(f"EP balance {tx.get_balance(card) / 100:.2f}", file=out)
    print("top-up (圈存) of 100.00 at a load terminal:", file=out)
    record = tx.load(transmit, LoadHost(keys), 10000, terminal=bytes.fromhex("000000000001"), serial=issued.serial)
    print(f"  {record}", file=out)
    print("purchase (消费) of 12.50 at a POS:", file=out)
    record = tx.purchase(transmit, PSAM(keys, bytes.fromhex("123456789012")), 1250, serial=issued.serial)
    print(f"  {record}", file=out)
    print(f"EP balance {tx.get_balance(card) / 100:.2f}", file=out)
