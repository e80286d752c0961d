"""ED/EP purse commands (reference §3): INITIALIZE ``80 50`` (P1 00 load, 01 purchase,
02 cash withdraw, 03 CAPP purchase, 04 overdraw update, 05 unload), CREDIT FOR LOAD
``80 52``, DEBIT ``80 54`` (P1 01 purchase / withdraw / CAPP, 03 unload), UPDATE
OVERDRAW LIMIT ``80 58``, GET TRANSACTION PROOF ``80 5A``, GET BALANCE ``80 5C`` and
UPDATE CAPP DATA CACHE ``80/84 DC``. Decisions: ``docs/purse.md``.
"""
from __future__ import annotations

from ..apdu import CardError, Command
from ..crypto import constant_time_equal
from ..keys import KeyType
from ..purse import (CAPP_PURCHASE, DEBIT, ED_FID, ED_LOAD, ED_PURCHASE, ED_WITHDRAW, EP_FID, EP_LOAD,
                     EP_PURCHASE, LOAD, MAX_COUNTER, ONLINE_PAD, OVERDRAW_UPDATE, PROOF_TYPES, UNLOAD,
                     UNLOAD_KIND, UPDATE, Session, commit, find_purse, mac_failed, mac_ok, purse_aids, tac,
                     take_session, transaction_key)
from ..sw import SW
from .record import MODE_BY_NUMBER, MODE_FIRST, _check_tlv, _tag_index, record_file
from .secure import plain_write_data

_PURSES = (ED_FID, EP_FID)


def _plain(cmd: Command) -> None:
    if cmd.secure:  # purse commands carry their own MACs; CLA 84 is not defined for them
        raise CardError(SW.CLA_NOT_SUPPORTED)


def _open(card, cmd: Command, ed_only: bool, ep_only: bool = False):
    """P2, Lc 0B, purse, use right: returns (purse, key id, amount, terminal id)."""
    _plain(cmd)
    p2 = cmd.p2
    if p2 not in _PURSES:
        raise CardError(SW.WRONG_P1P2)
    if (ed_only and p2 != ED_FID) or (ep_only and p2 != EP_FID):
        raise CardError(SW.FUNCTION_NOT_SUPPORTED)
    data = cmd.data
    if len(data) != 11:
        raise CardError(SW.WRONG_LENGTH)
    purse = find_purse(card, p2)
    card.require(purse.use_right)
    return purse, data[0], int.from_bytes(data[1:5], "big"), data[5:11]


def _check_counter(counter: int) -> None:
    if counter >= MAX_COUNTER:
        raise CardError(SW.COUNTER_AT_MAXIMUM)


def _online_init(card, cmd: Command, kind: int, key_type: int, tx_type: int, purse, kid, amount, terminal):
    """Load and unload: balance ‖ online ctr ‖ ver ‖ alg ‖ random ‖ MAC1 (16 bytes)."""
    key = transaction_key(card, key_type, kid)
    tac_key, log = purse_aids(card, purse)
    counter = purse.online_counter
    _check_counter(counter)
    if kind == LOAD:
        if purse.balance + amount > card.config.max_balance:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
    elif amount > purse.balance:
        raise CardError(SW.INSUFFICIENT_FUNDS)
    random = card.random(4)
    alg = key.algorithm
    counter_bytes = counter.to_bytes(2, "big")
    balance = purse.balance.to_bytes(4, "big")
    session = Session(kind, tx_type, purse, key, amount, terminal, counter, random, tac_key, log)
    session.sk = sk = alg.session_key(key.value, random + counter_bytes + ONLINE_PAD)
    mac1 = alg.mac(sk, balance + amount.to_bytes(4, "big") + bytes((tx_type,)) + terminal)
    card.session = session
    return balance + counter_bytes + bytes((key.version, key.alg_id)) + random + mac1


def initialize_load(card, cmd: Command):
    purse, kid, amount, terminal = _open(card, cmd, ed_only=False)
    tx_type = ED_LOAD if purse.fid == ED_FID else EP_LOAD
    return _online_init(card, cmd, LOAD, KeyType.LOAD, tx_type, purse, kid, amount, terminal)


def initialize_unload(card, cmd: Command):
    purse, kid, amount, terminal = _open(card, cmd, ed_only=True)
    return _online_init(card, cmd, UNLOAD_KIND, KeyType.UNLOAD, UNLOAD, purse, kid, amount, terminal)


def _debit_init(card, cmd: Command, tx_type: int, purse, kid, amount, terminal):
    """Purchase, cash withdraw, CAPP: balance ‖ offline ctr ‖ limit ‖ ver ‖ alg ‖ random (15 bytes)."""
    key = transaction_key(card, KeyType.PURCHASE, kid)
    tac_key, log = purse_aids(card, purse)
    counter = purse.offline_counter
    _check_counter(counter)
    if amount > purse.balance:
        raise CardError(SW.INSUFFICIENT_FUNDS)
    random = card.random(4)
    card.session = Session(DEBIT, tx_type, purse, key, amount, terminal, counter, random, tac_key, log)
    return (purse.balance.to_bytes(4, "big") + counter.to_bytes(2, "big")
            + purse.overdraw_limit.to_bytes(3, "big") + bytes((key.version, key.alg_id)) + random)


def initialize_purchase(card, cmd: Command):
    purse, kid, amount, terminal = _open(card, cmd, ed_only=False)
    tx_type = ED_PURCHASE if purse.fid == ED_FID else EP_PURCHASE
    return _debit_init(card, cmd, tx_type, purse, kid, amount, terminal)


def initialize_cash_withdraw(card, cmd: Command):
    purse, kid, amount, terminal = _open(card, cmd, ed_only=True)
    return _debit_init(card, cmd, ED_WITHDRAW, purse, kid, amount, terminal)


def initialize_capp_purchase(card, cmd: Command):
    purse, kid, amount, terminal = _open(card, cmd, ed_only=False, ep_only=True)
    return _debit_init(card, cmd, CAPP_PURCHASE, purse, kid, amount, terminal)


def initialize_update(card, cmd: Command):
    """``80 50 04 01 07 keyId termId``: balance ‖ online ctr ‖ old limit ‖ ver ‖ alg ‖ random ‖ MAC1."""
    _plain(cmd)
    if cmd.p2 not in _PURSES:
        raise CardError(SW.WRONG_P1P2)
    if cmd.p2 != ED_FID:
        raise CardError(SW.FUNCTION_NOT_SUPPORTED)
    data = cmd.data
    if len(data) != 7:
        raise CardError(SW.WRONG_LENGTH)
    purse = find_purse(card, ED_FID)
    card.require(purse.use_right)
    key = transaction_key(card, KeyType.OVERDRAW, data[0])
    tac_key, log = purse_aids(card, purse)
    counter = purse.online_counter
    _check_counter(counter)
    terminal = data[1:7]
    random = card.random(4)
    alg = key.algorithm
    counter_bytes = counter.to_bytes(2, "big")
    head = purse.balance.to_bytes(4, "big")
    limit = purse.overdraw_limit.to_bytes(3, "big")
    session = Session(UPDATE, OVERDRAW_UPDATE, purse, key, purse.overdraw_limit, terminal, counter, random,
                      tac_key, log)
    session.sk = sk = alg.session_key(key.value, random + counter_bytes + ONLINE_PAD)
    mac1 = alg.mac(sk, head + limit + bytes((OVERDRAW_UPDATE,)) + terminal)
    card.session = session
    return head + counter_bytes + limit + bytes((key.version, key.alg_id)) + random + mac1


def _second(card, cmd: Command, kind: int, length: int) -> Session:
    """P1P2 already dispatched; session of ``kind`` (``6901``), then Lc (``6700``)."""
    _plain(cmd)
    session = take_session(card, kind)
    if len(cmd.data) != length:
        raise CardError(SW.WRONG_LENGTH)
    return session


def _check_mac(card, session: Session, sk: bytes, data: bytes, mac: bytes) -> None:
    if not constant_time_equal(mac, session.key.algorithm.mac(sk, data)):
        mac_failed(card, session.purse)
    mac_ok(card, session.purse)


def credit_for_load(card, cmd: Command):
    """``80 52 00 00 0B date time MAC2`` → TAC."""
    if cmd.p1 or cmd.p2:
        raise CardError(SW.WRONG_P1P2)
    session = _second(card, cmd, LOAD, 11)
    data = cmd.data
    date_time, mac2 = data[:7], data[7:]
    amount = session.amount.to_bytes(4, "big")
    tail = bytes((session.tx_type,)) + session.terminal + date_time
    _check_mac(card, session, session.sk, amount + tail, mac2)
    purse = session.purse
    balance = purse.balance + session.amount
    tac_value = tac(session, balance.to_bytes(4, "big") + session.counter.to_bytes(2, "big") + amount + tail)
    commit(card, session, balance=balance, counter_attr="online_counter", limit=purse.overdraw_limit,
           amount=session.amount, date_time=date_time, proof=mac2 + tac_value)
    return tac_value


def debit_for_purchase(card, cmd: Command):
    """``80 54 01 00 0F termSerial date time MAC1`` → TAC ‖ MAC2 (purchase, withdraw, CAPP)."""
    if cmd.p2:
        raise CardError(SW.WRONG_P1P2)
    session = _second(card, cmd, DEBIT, 15)
    data = cmd.data
    tsn, date_time, mac1 = data[:4], data[4:11], data[11:]
    key = session.key
    alg = key.algorithm
    sk = alg.session_key(key.value, session.random + session.counter.to_bytes(2, "big") + tsn[2:])
    amount = session.amount.to_bytes(4, "big")
    head = amount + bytes((session.tx_type,)) + session.terminal
    _check_mac(card, session, sk, head + date_time, mac1)
    purse = session.purse
    tac_value = tac(session, head + tsn + date_time)
    mac2 = alg.mac(sk, amount)
    commit(card, session, balance=purse.balance - session.amount, counter_attr="offline_counter",
           limit=purse.overdraw_limit, amount=session.amount, date_time=date_time, proof=mac2 + tac_value)
    return tac_value + mac2


def debit_for_unload(card, cmd: Command):
    """``80 54 03 00 0B date time MAC2`` → MAC3 (with the session key)."""
    if cmd.p2:
        raise CardError(SW.WRONG_P1P2)
    session = _second(card, cmd, UNLOAD_KIND, 11)
    data = cmd.data
    date_time, mac2 = data[:7], data[7:]
    amount = session.amount.to_bytes(4, "big")
    tail = bytes((UNLOAD,)) + session.terminal + date_time
    _check_mac(card, session, session.sk, amount + tail, mac2)
    purse = session.purse
    balance = purse.balance - session.amount
    proof_data = balance.to_bytes(4, "big") + session.counter.to_bytes(2, "big") + amount + tail
    mac3 = session.key.algorithm.mac(session.sk, proof_data)
    commit(card, session, balance=balance, counter_attr="online_counter", limit=purse.overdraw_limit,
           amount=session.amount, date_time=date_time, proof=mac3 + tac(session, proof_data))
    return mac3


def update_overdraw_limit(card, cmd: Command):
    """``80 58 00 00 0E newLimit date time MAC2`` → TAC; the balance moves with the limit."""
    if cmd.p1 or cmd.p2:
        raise CardError(SW.WRONG_P1P2)
    session = _second(card, cmd, UPDATE, 14)
    data = cmd.data
    new_limit, date_time, mac2 = data[:3], data[3:10], data[10:]
    tail = bytes((OVERDRAW_UPDATE,)) + session.terminal + date_time
    _check_mac(card, session, session.sk, new_limit + tail, mac2)
    purse = session.purse
    limit = int.from_bytes(new_limit, "big")
    balance = purse.balance - purse.overdraw_limit + limit
    if balance < 0:
        raise CardError(SW.INSUFFICIENT_FUNDS)
    if balance > card.config.max_balance:
        raise CardError(SW.CONDITIONS_NOT_SATISFIED)
    tac_value = tac(session, balance.to_bytes(4, "big") + session.counter.to_bytes(2, "big") + new_limit + tail)
    commit(card, session, balance=balance, counter_attr="online_counter", limit=limit, amount=0,
           date_time=date_time, proof=mac2 + tac_value)
    return tac_value


def get_balance(card, cmd: Command):
    """``80 5C 00 P2 04`` → balance (4)."""
    _plain(cmd)
    if cmd.p1 or cmd.p2 not in _PURSES:
        raise CardError(SW.WRONG_P1P2)
    if cmd.data:
        raise CardError(SW.WRONG_LENGTH)
    purse = find_purse(card, cmd.p2)
    card.require(purse.use_right)
    return purse.balance.to_bytes(4, "big")


def get_transaction_proof(card, cmd: Command):
    """``80 5A 00 type 02 counter`` → MAC ‖ TAC of that completed transaction, else ``9406``."""
    _plain(cmd)
    fid = PROOF_TYPES.get(cmd.p2)
    if cmd.p1 or fid is None:
        raise CardError(SW.WRONG_P1P2)
    if len(cmd.data) != 2:
        raise CardError(SW.WRONG_LENGTH)
    purse = find_purse(card, fid)
    card.require(purse.use_right)
    proof = purse.proofs.get(f"{cmd.p2:02X}:{cmd.data.hex().upper()}")
    if proof is None:
        raise CardError(SW.MAC_UNAVAILABLE)
    return bytes.fromhex(proof)


def update_capp_data_cache(card, cmd: Command):
    """``80/84 DC P1 P2 record``: cache a composite record, written when the CAPP debit succeeds.

    P2 = SFI ‖ mode: ``000`` → the first record with tag P1 (variable files),
    ``100`` → record number P1; a cyclic file gets the record appended.
    """
    session = card.prior_session
    if session is None or session.tx_type != CAPP_PURCHASE:
        raise CardError(SW.COMMAND_NOT_ACCEPTED)
    ef = record_file(card, cmd.p2)
    mode = cmd.p2 & 0x07
    if not ef.cyclic and mode != MODE_BY_NUMBER and not (mode == MODE_FIRST and ef.variable):
        raise CardError(SW.WRONG_P1P2)
    if ef.protection and cmd.secure:
        card.challenge = session.random  # the MAC's IV: the CAPP INITIALIZE random ‖ zeros
    data = plain_write_data(card, cmd, ef)  # write right, line protection
    index = None  # cyclic: append
    if mode == MODE_BY_NUMBER and not ef.cyclic:
        index = cmd.p1 - 1
        if not 0 <= index < len(ef.records):
            raise CardError(SW.RECORD_NOT_FOUND)
    elif not ef.cyclic:
        index = _tag_index(card, ef, cmd.p1, MODE_FIRST)
    if ef.variable:
        _check_tlv(data)
        if len(data) != len(ef.records[index]):
            raise CardError(SW.WRONG_LENGTH)
        if data[0] != ef.records[index][0]:  # a composite record keeps its tag
            raise CardError(SW.WRONG_DATA)
    elif len(data) != ef.record_length:
        raise CardError(SW.WRONG_LENGTH)
    session.cache[(ef, index)] = data
    card.session = session  # the CAPP session goes on
    return b""


HANDLERS = {
    (0x80, 0x50): {0x00: initialize_load, 0x01: initialize_purchase, 0x02: initialize_cash_withdraw,
                   0x03: initialize_capp_purchase, 0x04: initialize_update, 0x05: initialize_unload},
    (0x80, 0x52): credit_for_load,
    (0x80, 0x54): {0x01: debit_for_purchase, 0x03: debit_for_unload},
    (0x80, 0x58): update_overdraw_limit,
    (0x80, 0x5A): get_transaction_proof,
    (0x80, 0x5C): get_balance,
    (0x80, 0xDC): update_capp_data_cache,
}
