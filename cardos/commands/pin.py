"""PIN commands: VERIFY ``00 20``, CHANGE PIN / RELOAD PIN ``80 5E``, PIN UNBLOCK ``84 24``
(reference §2.4).

PINs are packed BCD padded with ``F``; a presented PIN may omit the stored
PIN's trailing ``FF`` bytes. CHANGE, RELOAD and UNBLOCK act on PIN id 00.
"""
from __future__ import annotations

from ..apdu import CardError, Command
from ..crypto import constant_time_equal
from ..keys import Key, KeyType
from ..sw import SW, tries_left
from .secure import count_failure, count_success, line_key, unwrap, verify_mac

PIN_ID = 0x00
MIN_PIN, MAX_PIN = 2, 6


def _pin_key(card, kid: int) -> Key:
    key = card.key_file().find(KeyType.PIN, kid)
    if key is None:
        raise CardError(SW.KEY_INDEX_NOT_SUPPORTED)
    return key


def _matches(stored: bytes, presented: bytes) -> bool:
    if len(presented) > len(stored):
        return False
    return constant_time_equal(presented + b"\xff" * (len(stored) - len(presented)), stored)


def _auxiliary_key(card, key_type: int, blocked_sw: int) -> Key:
    """The reload (38) or unblock (37) key 00: present, usable now, not blocked."""
    key = card.key_file().find(key_type, 0x00)
    if key is None:
        raise CardError(SW.KEY_INDEX_NOT_SUPPORTED)
    card.require(key.use)
    if key.blocked:
        raise CardError(blocked_sw)
    return key


def _check_pin(card, key: Key, presented: bytes) -> None:
    if key.blocked:
        raise CardError(SW.AUTH_BLOCKED)
    if not _matches(key.value, presented):
        raise CardError(tries_left(count_failure(card, key)))
    count_success(card, key)


def _set_pin(card, key: Key, new_pin: bytes) -> None:
    if not MIN_PIN <= len(new_pin) <= MAX_PIN:
        raise CardError(SW.WRONG_LENGTH)
    key_file = card.key_file()
    grown = len(new_pin) - len(key.value)
    if grown > 0 and key_file.used_bytes() + grown > key_file.size:
        raise CardError(SW.NO_SPACE)
    card.journal.set_item(key_file.keys, (KeyType.PIN, key.kid),
                          Key(key.stored_type, key.kid, key.use, key.change, key.b3,
                              (key.b4 & 0xF0) | key.max_tries, new_pin))


def verify(card, cmd: Command):
    if cmd.p1:
        raise CardError(SW.WRONG_P1P2)
    key = _pin_key(card, cmd.p2)
    card.require(key.use)
    pin = cmd.data
    if cmd.secure:  # CLA 04: PIN ‖ MAC with the line-protection key 00
        pin = verify_mac(card, cmd, line_key(card, 0x00), SW.MAC_INVALID)
    if not MIN_PIN <= len(pin) <= MAX_PIN:
        raise CardError(SW.WRONG_LENGTH)
    _check_pin(card, key, pin)
    card.security.raise_to(key.subsequent_state, card.current_df.is_mf)
    return b""


def change_pin(card, cmd: Command):
    """``80 5E 01 P2``: old PIN ‖ FF ‖ new PIN."""
    data = cmd.data
    split = data.find(b"\xff")
    if split < MIN_PIN or len(data) - split - 1 < MIN_PIN:
        raise CardError(SW.WRONG_LENGTH)
    key = _pin_key(card, PIN_ID)
    card.require(key.use)
    _check_pin(card, key, data[:split])
    _set_pin(card, key, data[split + 1:])
    return b""


def reload_pin(card, cmd: Command):
    """``80 5E 00 P2``: new PIN ‖ MAC, MAC by the reload key (type 38) with its halves XORed."""
    data = cmd.data
    if not MIN_PIN + 4 <= len(data) <= MAX_PIN + 4:
        raise CardError(SW.WRONG_LENGTH)
    key = _pin_key(card, PIN_ID)
    reload_key = _auxiliary_key(card, KeyType.PIN_RELOAD, SW.AUTH_BLOCKED)
    new_pin, mac = data[:-4], data[-4:]
    alg = reload_key.algorithm
    mac_key = alg.tac_key(reload_key.value)
    if not constant_time_equal(mac, alg.mac(mac_key, new_pin)):
        count_failure(card, reload_key)
        raise CardError(SW.MAC_INVALID)
    count_success(card, reload_key)
    _set_pin(card, key, new_pin)
    return b""


def pin_unblock(card, cmd: Command):
    """``84 24``: the PIN (LD-prefixed, encrypted) ‖ MAC, both with the unblock key (type 37).

    The decrypted PIN becomes the PIN and its try counter is restored.
    """
    if not cmd.secure:
        raise CardError(SW.SM_MISSING)
    if cmd.p1 not in (0x00, 0x01) or cmd.p2 not in (0x00, 0x01):
        raise CardError(SW.WRONG_P1P2)
    key = _pin_key(card, PIN_ID)
    unblock_key = _auxiliary_key(card, KeyType.PIN_UNBLOCK, SW.APP_PERMANENTLY_BLOCKED)
    if len(cmd.data) not in (12, 20):
        raise CardError(SW.WRONG_LENGTH)
    new_pin = unwrap(card, cmd, unblock_key, True, SW.SM_WRONG)
    _set_pin(card, key, new_pin)
    return b""


HANDLERS = {
    (0x00, 0x20): verify,
    (0x80, 0x5E): {0x01: change_pin, 0x00: reload_pin},
    (0x80, 0x24): pin_unblock,
}
