"""SELECT FILE ``00 A4`` (reference §1.4) and the FCI it returns."""
from __future__ import annotations

from functools import lru_cache

from ..apdu import CardError, Command
from ..filesystem import DF, MF_FID, BLOCK_NONE, BinaryEF, KeyFile
from ..layouts import fci, tlv
from ..sw import SW

P2_FIRST, P2_NEXT, P2_NO_FCI = 0x00, 0x02, 0x0C


@lru_cache(maxsize=256)
def _fci(name: bytes, app_file_id: int, fci_extra: bytes, content: bytes | None) -> bytes:
    if content is not None:
        proprietary = fci_extra + tlv(0x9F0C, content)
    elif app_file_id & 0x1F:
        proprietary = fci_extra + tlv(0x88, bytes((app_file_id & 0x1F,)))
    else:
        proprietary = fci_extra
    return fci(name, proprietary)


def fci_of(df: DF) -> bytes:
    """``6F 84 A5`` with ``9F0C`` (application file content) or ``88`` (DIR SFI)."""
    content = None
    if df.app_file_id & 0x80:
        ef = df.find_sfi(df.app_file_id & 0x1F)
        content = ef.data if isinstance(ef, BinaryEF) else b""
    return _fci(df.name, df.app_file_id, df.fci_extra, content)


def _candidates(card) -> list[DF]:
    """DFs selectable by name, in tree order: the MF, the current DF and its siblings, its children."""
    current = card.current_df
    found = [card.mf]
    if current.parent is not None:  # the current DF is among its parent's children
        found += current.parent.child_dfs()
    return found + current.child_dfs()


def _by_name(card, name: bytes, next_occurrence: bool) -> DF:
    candidates = _candidates(card)
    matches = [df for df in candidates if df.name == name]
    matches += [df for df in candidates if df.name != name and df.name.startswith(name)]
    if next_occurrence:  # ISO P2=02: the match after the current DF
        ids = [id(df) for df in matches]
        if id(card.current_df) in ids:
            matches = matches[ids.index(id(card.current_df)) + 1:]
    if not matches:
        raise CardError(SW.FILE_NOT_FOUND)
    return matches[0]


def _enter(card, df: DF, p2: int):
    if df.block != BLOCK_NONE:
        if card.config.blocked_app_select == "6A81":
            raise CardError(SW.FUNCTION_NOT_SUPPORTED)
        card.enter_df(df)
        return (b"" if p2 == P2_NO_FCI else fci_of(df)), SW.SELECTED_FILE_INVALID
    card.enter_df(df)
    return b"" if p2 == P2_NO_FCI else fci_of(df)


def select(card, cmd: Command):
    p1, p2, data = cmd.p1, cmd.p2, cmd.data
    if p2 not in (P2_FIRST, P2_NEXT, P2_NO_FCI):
        raise CardError(SW.WRONG_P1P2)
    if p1 == 0x04:
        if not 1 <= len(data) <= 16:
            raise CardError(SW.WRONG_LENGTH)
        return _enter(card, _by_name(card, data, p2 == P2_NEXT), p2)
    if p1 not in (0x00, 0x02) or p2 == P2_NEXT:
        raise CardError(SW.WRONG_P1P2)
    if len(data) != 2:
        raise CardError(SW.WRONG_LENGTH)
    fid = (data[0] << 8) | data[1]
    if fid == MF_FID and p1 == 0x00:
        return _enter(card, card.mf, p2)
    node = card.current_df.children.get(fid)
    if node is None or isinstance(node, KeyFile) or (p1 == 0x02 and isinstance(node, DF)):
        raise CardError(SW.FILE_NOT_FOUND)
    if isinstance(node, DF):
        return _enter(card, node, p2)
    card.current_ef = node
    card.current_record = 0
    return b""


HANDLERS = {(0x00, 0xA4): select}
