"""APPLICATION BLOCK ``84 1E``, APPLICATION UNBLOCK ``84 18``, CARD BLOCK ``84 16`` (§2.9).

All three carry a line-protection MAC with the current DF's type-36 key 00.
A wrong MAC answers 6988 and counts against that key; when it runs out
while the application is blocked, the block becomes permanent.
"""
from __future__ import annotations

from ..apdu import CardError, Command
from ..filesystem import BLOCK_NONE, BLOCK_PERMANENT, BLOCK_TEMPORARY
from ..sw import SW
from .secure import line_key, verify_mac


def _authorised(card, cmd: Command) -> None:
    if not cmd.secure:
        raise CardError(SW.SM_MISSING)
    if len(cmd.data) != 4:
        raise CardError(SW.WRONG_LENGTH)
    verify_mac(card, cmd, line_key(card, 0x00), SW.SM_WRONG)


def application_block(card, cmd: Command):
    if cmd.p1 or cmd.p2 not in (0x00, 0x01):
        raise CardError(SW.WRONG_P1P2)
    _authorised(card, cmd)
    card.write(card.current_df, "block", BLOCK_PERMANENT if cmd.p2 else BLOCK_TEMPORARY)
    return b""


def application_unblock(card, cmd: Command):
    if cmd.p1 or cmd.p2:
        raise CardError(SW.WRONG_P1P2)
    df = card.current_df
    if df.block == BLOCK_PERMANENT:
        raise CardError(SW.APP_PERMANENTLY_BLOCKED)
    key = line_key(card, 0x00)
    try:
        _authorised(card, cmd)
    except CardError:
        if df.block == BLOCK_TEMPORARY and key.blocked:
            card.write(df, "block", BLOCK_PERMANENT)
        raise
    if df.block != BLOCK_NONE:
        card.write(df, "block", BLOCK_NONE)
    return b""


def card_block(card, cmd: Command):
    if cmd.p1 or cmd.p2:
        raise CardError(SW.WRONG_P1P2)
    _authorised(card, cmd)
    card.write(card, "card_blocked", True)
    return b""


HANDLERS = {
    (0x80, 0x1E): application_block,
    (0x80, 0x18): application_unblock,
    (0x80, 0x16): card_block,
}
