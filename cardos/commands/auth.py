"""GET CHALLENGE ``00 84``, EXTERNAL AUTHENTICATE ``00 82``, INTERNAL AUTHENTICATE ``00 88``
(reference §2.5-2.7)."""
from __future__ import annotations

from ..apdu import CardError, Command
from ..crypto import constant_time_equal
from ..keys import KeyType
from ..sw import SW, tries_left
from .secure import count_failure, count_success

CHALLENGE_LENGTHS = (4, 8, 16)


def get_challenge(card, cmd: Command):
    if cmd.p1 or cmd.p2:
        raise CardError(SW.WRONG_P1P2)
    if cmd.data or cmd.le_zero or cmd.le not in CHALLENGE_LENGTHS:
        raise CardError(SW.WRONG_LENGTH)
    challenge = card.random(cmd.le)
    card.security.challenge = challenge  # valid for the next command only
    return challenge


def external_authenticate(card, cmd: Command):
    if cmd.p1:
        raise CardError(SW.WRONG_P1P2)
    key = card.key_file().find(KeyType.EXTERNAL_AUTH, cmd.p2)
    if key is None:
        raise CardError(SW.KEY_NOT_FOUND)
    card.require(key.use)
    if key.blocked:
        raise CardError(SW.AUTH_BLOCKED)
    alg = key.algorithm
    if len(cmd.data) != alg.block:
        raise CardError(SW.WRONG_LENGTH)
    challenge = card.challenge
    if challenge is None:
        raise CardError(SW.REFERENCE_DATA_INVALID)
    expected = alg.encrypt(key.value, alg.auth_block(challenge))
    if not constant_time_equal(cmd.data, expected):
        raise CardError(tries_left(count_failure(card, key)))
    count_success(card, key)
    card.security.raise_to(key.subsequent_state, card.current_df.is_mf)
    return b""


_INTERNAL_KEY_TYPES = {0x00: KeyType.DES_ENCRYPT, 0x01: KeyType.DES_DECRYPT, 0x02: KeyType.DES_MAC}


def internal_authenticate(card, cmd: Command):
    key_type = _INTERNAL_KEY_TYPES.get(cmd.p1)
    if key_type is None:
        raise CardError(SW.WRONG_P1P2)
    data = cmd.data
    if not data:
        raise CardError(SW.WRONG_LENGTH)
    key = card.key_file().find(key_type, cmd.p2)
    if key is None:
        raise CardError(SW.KEY_NOT_FOUND)
    card.require(key.use)
    alg = key.algorithm
    if key_type == KeyType.DES_MAC:
        return alg.mac(key.value, data)
    if len(data) % alg.block:
        raise CardError(SW.WRONG_LENGTH)
    if key_type == KeyType.DES_ENCRYPT:
        return alg.encrypt(key.value, data)
    return alg.decrypt(key.value, data)


HANDLERS = {
    (0x00, 0x84): get_challenge,
    (0x00, 0x82): external_authenticate,
    (0x00, 0x88): internal_authenticate,
}
