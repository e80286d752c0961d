"""READ / UPDATE / APPEND RECORD ``00/04 B2 DC E2`` (reference §1.5-1.6).

P2 = ``sssss bbb``: SFI (0 → current EF) and a mode. Cyclic files keep the
newest record as record 1; appending to a full one overwrites the oldest.
Variable (2C) files hold TLV records ``tag len value`` found by tag.
"""
from __future__ import annotations

from ..apdu import CardError, Command
from ..filesystem import RecordEF
from ..sw import SW
from .secure import plain_write_data, protect_response, read_protection

MODE_BY_NUMBER = 0b100
MODE_FIRST, MODE_LAST, MODE_NEXT, MODE_PREVIOUS = 0b000, 0b001, 0b010, 0b011
MAX_RECORD_LENGTH = 248


def record_file(card, p2: int) -> RecordEF:
    sfi = p2 >> 3
    if sfi:
        ef = card.current_df.find_sfi(sfi)
        if ef is None:
            raise CardError(SW.FILE_NOT_FOUND)
        if ef is not card.current_ef:
            card.current_ef = ef
            card.current_record = 0
    else:
        ef = card.current_ef
        if ef is None:
            raise CardError(SW.FILE_NOT_FOUND)
    if type(ef) is not RecordEF:
        raise CardError(SW.WRONG_FILE_TYPE)
    return ef


def _tag_index(card, ef: RecordEF, tag: int, mode: int) -> int:
    """0-based index of the record with ``tag`` for first/last/next/previous."""
    indexes = [i for i, r in enumerate(ef.records) if r and r[0] == tag]
    if mode == MODE_FIRST and indexes:
        return indexes[0]
    if mode == MODE_LAST and indexes:
        return indexes[-1]
    current = card.current_record - 1
    if mode == MODE_NEXT:
        after = [i for i in indexes if i > current]
        if after:
            return after[0]
    if mode == MODE_PREVIOUS:
        before = [i for i in indexes if i < current]
        if before:
            return before[-1]
    raise CardError(SW.RECORD_NOT_FOUND)


def _check_tlv(data: bytes) -> None:
    if len(data) < 2 or data[1] != len(data) - 2:
        raise CardError(SW.WRONG_DATA)


def read_record(card, cmd: Command):
    ef = record_file(card, cmd.p2)
    mode = cmd.p2 & 0x07
    if mode != MODE_BY_NUMBER and not (mode == MODE_FIRST and ef.variable):
        raise CardError(SW.WRONG_P1P2)
    key = read_protection(card, cmd, ef)
    if mode == MODE_BY_NUMBER:
        index = cmd.p1 - 1
        if index < 0 or index >= len(ef.records):
            raise CardError(SW.RECORD_NOT_FOUND)
    else:
        index = _tag_index(card, ef, cmd.p1, MODE_FIRST)
    card.current_record = index + 1
    data = ef.records[index]
    if key is not None:
        data = protect_response(card, key, data, ef.encrypted)
    return data


def _append(card, ef: RecordEF, data: bytes) -> None:
    if ef.variable:
        _check_tlv(data)
        if ef.used_bytes() + len(data) + 1 > ef.size:
            raise CardError(SW.NO_SPACE)
        card.write(ef, "records", ef.records + (data,))
        card.current_record = len(ef.records)
        return
    if len(data) != ef.record_length:
        raise CardError(SW.WRONG_LENGTH)
    if ef.cyclic:
        card.write(ef, "records", (data,) + ef.records[: ef.record_count - 1])
        card.current_record = 1
        return
    if len(ef.records) >= ef.record_count:
        raise CardError(SW.NO_SPACE)
    card.write(ef, "records", ef.records + (data,))
    card.current_record = len(ef.records)


def append_record(card, cmd: Command):
    ef = record_file(card, cmd.p2)
    if cmd.p1 != 0 or cmd.p2 & 0x07 not in (0b000, MODE_BY_NUMBER):
        raise CardError(SW.WRONG_P1P2)
    data = plain_write_data(card, cmd, ef)
    _append(card, ef, data)
    return b""


def update_record(card, cmd: Command):
    ef = record_file(card, cmd.p2)
    mode = cmd.p2 & 0x07
    if ef.cyclic:
        # Cyclic files take no overwrite; UM allows P1=00 mode 011 as an append.
        if cmd.p1 == 0 and mode == MODE_PREVIOUS:
            _append(card, ef, plain_write_data(card, cmd, ef))
            return b""
        raise CardError(SW.WRONG_FILE_TYPE)
    if mode != MODE_BY_NUMBER and not (mode <= MODE_PREVIOUS and ef.variable):
        raise CardError(SW.WRONG_P1P2)
    data = plain_write_data(card, cmd, ef)
    if mode == MODE_BY_NUMBER:
        index = cmd.p1 - 1
        if index < 0 or index >= len(ef.records):
            raise CardError(SW.RECORD_NOT_FOUND)
    else:
        index = _tag_index(card, ef, cmd.p1, mode)
    if ef.variable:
        _check_tlv(data)
        if len(data) != len(ef.records[index]):
            raise CardError(SW.WRONG_LENGTH)
    elif len(data) != ef.record_length:
        raise CardError(SW.WRONG_LENGTH)
    records = list(ef.records)
    records[index] = data
    card.write(ef, "records", tuple(records))
    card.current_record = index + 1
    return b""


HANDLERS = {
    (0x00, 0xB2): read_record,
    (0x00, 0xDC): update_record,
    (0x00, 0xE2): append_record,
    (0x80, 0xE2): append_record,  # some FMCOS scripts send APPEND RECORD with CLA 80
}
