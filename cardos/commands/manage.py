"""CREATE FILE ``80 E0`` and ERASE DF ``80 0E`` with the FMCOS layouts (§1.3, §1.7)."""
from __future__ import annotations

from ..apdu import CardError, Command
from ..filesystem import (DF, MAX_DF_LEVELS, MF_FID, PROTECT_ENCRYPT, PROTECT_MAC, RECORD_TYPES,
                          TYPE_BINARY, TYPE_CYCLIC, TYPE_DF, TYPE_KEY, TYPE_PURSE, TYPE_VARIABLE, BinaryEF,
                          KeyFile, PurseEF, RecordEF, capacity)
from ..layouts import DF_CREATE, DF_CREATE_MIN, EF_CREATE, EF_CREATE_LENGTH
from ..sw import SW
from .record import MAX_RECORD_LENGTH

MAX_NAME = 16
MIN_NAME = 2


def _add_child(card, df: DF, node) -> None:
    node.parent = df
    card.journal.set_item(df.children, node.fid, node)
    if isinstance(node, KeyFile):
        card.write(df, "key_file", node)


def _check_space(card, df: DF, cost: int) -> None:
    if df.used() + cost > capacity(df, card.config.eeprom_size):
        raise CardError(SW.NO_SPACE)


def _create_df(card, df: DF, fid: int, data: bytes):
    if not MIN_NAME <= len(data) - DF_CREATE_MIN <= MAX_NAME:
        raise CardError(SW.WRONG_LENGTH)
    fields = DF_CREATE.parse(data)
    if fid == MF_FID:
        # Re-creating the MF is accepted only on an erased card (FMCOS
        # personalization scripts do "erase, create MF"); it keeps its place.
        if df is not card.mf or not card.mf.empty:
            raise CardError(SW.FILE_EXISTS)
        for attr, value in (("space", fields.space), ("create_right", fields.create_right),
                            ("erase_right", fields.erase_right), ("app_file_id", fields.app_file_id),
                            ("reserved", fields.reserved), ("name", fields.name)):
            card.write(df, attr, value)
        return b""
    if df.level >= MAX_DF_LEVELS:
        raise CardError(SW.WRONG_DATA)
    if fid in df.children:
        raise CardError(SW.FILE_EXISTS)
    child = DF(fid, fields.name, fields.space, fields.create_right, fields.erase_right,
               fields.app_file_id, fields.reserved)
    _check_space(card, df, child.cost())
    _add_child(card, df, child)
    return b""


def _create_ef(card, df: DF, fid: int, data: bytes):
    if len(data) != EF_CREATE_LENGTH:
        raise CardError(SW.WRONG_LENGTH)
    f = EF_CREATE.parse(data)
    base, protection = f.type & 0x3F, f.type & (PROTECT_MAC | PROTECT_ENCRYPT)
    size = (f.b2 << 8) | f.b3
    if base == TYPE_KEY:
        if protection:
            raise CardError(SW.WRONG_DATA)
        if df.key_file is not None:
            raise CardError(SW.FILE_EXISTS)
        node = KeyFile(fid, size, f.b4, f.b5, f.b6, f.b7)
    elif base == TYPE_PURSE:
        if protection:
            raise CardError(SW.WRONG_DATA)
        node = PurseEF(fid, f.b4, f.b5, f.b6, f.b7)
    elif base == TYPE_BINARY:
        if size == 0:
            raise CardError(SW.WRONG_DATA)
        node = BinaryEF(fid, protection, f.b4, f.b5, f.b6, f.b7, size)
    elif base == TYPE_VARIABLE:
        if size == 0:
            raise CardError(SW.WRONG_DATA)
        node = RecordEF(fid, base, protection, f.b4, f.b5, f.b6, f.b7, size=size)
    elif base in RECORD_TYPES:
        count, length = f.b2, f.b3
        if count < (2 if base == TYPE_CYCLIC else 1) or not 1 <= length <= MAX_RECORD_LENGTH:
            raise CardError(SW.WRONG_DATA)
        node = RecordEF(fid, base, protection, f.b4, f.b5, f.b6, f.b7, record_count=count,
                        record_length=length)
    else:
        raise CardError(SW.WRONG_DATA)
    if fid in df.children or fid == MF_FID:
        raise CardError(SW.FILE_EXISTS)
    _check_space(card, df, node.cost())
    _add_child(card, df, node)
    return b""


def create_file(card, cmd: Command):
    data = cmd.data
    if not data:
        raise CardError(SW.WRONG_LENGTH)
    df = card.current_df
    card.require(df.create_right)
    fid = (cmd.p1 << 8) | cmd.p2
    if data[0] == TYPE_DF:
        if fid != MF_FID:
            _require_key_file(card, df)
        return _create_df(card, df, fid, data)
    if data[0] != TYPE_KEY:
        _require_key_file(card, df)
    return _create_ef(card, df, fid, data)


def _require_key_file(card, df: DF) -> None:
    """The KEY file must be the first file created in a DF (reference §1.1)."""
    if df.key_file is None and card.config.key_file_first:
        raise CardError(SW.CONDITIONS_NOT_SATISFIED)


def erase_df(card, cmd: Command):
    """Delete every file and sub-DF of the current DF; the DF itself stays."""
    if cmd.p1 or cmd.p2:
        raise CardError(SW.WRONG_P1P2)
    if cmd.data:
        raise CardError(SW.WRONG_LENGTH)
    df = card.current_df
    card.require(df.erase_right)
    card.write(df, "children", {})
    card.write(df, "key_file", None)
    card.current_ef = None
    card.free_access = True  # the empty-DF rule applies again at once
    return b""


HANDLERS = {
    (0x80, 0xE0): create_file,
    (0x80, 0x0E): erase_df,
}
