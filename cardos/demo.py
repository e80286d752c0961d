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
    if image:
        print(f"card image saved to {image}", file=out)
    return 0
