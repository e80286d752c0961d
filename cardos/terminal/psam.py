"""A software PSAM (purchase secure access module, reference §3.5, §4.2).

It holds the issuer's purchase master key, diversifies the card's DPK with
the application serial, keeps the terminal transaction serial (TSN), makes
MAC1 for DEBIT FOR PURCHASE and checks the card's MAC2. With the TAC master
it also verifies TACs (a real PSAM cannot; the clearing centre does, see
:mod:`cardos.terminal.settle`).

Like a real PSAM it never hands out a TSN twice: with keys from a key-set
file the TSN is kept beside it (:mod:`cardos.terminal.tsn`), so each new
``PSAM`` continues where the last one stopped, in any process.
"""
from __future__ import annotations

from ..crypto import constant_time_equal
from .host import verify_tac
from .records import TransactionRecord
from .tsn import TsnStateError, TsnStore, default_state_path


class PSAMError(Exception):
    """The PSAM cannot serve the request (unknown key, no open session)."""


class PSAM:
    """``keys``: issuer key source; ``terminal_id``: 6 bytes (the PSAM/terminal number).

    The terminal transaction serial (TSN): ``state`` names the file that keeps it across
    PSAMs and processes. By default (``state=None``) that is the file beside the key set
    (``issuer.json`` → ``issuer.tsn.json``) when ``keys`` come from a key-set file of the
    user's and no ``tsn`` is given; otherwise, or with ``state=False``, the TSN lives in
    this object only and starts at ``tsn`` (0). With a state file the TSN is never below
    ``tsn`` either.
    """

    def __init__(self, keys, terminal_id: bytes, tsn: int | None = None, *, state=None):
        if len(terminal_id) != 6:
            raise ValueError("terminal id is 6 bytes")
        self.keys = keys
        self.terminal_id = bytes(terminal_id)
        if state is None and tsn is None:
            state = default_state_path(keys)
        self.store = TsnStore(state) if state else None
        self.tsn = tsn or 0  # the next TSN this PSAM hands out (with a state file: at least this)
        self._expected_mac2 = None

    def _next_tsn(self) -> int:
        if self.store is None:
            tsn = self.tsn & 0xFFFFFFFF
        else:
            try:
                tsn = self.store.take(self.terminal_id, self.tsn)
            except TsnStateError as exc:
                raise PSAMError(str(exc)) from None
        self.tsn = (tsn + 1) & 0xFFFFFFFF
        return tsn

    def init_purchase(self, serial: bytes, *, key_index: int, tx_type: int, counter: int, random: bytes,
                      amount: int, date_time: bytes) -> tuple[bytes, bytes]:
        """Return (TSN, MAC1) for DEBIT FOR PURCHASE; remembers the MAC2 the card must answer."""
        try:
            dpk = self.keys.card_key("purchase", key_index, serial)
        except Exception as exc:  # noqa: BLE001 - LookupError, KeySetError: no such key
            raise PSAMError(str(exc)) from None
        tsn = self._next_tsn().to_bytes(4, "big")
        alg = self.keys.algorithm
        sk = alg.session_key(dpk, random + counter.to_bytes(2, "big") + tsn[2:])
        amount_bytes = amount.to_bytes(4, "big")
        mac1 = alg.mac(sk, amount_bytes + bytes((tx_type,)) + self.terminal_id + date_time)
        self._expected_mac2 = alg.mac(sk, amount_bytes)
        return tsn, mac1

    @property
    def expected_mac2(self) -> bytes:
        if self._expected_mac2 is None:
            raise PSAMError("no purchase session")
        return self._expected_mac2

    def check_mac2(self, mac2: bytes) -> bool:
        return constant_time_equal(self.expected_mac2, mac2)

    def verify_tac(self, record: TransactionRecord) -> bool | None:
        return verify_tac(self.keys, record)
