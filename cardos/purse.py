"""ED/EP purse logic shared by the purse commands (reference §3, §4, §6).

A purse transaction is INITIALIZE (opens a one-shot :class:`Session`, held
in ``card.session``, RAM only) followed directly by its completing command.
Completion writes balance, counter, transaction record, cached composite
records and the transaction proof through the journal, so the card commits
them together or not at all (anti-tearing, ``docs/purse.md``).

Byte layouts are built with ``int.to_bytes``: this runs on every purse APDU.
"""
from __future__ import annotations

from .apdu import CardError
from .filesystem import BLOCK_PERMANENT, PurseEF, RecordEF
from .keys import Key, KeyType
from .layouts import TRANSACTION_RECORD_LENGTH
from .sw import SW

ED_FID, EP_FID = 0x0001, 0x0002

# Transaction types (reference §3.1).
ED_LOAD, EP_LOAD, UNLOAD, ED_WITHDRAW = 0x01, 0x02, 0x03, 0x04
ED_PURCHASE, EP_PURCHASE, OVERDRAW_UPDATE, CAPP_PURCHASE = 0x05, 0x06, 0x07, 0x09
PROOF_TYPES = {ED_LOAD: ED_FID, EP_LOAD: EP_FID, UNLOAD: ED_FID, ED_WITHDRAW: ED_FID,
               ED_PURCHASE: ED_FID, EP_PURCHASE: EP_FID, OVERDRAW_UPDATE: ED_FID, CAPP_PURCHASE: EP_FID}

# Session kinds: what the completing command must be.
LOAD, UNLOAD_KIND, UPDATE, DEBIT = 1, 2, 3, 4

ONLINE_PAD = b"\x80\x00"  # session-key input tail of load / unload / overdraw update
MAX_COUNTER = 0xFFFF


class Session:
    """What an INITIALIZE leaves for its completing command (volatile)."""

    __slots__ = ("amount", "cache", "counter", "key", "kind", "log", "purse", "random", "sk", "tac_key",
                 "terminal", "tx_type")

    def __init__(self, kind, tx_type, purse, key, amount, terminal, counter, random, tac_key, log):
        self.kind = kind
        self.tx_type = tx_type
        self.purse: PurseEF = purse
        self.key: Key = key
        self.sk = None
        self.amount = amount  # for an overdraw update: the old limit
        self.terminal = terminal
        self.counter = counter  # the counter value INITIALIZE returned (pre-increment)
        self.random = random
        self.tac_key: Key = tac_key
        self.log: RecordEF = log
        self.cache: dict = {}  # UPDATE CAPP DATA CACHE: (ef, index or None) -> record


def find_purse(card, fid: int) -> PurseEF:
    node = card.current_df.children.get(fid)
    if node is None:
        raise CardError(SW.FILE_NOT_FOUND)
    if type(node) is not PurseEF:
        raise CardError(SW.WRONG_FILE_TYPE)
    return node


def transaction_key(card, key_type: int, kid: int) -> Key:
    """The purse key chosen by INITIALIZE's key index: ``9403`` if absent, ``6982`` if its use right fails."""
    key = card.current_df.key_file.find(key_type, kid) if card.current_df.key_file else None
    if key is None:
        raise CardError(SW.KEY_INDEX_NOT_SUPPORTED)
    card.require(key.use)
    return key


def purse_aids(card, purse: PurseEF) -> tuple[Key, RecordEF]:
    """The TAC key (type 34, id = purse BYTE5) and the transaction log (cyclic, 23-byte records
    in the SFI of BYTE7). A purse without them cannot complete a transaction: ``6283``."""
    key_file = card.current_df.key_file
    tac_key = key_file.find(KeyType.TAC, purse.tac_key_id) if key_file else None
    log = card.current_df.find_sfi(purse.log_sfi)
    if (tac_key is None or type(log) is not RecordEF or not log.cyclic
            or log.record_length != TRANSACTION_RECORD_LENGTH):
        raise CardError(SW.SELECTED_FILE_INVALID)
    return tac_key, log


def take_session(card, kind: int) -> Session:
    """The session the previous command opened, if it is of ``kind``; else ``6901``."""
    session = card.prior_session
    if session is None or session.kind != kind:
        raise CardError(SW.COMMAND_NOT_ACCEPTED)
    return session


def mac_ok(card, purse: PurseEF) -> None:
    if purse.mac_failures:
        card.write(purse, "mac_failures", 0)


def mac_failed(card, purse: PurseEF):
    """Count a wrong MAC; the ``purse_mac_failure_limit``-th consecutive one blocks the
    application permanently and answers ``9303`` instead of ``9302``."""
    failures = min(purse.mac_failures + 1, 255)
    limit = card.config.purse_mac_failure_limit
    blocks = bool(limit) and failures >= limit
    # counted (and blocking) in the card's memory even if the image cannot be saved
    card.journal.if_not_saved(purse, "mac_failures", failures)
    if blocks:
        card.journal.if_not_saved(card.current_df, "block", BLOCK_PERMANENT)
    card.write(purse, "mac_failures", failures)
    if blocks:
        card.write(card.current_df, "block", BLOCK_PERMANENT)
        raise CardError(SW.APP_PERMANENTLY_BLOCKED)
    raise CardError(SW.MAC_INVALID)


def tac(session: Session, data: bytes) -> bytes:
    key = session.tac_key
    alg = key.algorithm
    return alg.mac(alg.tac_key(key.value), data)


def record(card, session: Session, counter: int, limit: int, amount: int, date_time: bytes) -> bytes:
    """The 23-byte transaction-detail record (reference §3.12)."""
    if card.config.record_counter == "post":
        counter += 1
    return (counter.to_bytes(2, "big") + limit.to_bytes(3, "big") + amount.to_bytes(4, "big")
            + bytes((session.tx_type,)) + session.terminal + date_time)


def commit(card, session: Session, *, balance: int, counter_attr: str, limit: int, amount: int,
           date_time: bytes, proof: bytes) -> None:
    """Write every effect of a completed transaction (one journal, one atomic commit)."""
    purse = session.purse
    counter = session.counter
    for (ef, index), data in session.cache.items():  # composite records cached by 80 DC
        records = ef.records
        if index is None:
            records = (data,) + records[: ef.record_count - 1]
        else:
            records = records[:index] + (data,) + records[index + 1:]
        card.write(ef, "records", records)
    if balance != purse.balance:
        card.write(purse, "balance", balance)
    card.write(purse, counter_attr, counter + 1)
    if limit != purse.overdraw_limit:
        card.write(purse, "overdraw_limit", limit)
    log = session.log
    card.write(log, "records", (record(card, session, counter, limit, amount, date_time),)
               + log.records[: log.record_count - 1])
    prefix = f"{session.tx_type:02X}:"
    proofs = purse.proofs
    for old in [k for k in proofs if k.startswith(prefix)]:
        card.journal.del_item(proofs, old)
    card.journal.set_item(proofs, f"{prefix}{counter:04X}", proof.hex().upper())
