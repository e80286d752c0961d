"""WRITE KEY ``80/84 D4`` (reference §2.3).

P1 = ``01`` adds a key, otherwise P1 is the type of the key to modify; P2 is
the key id. With CLA 84 the data (starting with the type byte) is encrypted
and MAC'd with the DF master key (external-auth key id 00).
"""
from __future__ import annotations

from ..apdu import CardError, Command
from ..crypto import ALG_ID_SM4
from ..keys import KNOWN_TYPES, Key, KeyType
from ..layouts import KEY_DATA, KEY_HEADER_LENGTH
from ..sw import SW
from .secure import unwrap

P1_ADD = 0x01


def _check_value(base_type: int, alg_id: int | None, value: bytes) -> None:
    if base_type == KeyType.PIN:
        if not 1 <= len(value) <= 8:
            raise CardError(SW.WRONG_LENGTH)
    elif alg_id == ALG_ID_SM4:
        if len(value) != 16:
            raise CardError(SW.WRONG_LENGTH)
    elif len(value) not in (8, 16):
        raise CardError(SW.WRONG_LENGTH)


def write_key(card, cmd: Command):
    key_file = card.key_file()
    p1, kid = cmd.p1, cmd.p2
    if kid == 0xFF:
        raise CardError(SW.WRONG_P1P2)
    data = cmd.data
    if cmd.secure:
        master = key_file.find(KeyType.EXTERNAL_AUTH, 0x00)
        if master is None:
            raise CardError(SW.KEY_NOT_FOUND)
        data = unwrap(card, cmd, master, True, SW.MAC_INVALID)
    if len(data) <= KEY_HEADER_LENGTH:
        raise CardError(SW.WRONG_LENGTH)
    f = KEY_DATA.parse(data)
    base = f.type & 0x3F
    if base not in KNOWN_TYPES:
        raise CardError(SW.WRONG_DATA)
    new = Key(f.type, kid, f.use, f.change, f.b3, f.b4, f.value)
    _check_value(base, new.alg_id if new.alg_id != 0xFF else None, f.value)
    if new.secure_update and not cmd.secure:
        raise CardError(SW.SM_MISSING)
    if p1 == P1_ADD:
        card.require(key_file.add_right)
        if key_file.find(base, kid) is not None:
            raise CardError(SW.WRONG_DATA)
        if key_file.used_bytes() + new.record_size > key_file.size:
            raise CardError(SW.NO_SPACE)
    else:
        if p1 & 0x3F != base:
            raise CardError(SW.WRONG_P1P2)
        old = key_file.find(base, kid)
        if old is None:
            raise CardError(SW.KEY_NOT_FOUND)
        card.require(old.change)
        if old.secure_update and not cmd.secure:
            raise CardError(SW.SM_MISSING)
        if old.blocked and base != KeyType.PIN:
            raise CardError(SW.AUTH_BLOCKED)
        if len(old.value) != len(new.value):
            raise CardError(SW.WRONG_LENGTH)
    card.journal.set_item(key_file.keys, (base, kid), new)
    return b""


HANDLERS = {(0x80, 0xD4): write_key}
