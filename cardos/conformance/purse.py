"""The suite's purse terminal: every purse APDU built, and every MAC1 / MAC2 / MAC3 / TAC
checked, with the formulas of reference §3 and §4 written out here.

Keys come from the issuer key set (``card_key(role, index, serial)``,
``algorithm``): the card keys are the masters diversified with the
application serial, as a load host / PSAM / clearing centre computes them.
A wrong answer raises :class:`~cardos.conformance.channel.ConformanceFailure`
naming the command that gave it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .apdus import apdu
from .channel import OK, Channel

ED, EP = 0x01, 0x02
ED_LOAD, EP_LOAD, UNLOAD, WITHDRAW, ED_PURCHASE, EP_PURCHASE, OVERDRAW, CAPP = 1, 2, 3, 4, 5, 6, 7, 9
LOAD_TERMINAL = bytes.fromhex("000000000304")
POS_TERMINAL = bytes.fromhex("123456789012")
DATE_TIME = bytes.fromhex("20260501120000")
ONLINE_PAD = b"\x80\x00"


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


@dataclass
class Init:
    """What an INITIALIZE answered (fields per reference §3.2, §3.4, §3.7, §3.8)."""

    kind: int            # P1 of INITIALIZE
    purse: int
    amount: int
    key_index: int
    terminal: bytes
    balance: int
    counter: int
    version: int
    alg: int
    random: bytes
    limit: int | None = None
    mac1: bytes | None = None
    sk: bytes = b""

    @property
    def tx_type(self) -> int:
        if self.kind == 0x00:
            return ED_LOAD if self.purse == ED else EP_LOAD
        if self.kind == 0x01:
            return ED_PURCHASE if self.purse == ED else EP_PURCHASE
        return {0x02: WITHDRAW, 0x03: CAPP, 0x04: OVERDRAW, 0x05: UNLOAD}[self.kind]


INIT_NAMES = {0x00: "INITIALIZE FOR LOAD", 0x01: "INITIALIZE FOR PURCHASE", 0x02: "INITIALIZE FOR CASH WITHDRAW",
              0x03: "INITIALIZE FOR CAPP PURCHASE", 0x04: "INITIALIZE FOR UPDATE", 0x05: "INITIALIZE FOR UNLOAD"}
DEBIT_NAMES = {0x01: "DEBIT FOR PURCHASE", 0x02: "DEBIT FOR CASH WITHDRAW", 0x03: "DEBIT FOR CAPP PURCHASE"}
ROLE = {0x00: "load", 0x01: "purchase", 0x02: "purchase", 0x03: "purchase", 0x04: "overdraw", 0x05: "unload"}


class PurseTerminal:
    """Load host + PSAM + clearing check for one card (``serial``: its application serial)."""

    def __init__(self, ch: Channel, keys, serial: bytes, versions: dict | None = None, alg_id: int | None = None):
        self.ch = ch
        self.keys = keys
        self.alg = keys.algorithm
        self.serial = serial
        self.versions = versions or {}     # (role, key index) -> expected key version
        self.alg_id = alg_id               # expected algorithm id (None: not checked)
        self.tsn = 0

    # -- keys ------------------------------------------------------------------------------------
    def card_key(self, role: str, index: int | None) -> bytes:
        return self.keys.card_key(role, index, self.serial)

    def mac(self, key: bytes, data: bytes) -> bytes:
        return self.alg.mac(key, data)

    def tac(self, data: bytes) -> bytes:
        return self.alg.mac(self.alg.tac_key(self.card_key("tac", None)), data)

    # -- simple commands -----------------------------------------------------------------------
    def balance(self, purse: int = EP) -> int:
        data = self.ch.ok(apdu(0x80, 0x5C, 0x00, purse, le=4), "GET BALANCE", length=4)
        return int.from_bytes(data, "big")

    def verify_pin(self, pin: str) -> None:
        from .apdus import pin_bcd

        self.ch.ok(apdu(0x00, 0x20, 0x00, 0x00, pin_bcd(pin)), "VERIFY")

    def proof(self, tx_type: int, counter: int, *sws) -> tuple | None:
        """GET TRANSACTION PROOF → (MAC, TAC); ``None`` for ``9406``."""
        r = self.ch.expect(apdu(0x80, 0x5A, 0x00, tx_type, counter.to_bytes(2, "big"), 8), *(sws or (OK, 0x9406)))
        if r.sw != OK:
            return None
        self.ch.check(len(r.data) == 8, "GET TRANSACTION PROOF", f"answered {len(r.data)} bytes, expected MAC ‖ TAC (8)")
        return r.data[:4], r.data[4:]

    # -- INITIALIZE ----------------------------------------------------------------------------
    def init_apdu(self, kind: int, purse: int, amount: int, key_index: int, terminal: bytes) -> bytes:
        if kind == 0x04:
            return apdu(0x80, 0x50, 0x04, purse, bytes((key_index,)) + terminal, 0x13)
        le = 0x10 if kind in (0x00, 0x05) else 0x0F
        return apdu(0x80, 0x50, kind, purse, bytes((key_index,)) + u32(amount) + terminal, le)

    def initialize(self, kind: int, purse: int, amount: int = 0, key_index: int = 1,
                   terminal: bytes | None = None, t0: bool = False) -> Init:
        """Send INITIALIZE (``kind`` = P1), parse and check the answer (MAC1 of online types).

        ``t0``: send it without Le, as a T=0 terminal does, and fetch a ``61XX`` answer with
        GET RESPONSE (sent raw, so nothing else happens in between)."""
        name = INIT_NAMES[kind]
        terminal = terminal or (POS_TERMINAL if kind in (0x01, 0x02, 0x03) else LOAD_TERMINAL)
        length = {0x00: 16, 0x05: 16, 0x04: 19}.get(kind, 15)
        command = self.init_apdu(kind, purse, amount, key_index, terminal)
        if t0:
            first = self.ch.raw(command[:-1])
            if first.sw == OK:
                r = first.data
            else:
                self.ch.check(first.sw == 0x6100 | length and not first.data, name,
                              f"without Le answered {first.sw:04X}, expected 61{length:02X} or the data")
                fetched = self.ch.raw(bytes((0x00, 0xC0, 0x00, 0x00, length)))
                self.ch.check(fetched.sw == OK, "GET RESPONSE", f"answered {fetched.sw:04X}")
                r = fetched.data
            self.ch.check(len(r) == length, name, f"answered {len(r)} bytes, expected {length}")
        else:
            r = self.ch.ok(command, name, length=length)
        balance, counter = int.from_bytes(r[:4], "big"), int.from_bytes(r[4:6], "big")
        if kind in (0x00, 0x05):
            init = Init(kind, purse, amount, key_index, terminal, balance, counter, r[6], r[7], r[8:12], mac1=r[12:16])
        elif kind == 0x04:
            init = Init(kind, purse, amount, key_index, terminal, balance, counter, r[9], r[10], r[11:15],
                        limit=int.from_bytes(r[6:9], "big"), mac1=r[15:19])
        else:
            init = Init(kind, purse, amount, key_index, terminal, balance, counter, r[9], r[10], r[11:15],
                        limit=int.from_bytes(r[6:9], "big"))
        role = ROLE[kind]
        expected_version = self.versions.get((role, key_index))
        if expected_version is not None:
            self.ch.check(init.version == expected_version, name,
                          f"key version {init.version:02X}, the key {role}/{key_index} was written with "
                          f"version {expected_version:02X} (reference §3.1: echoed)")
        if self.alg_id is not None:
            self.ch.check(init.alg == self.alg_id, name,
                          f"algorithm id {init.alg:02X}, the key was written with {self.alg_id:02X}")
        if init.mac1 is not None:  # online: SK = E(key, random ‖ online counter ‖ 8000)
            init.sk = self.alg.session_key(self.card_key(role, key_index),
                                           init.random + counter.to_bytes(2, "big") + ONLINE_PAD)
            if kind == 0x04:
                mac_input = u32(balance) + init.limit.to_bytes(3, "big") + bytes((OVERDRAW,)) + terminal
            else:
                mac_input = u32(balance) + u32(amount) + bytes((init.tx_type,)) + terminal
            self.ch.check(self.mac(init.sk, mac_input) == init.mac1, name,
                          f"MAC1 {init.mac1.hex().upper()} does not verify (reference §3.2: MAC(SK, balance ‖ "
                          f"amount ‖ type ‖ terminal))")
        return init

    # -- load (§3.2, §3.3) --------------------------------------------------------------------
    def credit_apdu(self, init: Init, date_time: bytes = DATE_TIME, mac2: bytes | None = None) -> bytes:
        if mac2 is None:
            mac2 = self.mac(init.sk, u32(init.amount) + bytes((init.tx_type,)) + init.terminal + date_time)
        return apdu(0x80, 0x52, 0x00, 0x00, date_time + mac2, 4)

    def load_tac(self, init: Init, date_time: bytes = DATE_TIME) -> bytes:
        return self.tac(u32(init.balance + init.amount) + init.counter.to_bytes(2, "big") + u32(init.amount)
                        + bytes((init.tx_type,)) + init.terminal + date_time)

    def credit(self, init: Init, date_time: bytes = DATE_TIME) -> bytes:
        tac = self.ch.ok(self.credit_apdu(init, date_time), "CREDIT FOR LOAD", length=4)
        self.ch.check(tac == self.load_tac(init, date_time), "CREDIT FOR LOAD",
                      f"TAC {tac.hex().upper()} does not verify (reference §3.3: MAC(DTK, new balance ‖ counter ‖ "
                      f"amount ‖ type ‖ terminal ‖ date ‖ time))")
        return tac

    def load(self, amount: int, purse: int = EP, key_index: int = 1) -> tuple:
        """A whole load; returns (Init, TAC) after checking the new balance."""
        init = self.initialize(0x00, purse, amount, key_index)
        tac = self.credit(init)
        after = self.balance(purse)
        self.ch.check(after == init.balance + amount, "CREDIT FOR LOAD",
                      f"balance {after} after loading {amount} onto {init.balance}")
        return init, tac

    # -- debits (§3.4, §3.5, §3.6, §3.9) --------------------------------------------------------
    def debit_parts(self, init: Init, date_time: bytes = DATE_TIME) -> tuple:
        """(TSN, SK, MAC1, expected MAC2, expected TAC) the PSAM computes."""
        tsn = u32(self.tsn)
        self.tsn += 1
        sk = self.alg.session_key(self.card_key("purchase", init.key_index),
                                  init.random + init.counter.to_bytes(2, "big") + tsn[2:])
        head = u32(init.amount) + bytes((init.tx_type,)) + init.terminal
        mac1 = self.mac(sk, head + date_time)
        return tsn, sk, mac1, self.mac(sk, u32(init.amount)), self.tac(head + tsn + date_time)

    def debit(self, init: Init, date_time: bytes = DATE_TIME) -> tuple:
        """DEBIT FOR PURCHASE / CASH WITHDRAW / CAPP PURCHASE → (TAC, MAC2), both checked."""
        name = DEBIT_NAMES[init.kind]
        tsn, _sk, mac1, mac2_expected, tac_expected = self.debit_parts(init, date_time)
        r = self.ch.ok(apdu(0x80, 0x54, 0x01, 0x00, tsn + date_time + mac1, 8), name, length=8)
        tac, mac2 = r[:4], r[4:]
        self.ch.check(mac2 == mac2_expected, name, f"MAC2 {mac2.hex().upper()} does not verify "
                                                   "(reference §3.5: MAC(SK, amount))")
        self.ch.check(tac == tac_expected, name, f"TAC {tac.hex().upper()} does not verify (reference §3.5: "
                                                 "MAC(DTK, amount ‖ type ‖ terminal ‖ TSN ‖ date ‖ time))")
        return tac, mac2

    def purchase(self, amount: int, purse: int = EP, kind: int = 0x01, key_index: int = 1) -> tuple:
        """A whole purchase (``kind`` 01 purchase, 02 cash withdraw); returns (Init, TAC, MAC2)."""
        init = self.initialize(kind, purse, amount, key_index)
        tac, mac2 = self.debit(init)
        after = self.balance(purse)
        self.ch.check(after == init.balance - amount, DEBIT_NAMES[kind],
                      f"balance {after} after spending {amount} of {init.balance}")
        return init, tac, mac2

    # -- unload (§3.7) ------------------------------------------------------------------------
    def debit_unload(self, init: Init, date_time: bytes = DATE_TIME) -> bytes:
        head = u32(init.amount) + bytes((UNLOAD,)) + init.terminal
        mac2 = self.mac(init.sk, head + date_time)
        mac3 = self.ch.ok(apdu(0x80, 0x54, 0x03, 0x00, date_time + mac2, 4), "DEBIT FOR UNLOAD", length=4)
        expected = self.mac(init.sk, u32(init.balance - init.amount) + init.counter.to_bytes(2, "big") + head
                            + date_time)
        self.ch.check(mac3 == expected, "DEBIT FOR UNLOAD", f"MAC3 {mac3.hex().upper()} does not verify "
                      "(reference §3.7: MAC(SK, new balance ‖ counter ‖ amount ‖ 03 ‖ terminal ‖ date ‖ time))")
        return mac3

    # -- overdraw limit (§3.8) ------------------------------------------------------------------
    def update_limit(self, init: Init, new_limit: int, date_time: bytes = DATE_TIME) -> tuple:
        """UPDATE OVERDRAW LIMIT → (TAC, new balance); the TAC must verify for the balance the
        card then reports."""
        tail = bytes((OVERDRAW,)) + init.terminal + date_time
        mac2 = self.mac(init.sk, new_limit.to_bytes(3, "big") + tail)
        tac = self.ch.ok(apdu(0x80, 0x58, 0x00, 0x00, new_limit.to_bytes(3, "big") + date_time + mac2, 4),
                         "UPDATE OVERDRAW LIMIT", length=4)
        after = self.balance(ED)
        expected = self.tac(u32(after) + init.counter.to_bytes(2, "big") + new_limit.to_bytes(3, "big") + tail)
        self.ch.check(tac == expected, "UPDATE OVERDRAW LIMIT", f"TAC {tac.hex().upper()} does not verify for the "
                      f"new balance {after} (reference §3.8)")
        return tac, after
