"""Purse transactions from the terminal's side (reference §3): load, purchase, CAPP
purchase, cash withdraw, unload, overdraw update, balance, and recovery of a
torn transaction through GET TRANSACTION PROOF (§6).

Every function takes ``card``: anything with ``transmit(bytes) -> bytes``
(an in-process :class:`cardos.Card`), such a callable, or a pyscard
``CardConnection`` (lists and ``(data, sw1, sw2)`` are converted). The application must be selected (:func:`select_application`)
and, for the ED, the PIN verified (:func:`verify_pin`) first.

If the card goes mute on the completing command (card pulled, power lost)
the function raises :class:`TornTransaction`; its ``pending`` goes to
:func:`recover` once the card is back, which tells whether the transaction
happened (and returns its record) or not (``None``: run it again).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..apdu import build
from ..crypto import constant_time_equal
from .records import (CAPP_PURCHASE, ED_LOAD, ED_PURCHASE, ED_WITHDRAW, EP_LOAD, EP_PURCHASE, OVERDRAW_UPDATE,
                      UNLOAD, TransactionRecord)
from .secure import protected_apdu

ED, EP = 0x01, 0x02
CITY_AID = bytes.fromhex("A00000000386980701")
_OK = 0x9000


class TransactionError(Exception):
    """The card (or the host / PSAM check) refused a step; ``sw`` is the card's status word if any."""

    def __init__(self, step: str, sw: int | None = None, detail: str = ""):
        text = f"{step}: card answered {sw:04X}" if sw is not None else f"{step}: {detail}"
        super().__init__(text)
        self.step = step
        self.sw = sw


class VerificationError(TransactionError):
    """The card completed the transaction but its MAC2 / MAC3 / TAC did not verify; ``record`` is kept."""

    def __init__(self, step: str, detail: str, record: TransactionRecord):
        super().__init__(step, detail=detail)
        self.record = record


class CardMute(Exception):
    """No response: the card was removed or lost power."""


@dataclass
class PendingTransaction:
    """What the terminal knew when the completing command went unanswered."""

    serial: bytes
    purse: int
    type: int
    counter: int
    amount: int
    balance_before: int
    terminal: bytes
    date_time: bytes
    tsn: bytes = b""
    old_limit: int = 0
    new_limit: int = 0
    expected_mac: bytes = b""

    def record(self, mac: bytes, tac: bytes) -> TransactionRecord:
        limit = 0
        if self.type == OVERDRAW_UPDATE:
            balance, limit = self.balance_before - self.old_limit + self.new_limit, self.new_limit
        elif self.type in (ED_LOAD, EP_LOAD):
            balance = self.balance_before + self.amount
        else:
            balance = self.balance_before - self.amount
        return TransactionRecord(serial=self.serial, type=self.type, counter=self.counter,
                                 amount=0 if self.type == OVERDRAW_UPDATE else self.amount, balance=balance,
                                 terminal=self.terminal, date=self.date_time[:4], time=self.date_time[4:],
                                 tac=tac, tsn=self.tsn, overdraw_limit=limit, mac=mac)


class TornTransaction(TransactionError):
    """The completing command got no answer; pass ``pending`` to :func:`recover`."""

    def __init__(self, step: str, pending: PendingTransaction):
        super().__init__(step, detail="no response (card removed or power lost); recover with GET TRANSACTION PROOF")
        self.pending = pending


@dataclass
class CappUpdate:
    """One UPDATE CAPP DATA CACHE: a composite record for file ``sfi``.

    ``p1`` is the record tag (``by_number=False``) or number; ``line_key``
    (the application's line-protection key) when the file is MAC-protected.
    """

    sfi: int
    p1: int
    record: bytes
    by_number: bool = False
    line_key: bytes | None = None
    algorithm: object = field(default=None, repr=False)


# -- the channel ---------------------------------------------------------------------------

def _transmit_of(card):
    if hasattr(card, "getATR") and hasattr(card, "connect"):  # a pyscard CardConnection: lists, (data, sw1, sw2)
        send = card.transmit

        def transmit(apdu: bytes) -> bytes:
            data, sw1, sw2 = send(list(apdu))
            return bytes(data) + bytes((sw1, sw2))
        return transmit
    return card.transmit if hasattr(card, "transmit") else card


def send(card, apdu: bytes) -> tuple[bytes, int]:
    """Send one command; follows ``61XX`` (GET RESPONSE) and ``6CXX`` (resend with Le)."""
    transmit = _transmit_of(card)
    try:
        response = bytes(transmit(apdu))
    except Exception as exc:  # a transport that raises when the card is gone
        raise CardMute(str(exc)) from exc
    if len(response) < 2:
        raise CardMute("card answered nothing")
    data, sw = response[:-2], int.from_bytes(response[-2:], "big")
    if sw >> 8 == 0x6C and len(apdu) > 4:
        return send(card, apdu[:-1] + bytes((sw & 0xFF,)))
    while sw >> 8 == 0x61:
        more, sw = send(card, bytes((0x00, 0xC0, 0x00, 0x00, sw & 0xFF)))
        data += more
    return data, sw


def _ok(card, apdu: bytes, step: str, length: int | None = None) -> bytes:
    data, sw = send(card, apdu)
    if sw != _OK:
        raise TransactionError(step, sw)
    if length is not None and len(data) != length:
        raise TransactionError(step, detail=f"expected {length} response bytes, got {len(data)}")
    return data


def _bcd_now(when: datetime | None) -> bytes:
    return bytes.fromhex((when or datetime.now()).strftime("%Y%m%d%H%M%S"))


# -- card information ------------------------------------------------------------------------

def select_application(card, aid: bytes = CITY_AID) -> bytes:
    """SELECT the purse application by name; returns the application serial (0015 bytes 12..19)."""
    fci = _ok(card, build(0x00, 0xA4, 0x04, 0x00, aid, 256), "SELECT application")
    marker = fci.find(b"\x9f\x0c")
    if marker >= 0 and len(fci) >= marker + 23 and fci[marker + 2] >= 20:
        return fci[marker + 3 + 12: marker + 3 + 20]
    return read_serial(card)


def read_serial(card) -> bytes:
    """The application serial from EF 0015 (bytes 12..19 on 住建部 and T-Union layouts)."""
    return _ok(card, bytes.fromhex("00B0950000"), "READ BINARY 0015")[12:20]


def verify_pin(card, pin: bytes, pin_id: int = 0) -> None:
    """VERIFY (needed before ED transactions: the ED's use right asks for it)."""
    _ok(card, build(0x00, 0x20, 0x00, pin_id, pin), "VERIFY PIN")


def get_balance(card, purse: int = EP) -> int:
    return int.from_bytes(_ok(card, build(0x80, 0x5C, 0x00, purse, le=4), "GET BALANCE", 4), "big")


def get_transaction_proof(card, tx_type: int, counter: int) -> tuple[bytes, bytes] | None:
    """(MAC, TAC) of the completed transaction ``(tx_type, counter)``, or ``None`` (``9406``)."""
    data, sw = send(card, build(0x80, 0x5A, 0x00, tx_type, counter.to_bytes(2, "big"), 8))
    if sw == 0x9406:
        return None
    if sw != _OK or len(data) != 8:
        raise TransactionError("GET TRANSACTION PROOF", sw)
    return data[:4], data[4:]


# -- online transactions: load, unload, overdraw update (load host) ----------------------------

def _complete(card, apdu: bytes, step: str, pending: PendingTransaction, length: int) -> bytes:
    try:
        return _ok(card, apdu, step, length)
    except CardMute:
        raise TornTransaction(step, pending) from None


def _check(record: TransactionRecord, verifier, step: str) -> TransactionRecord:
    verified = verifier.verify_tac(record) if verifier is not None else None
    if verified is False:
        raise VerificationError(step, "TAC does not verify", record)
    return record


def load(card, host, amount: int, *, terminal: bytes, purse: int = EP, key_index: int = 1,
         when: datetime | None = None, serial: bytes | None = None) -> TransactionRecord:
    """圈存: INITIALIZE FOR LOAD, MAC1 checked and MAC2 made by ``host``, CREDIT FOR LOAD → TAC."""
    serial = serial or read_serial(card)
    date_time = _bcd_now(when)
    tx_type = ED_LOAD if purse == ED else EP_LOAD
    r = _ok(card, build(0x80, 0x50, 0x00, purse, bytes((key_index,)) + amount.to_bytes(4, "big") + terminal, 0x10),
            "INITIALIZE FOR LOAD", 16)
    balance, counter, random, mac1 = int.from_bytes(r[:4], "big"), int.from_bytes(r[4:6], "big"), r[8:12], r[12:16]
    mac2 = host.authorize_load(serial, key_index=key_index, tx_type=tx_type, balance=balance, counter=counter,
                               random=random, mac1=mac1, amount=amount, terminal=terminal, date_time=date_time)
    pending = PendingTransaction(serial, purse, tx_type, counter, amount, balance, terminal, date_time,
                                 expected_mac=mac2)
    tac = _complete(card, build(0x80, 0x52, 0x00, 0x00, date_time + mac2, 4), "CREDIT FOR LOAD", pending, 4)
    return _check(pending.record(mac2, tac), host, "CREDIT FOR LOAD")


def unload(card, host, amount: int, *, terminal: bytes, key_index: int = 1, when: datetime | None = None,
           serial: bytes | None = None) -> TransactionRecord:
    """圈提 (ED): INITIALIZE FOR UNLOAD, DEBIT FOR UNLOAD → MAC3 (checked), TAC via GET TRANSACTION PROOF."""
    serial = serial or read_serial(card)
    date_time = _bcd_now(when)
    r = _ok(card, build(0x80, 0x50, 0x05, ED, bytes((key_index,)) + amount.to_bytes(4, "big") + terminal, 0x10),
            "INITIALIZE FOR UNLOAD", 16)
    balance, counter, random, mac1 = int.from_bytes(r[:4], "big"), int.from_bytes(r[4:6], "big"), r[8:12], r[12:16]
    mac2, mac3_expected = host.authorize_unload(serial, key_index=key_index, balance=balance, counter=counter,
                                                random=random, mac1=mac1, amount=amount, terminal=terminal,
                                                date_time=date_time)
    pending = PendingTransaction(serial, ED, UNLOAD, counter, amount, balance, terminal, date_time,
                                 expected_mac=mac3_expected)
    mac3 = _complete(card, build(0x80, 0x54, 0x03, 0x00, date_time + mac2, 4), "DEBIT FOR UNLOAD", pending, 4)
    proof = get_transaction_proof(card, UNLOAD, counter)
    tac = proof[1] if proof else b"\x00" * 4
    record = pending.record(mac3, tac)
    if not constant_time_equal(mac3, mac3_expected) or proof is None or not constant_time_equal(proof[0], mac3):
        raise VerificationError("DEBIT FOR UNLOAD", "MAC3 does not verify", record)
    return _check(record, host, "DEBIT FOR UNLOAD")


def update_overdraw_limit(card, host, new_limit: int, *, terminal: bytes, key_index: int = 1,
                          when: datetime | None = None, serial: bytes | None = None) -> TransactionRecord:
    """修改透支限额 (ED): INITIALIZE FOR UPDATE, UPDATE OVERDRAW LIMIT → TAC."""
    serial = serial or read_serial(card)
    date_time = _bcd_now(when)
    r = _ok(card, build(0x80, 0x50, 0x04, ED, bytes((key_index,)) + terminal, 0x13), "INITIALIZE FOR UPDATE", 19)
    balance, counter = int.from_bytes(r[:4], "big"), int.from_bytes(r[4:6], "big")
    old_limit, random, mac1 = int.from_bytes(r[6:9], "big"), r[11:15], r[15:19]
    mac2 = host.authorize_overdraw(serial, key_index=key_index, balance=balance, counter=counter, random=random,
                                   mac1=mac1, old_limit=old_limit, new_limit=new_limit, terminal=terminal,
                                   date_time=date_time)
    pending = PendingTransaction(serial, ED, OVERDRAW_UPDATE, counter, 0, balance, terminal, date_time,
                                 old_limit=old_limit, new_limit=new_limit, expected_mac=mac2)
    tac = _complete(card, build(0x80, 0x58, 0x00, 0x00, new_limit.to_bytes(3, "big") + date_time + mac2, 4),
                    "UPDATE OVERDRAW LIMIT", pending, 4)
    return _check(pending.record(mac2, tac), host, "UPDATE OVERDRAW LIMIT")


# -- offline transactions: purchase, cash withdraw, CAPP purchase (PSAM) ------------------------

def _debit(card, psam, amount: int, tx_type: int, p1: int, purse: int, key_index: int, when, serial,
           updates=()) -> TransactionRecord:
    serial = serial or read_serial(card)
    date_time = _bcd_now(when)
    terminal = psam.terminal_id
    r = _ok(card, build(0x80, 0x50, p1, purse, bytes((key_index,)) + amount.to_bytes(4, "big") + terminal, 0x0F),
            "INITIALIZE FOR PURCHASE", 15)
    balance, counter, random = int.from_bytes(r[:4], "big"), int.from_bytes(r[4:6], "big"), r[11:15]
    tsn, mac1 = psam.init_purchase(serial, key_index=key_index, tx_type=tx_type, counter=counter, random=random,
                                   amount=amount, date_time=date_time)
    for update in updates:
        p2 = (update.sfi << 3) | (0b100 if update.by_number else 0b000)
        if update.line_key is not None:
            kwargs = {"algorithm": update.algorithm} if update.algorithm is not None else {}
            apdu = protected_apdu(0x84, 0xDC, update.p1, p2, update.record, update.line_key, random, **kwargs)
        else:
            apdu = build(0x80, 0xDC, update.p1, p2, update.record)
        _ok(card, apdu, "UPDATE CAPP DATA CACHE")
    pending = PendingTransaction(serial, purse, tx_type, counter, amount, balance, terminal, date_time, tsn=tsn,
                                 expected_mac=psam.expected_mac2)
    r = _complete(card, build(0x80, 0x54, 0x01, 0x00, tsn + date_time + mac1, 8), "DEBIT FOR PURCHASE", pending, 8)
    tac, mac2 = r[:4], r[4:]
    record = pending.record(mac2, tac)
    if not psam.check_mac2(mac2):
        raise VerificationError("DEBIT FOR PURCHASE", "MAC2 does not verify", record)
    return _check(record, psam, "DEBIT FOR PURCHASE")


def purchase(card, psam, amount: int, *, purse: int = EP, key_index: int = 1, when: datetime | None = None,
             serial: bytes | None = None) -> TransactionRecord:
    """消费: INITIALIZE FOR PURCHASE, MAC1 from ``psam``, DEBIT FOR PURCHASE → TAC ‖ MAC2 (checked)."""
    tx_type = ED_PURCHASE if purse == ED else EP_PURCHASE
    return _debit(card, psam, amount, tx_type, 0x01, purse, key_index, when, serial)


def cash_withdraw(card, psam, amount: int, *, key_index: int = 1, when: datetime | None = None,
                  serial: bytes | None = None) -> TransactionRecord:
    """取现 (ED): INITIALIZE FOR CASH WITHDRAW, then the purchase debit."""
    return _debit(card, psam, amount, ED_WITHDRAW, 0x02, ED, key_index, when, serial)


def capp_purchase(card, psam, amount: int, updates=(), *, key_index: int = 1, when: datetime | None = None,
                  serial: bytes | None = None) -> TransactionRecord:
    """复合消费 (EP): INITIALIZE FOR CAPP PURCHASE, UPDATE CAPP DATA CACHE for each of ``updates``
    (:class:`CappUpdate`), DEBIT — the card writes balance, log and composite records together."""
    return _debit(card, psam, amount, CAPP_PURCHASE, 0x03, EP, key_index, when, serial, updates)


# -- recovery ------------------------------------------------------------------------------------

def recover(card, pending: PendingTransaction, *, aid: bytes | None = CITY_AID, pin: bytes | None = None,
            verifier=None) -> TransactionRecord | None:
    """After a :class:`TornTransaction`: did it happen?

    Selects the application (unless ``aid`` is ``None``), verifies ``pin``
    if given (ED), and asks GET TRANSACTION PROOF for the pending type and
    counter. Returns the completed record (its MAC checked against what the
    host / PSAM expected, its TAC by ``verifier`` if given), or ``None`` when
    the card did not complete it — run the transaction again.
    """
    if aid is not None:
        select_application(card, aid)
    if pin is not None:
        verify_pin(card, pin)
    proof = get_transaction_proof(card, pending.type, pending.counter)
    if proof is None:
        return None
    mac, tac = proof
    record = pending.record(mac, tac)
    if pending.expected_mac and not constant_time_equal(mac, pending.expected_mac):
        raise VerificationError("GET TRANSACTION PROOF", "MAC does not match the torn transaction", record)
    return _check(record, verifier, "GET TRANSACTION PROOF")


__all__ = ["CITY_AID", "ED", "EP", "CappUpdate", "CardMute", "PendingTransaction", "TornTransaction",
           "TransactionError", "VerificationError", "capp_purchase", "cash_withdraw", "get_balance",
           "get_transaction_proof", "load", "purchase", "read_serial", "recover", "select_application", "send",
           "unload", "update_overdraw_limit", "verify_pin"]
