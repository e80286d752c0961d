"""READ BINARY ``00/04 B0`` and UPDATE BINARY ``00/04 D6`` (reference §1.5-1.6)."""
from __future__ import annotations

from ..apdu import CardError, Command
from ..filesystem import BinaryEF
from ..sw import SW, exact_length
from .secure import plain_write_data, protect_response, read_protection


def _target(card, cmd: Command) -> tuple[BinaryEF, int]:
    """P1 = 100sssss → EF by SFI, P2 offset; otherwise P1P2 is a 15-bit offset."""
    p1 = cmd.p1
    if p1 & 0x80:
        if p1 & 0x60:
            raise CardError(SW.WRONG_P1P2)
        ef = card.current_df.find_sfi(p1 & 0x1F)
        if ef is None:
            raise CardError(SW.FILE_NOT_FOUND)
        card.current_ef = ef
        offset = cmd.p2
    else:
        ef = card.current_ef
        if ef is None:
            raise CardError(SW.FILE_NOT_FOUND)
        offset = (p1 << 8) | cmd.p2
    if type(ef) is not BinaryEF:
        raise CardError(SW.WRONG_FILE_TYPE)
    return ef, offset


def read_binary(card, cmd: Command):
    ef, offset = _target(card, cmd)
    key = read_protection(card, cmd, ef)
    available = ef.size - offset
    if available <= 0:
        raise CardError(SW.WRONG_OFFSET)
    le = cmd.le
    if le is None or cmd.le_zero:
        count = available if le is None else min(available, le)
    else:
        count = le
        if count > available:
            raise CardError(exact_length(available))
    data = ef.data[offset:offset + count]
    if key is not None:
        data = protect_response(card, key, data, ef.encrypted)
    if not ef.written:
        return data, SW.DATA_MAY_BE_CORRUPT
    return data


def update_binary(card, cmd: Command):
    ef, offset = _target(card, cmd)
    data = plain_write_data(card, cmd, ef)
    if not data:
        raise CardError(SW.WRONG_LENGTH)
    if offset >= ef.size:
        raise CardError(SW.WRONG_OFFSET)
    if offset + len(data) > ef.size:
        raise CardError(SW.WRONG_LENGTH)
    card.write(ef, "data", ef.data[:offset] + data + ef.data[offset + len(data):])
    if not ef.written:
        card.write(ef, "written", True)
    return b""


HANDLERS = {
    (0x00, 0xB0): read_binary,
    (0x00, 0xD6): update_binary,
}
