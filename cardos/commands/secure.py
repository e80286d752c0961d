"""Line protection (FMCOS secure messaging, reference §2.8) and key try counters.

MAC: IV = challenge ‖ zeros; input = CLA INS P1 P2 Lc' ‖ data with Lc' the
length of data + MAC; 80-padded; retail MAC for 16-byte keys; 4 bytes.
Encryption: LD ‖ data, padded only when unaligned, ECB.
"""
from __future__ import annotations

from ..apdu import CardError, Command, lc_bytes
from ..crypto import constant_time_equal
from ..keys import Key
from ..sw import SW


def _spent(key: Key) -> int:
    return (key.b4 & 0xF0) | max(key.tries_left - 1, 0)


def count_failure(card, key: Key) -> int:
    """One failed use of a counted key; returns the tries left.

    The try stays spent in the card's memory even if the image cannot be saved.
    """
    if not key.counted:
        return 0x0F
    spent = _spent(key)
    card.journal.if_not_saved(key, "b4", spent)
    card.write(key, "b4", spent)
    return spent & 0x0F


def count_success(card, key: Key) -> None:
    """A right answer with a counted key commits like a wrong one, and a failed save spends the try.

    Otherwise a full disk (or a directory planted at the image's temporary
    file) would answer ``6581`` to wrong guesses only and ``9000`` to the
    right one, without counting anything: a free oracle (docs/robustness.md).
    """
    if not key.counted:
        return
    card.journal.if_not_saved(key, "b4", _spent(key))
    if key.tries_left != key.max_tries:
        card.write(key, "b4", (key.b4 & 0xF0) | key.max_tries)
    else:
        card.journal.force_commit()


def verify_mac(card, cmd: Command, key: Key, wrong_sw: int) -> bytes:
    """Check the MAC that ends ``cmd.data``; return the data before it.

    A wrong MAC counts against the key's error counter and raises
    ``wrong_sw`` (6988 for file and blocking commands, 9302 for keys/PINs).
    """
    if key.blocked:
        raise CardError(SW.AUTH_BLOCKED)
    data = cmd.data
    if len(data) < 4:
        raise CardError(SW.WRONG_LENGTH)
    challenge = card.challenge
    if challenge is None:
        raise CardError(SW.REFERENCE_DATA_INVALID)
    body, mac = data[:-4], data[-4:]
    alg = key.algorithm
    expected = alg.mac(key.value, cmd.raw[:4] + lc_bytes(len(data)) + body, alg.line_iv(challenge))
    if not constant_time_equal(mac, expected):
        count_failure(card, key)
        raise CardError(wrong_sw)
    count_success(card, key)
    return body


def unwrap(card, cmd: Command, key: Key, encrypted: bool, wrong_sw: int) -> bytes:
    """Verify the MAC and, for encrypted data, decrypt it (LD-prefixed)."""
    body = verify_mac(card, cmd, key, wrong_sw)
    if not encrypted:
        return body
    try:
        return key.algorithm.sm_decrypt(key.value, body)
    except ValueError:
        raise CardError(wrong_sw) from None


def protect_response(card, key: Key, plain: bytes, encrypted: bool) -> bytes:
    """Response of a protected read: data (encrypted if the file is) ‖ MAC.

    The MAC covers the returned body with the command's challenge as IV
    (the FMCOS manuals leave this open; documented in docs/decisions.md).
    """
    alg = key.algorithm
    body = alg.sm_encrypt(key.value, plain) if encrypted else plain
    return body + alg.mac(key.value, body, alg.line_iv(card.challenge or b""))


def line_key(card, kid: int) -> Key:
    """The DF's file line-protection key (type 36) with id ``kid``."""
    key = card.key_file().find(0x36, kid)
    if key is None:
        raise CardError(SW.KEY_NOT_FOUND)
    return key


def plain_write_data(card, cmd: Command, ef) -> bytes:
    """Write right, then the file's protection: returns the plain data to write."""
    card.require(ef.write_right)
    if ef.protection:
        if not cmd.secure:
            raise CardError(SW.SM_MISSING)
        return unwrap(card, cmd, line_key(card, ef.write_key_id), ef.encrypted, SW.SM_WRONG)
    if cmd.secure:
        raise CardError(SW.CLA_PROTECTION_MISMATCH)
    return cmd.data


def read_protection(card, cmd: Command, ef) -> Key | None:
    """Read right and protection; returns the key to protect the response with, if any."""
    card.require(ef.read_right)
    if cmd.secure:
        if not ef.protection:
            raise CardError(SW.CLA_PROTECTION_MISMATCH)
        if len(cmd.data) != 4:
            raise CardError(SW.WRONG_LENGTH)
        key = line_key(card, ef.read_key_id)
        verify_mac(card, cmd, key, SW.SM_WRONG)
        cmd.le_consumed = True
        return key
    if cmd.data:
        raise CardError(SW.WRONG_LENGTH)
    if ef.reads_need_protection:
        raise CardError(SW.SM_MISSING)
    return None
