"""A software load host (the issuer's HSM for 圈存 / 圈提 / overdraw updates, reference §3.2-3.8).

The host holds the issuer master keys, diversifies the card's load, unload
or overdraw key with the application serial, re-derives the session key
from the card's random and online counter, checks the card's MAC1 and
answers MAC2. With the TAC master it also verifies the card's TAC.
"""
from __future__ import annotations

from ..crypto import constant_time_equal
from .records import ED_LOAD, EP_LOAD, OVERDRAW_UPDATE, UNLOAD, TransactionRecord

ONLINE_PAD = b"\x80\x00"


class HostError(Exception):
    """The host refuses to authorize (wrong MAC1, unknown key)."""


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


class LoadHost:
    """``keys``: any issuer key source (``algorithm``, ``card_key(role, index, serial)``)."""

    def __init__(self, keys):
        self.keys = keys

    def _session_key(self, role: str, key_index: int, serial: bytes, random: bytes, counter: int) -> bytes:
        try:
            key = self.keys.card_key(role, key_index, serial)
        except Exception as exc:  # noqa: BLE001 - LookupError, KeySetError: no such key
            raise HostError(str(exc)) from None
        return self.keys.algorithm.session_key(key, random + counter.to_bytes(2, "big") + ONLINE_PAD)

    def _check_mac1(self, sk: bytes, data: bytes, mac1: bytes) -> None:
        if not constant_time_equal(self.keys.algorithm.mac(sk, data), mac1):
            raise HostError("MAC1 from the card is wrong (card keys or data do not match)")

    def authorize_load(self, serial: bytes, *, key_index: int, tx_type: int, balance: int, counter: int,
                       random: bytes, mac1: bytes, amount: int, terminal: bytes, date_time: bytes) -> bytes:
        """Check MAC1 of INITIALIZE FOR LOAD; return MAC2 for CREDIT FOR LOAD."""
        if tx_type not in (ED_LOAD, EP_LOAD):
            raise HostError(f"not a load type: {tx_type:02X}")
        sk = self._session_key("load", key_index, serial, random, counter)
        head = _u32(amount) + bytes((tx_type,)) + terminal
        self._check_mac1(sk, _u32(balance) + head, mac1)
        return self.keys.algorithm.mac(sk, head + date_time)

    def authorize_unload(self, serial: bytes, *, key_index: int, balance: int, counter: int, random: bytes,
                         mac1: bytes, amount: int, terminal: bytes, date_time: bytes) -> tuple[bytes, bytes]:
        """Check MAC1 of INITIALIZE FOR UNLOAD; return (MAC2, the MAC3 the card must answer)."""
        sk = self._session_key("unload", key_index, serial, random, counter)
        head = _u32(amount) + bytes((UNLOAD,)) + terminal
        self._check_mac1(sk, _u32(balance) + head, mac1)
        alg = self.keys.algorithm
        mac3 = alg.mac(sk, _u32(balance - amount) + counter.to_bytes(2, "big") + head + date_time)
        return alg.mac(sk, head + date_time), mac3

    def authorize_overdraw(self, serial: bytes, *, key_index: int, balance: int, counter: int, random: bytes,
                           mac1: bytes, old_limit: int, new_limit: int, terminal: bytes,
                           date_time: bytes) -> bytes:
        """Check MAC1 of INITIALIZE FOR UPDATE; return MAC2 for UPDATE OVERDRAW LIMIT."""
        sk = self._session_key("overdraw", key_index, serial, random, counter)
        tail = bytes((OVERDRAW_UPDATE,)) + terminal
        self._check_mac1(sk, _u32(balance) + old_limit.to_bytes(3, "big") + tail, mac1)
        return self.keys.algorithm.mac(sk, new_limit.to_bytes(3, "big") + tail + date_time)

    def verify_tac(self, record: TransactionRecord) -> bool | None:
        """``True``/``False``, or ``None`` when the host holds no TAC key."""
        return verify_tac(self.keys, record)


def verify_tac(keys, record: TransactionRecord) -> bool | None:
    """Check a record's TAC with the issuer's TAC master diversified by the record's serial."""
    has = getattr(keys, "has", None)
    if has is not None and not has("tac"):
        return None
    try:
        dtk = keys.card_key("tac", None, record.serial)
    except Exception:  # noqa: BLE001 - no (single) TAC key in this key source
        return None
    alg = keys.algorithm
    return constant_time_equal(alg.mac(alg.tac_key(dtk), record.tac_input()), record.tac)
