"""Transaction records as terminals upload them, and what their TAC covers (reference §3.3-3.8).

A :class:`TransactionRecord` is what the transaction functions of
:mod:`cardos.terminal.purse` return and what :mod:`cardos.terminal.settle`
checks. Its dict form (hex strings, plain integers) is one JSON line or one
CSV row.
"""
from __future__ import annotations

from dataclasses import dataclass

ED_LOAD, EP_LOAD, UNLOAD, ED_WITHDRAW = 0x01, 0x02, 0x03, 0x04
ED_PURCHASE, EP_PURCHASE, OVERDRAW_UPDATE, CAPP_PURCHASE = 0x05, 0x06, 0x07, 0x09

TYPE_NAMES = {
    ED_LOAD: "ED load", EP_LOAD: "EP load", UNLOAD: "ED unload", ED_WITHDRAW: "ED cash withdraw",
    ED_PURCHASE: "ED purchase", EP_PURCHASE: "EP purchase", OVERDRAW_UPDATE: "ED overdraw-limit update",
    CAPP_PURCHASE: "EP composite (CAPP) purchase",
}
ONLINE_TYPES = frozenset({ED_LOAD, EP_LOAD, UNLOAD, OVERDRAW_UPDATE})
DEBIT_TYPES = frozenset({ED_WITHDRAW, ED_PURCHASE, EP_PURCHASE, CAPP_PURCHASE})

FIELDS = ("serial", "type", "counter", "amount", "balance", "overdraw_limit", "terminal", "tsn",
          "date", "time", "tac", "mac")

# (name, byte length) of the hex fields; integers with their byte width.
_HEX = {"serial": None, "terminal": 6, "tsn": 4, "date": 4, "time": 3, "tac": 4, "mac": 4}
_INT = {"counter": 2, "amount": 4, "balance": 4, "overdraw_limit": 3}


class RecordFormatError(ValueError):
    """A record that cannot be read: names the field."""


@dataclass(frozen=True)
class TransactionRecord:
    """One completed purse transaction.

    ``counter`` is the online/offline counter value INITIALIZE returned
    (the value inside the TAC). ``balance`` is the balance after the
    transaction, ``tsn`` the terminal transaction serial (debits only),
    ``overdraw_limit`` the new limit of an overdraw update (0 for other
    types; the amount of an update is 0). ``mac`` is MAC2
    (MAC3 for unload): kept for the terminal's own audit, not settled.
    """

    serial: bytes
    type: int
    counter: int
    amount: int
    balance: int
    terminal: bytes
    date: bytes
    time: bytes
    tac: bytes
    tsn: bytes = b""
    overdraw_limit: int = 0
    mac: bytes = b""

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, f"type {self.type:02X}")

    def __str__(self) -> str:
        d = self.to_dict()
        extra = f" tsn {d['tsn']}" if self.tsn else ""
        if self.type == OVERDRAW_UPDATE:
            extra += f" new limit {self.overdraw_limit / 100:.2f}"
        return (f"{self.type_name}: card {d['serial']} counter {self.counter} amount {self.amount / 100:.2f} "
                f"balance {self.balance / 100:.2f} terminal {d['terminal']}{extra} "
                f"{d['date']} {d['time']} TAC {d['tac']}")

    def tac_input(self) -> bytes:
        """The data the card's TAC covers for this transaction type."""
        tail = bytes((self.type,)) + self.terminal
        stamp = self.date + self.time
        if self.type in DEBIT_TYPES:  # no balance, no card counter (reference §3.5)
            return self.amount.to_bytes(4, "big") + tail + self.tsn + stamp
        value = self.overdraw_limit.to_bytes(3, "big") if self.type == OVERDRAW_UPDATE else self.amount.to_bytes(4, "big")
        return self.balance.to_bytes(4, "big") + self.counter.to_bytes(2, "big") + value + tail + stamp

    def to_dict(self) -> dict:
        return {"serial": self.serial.hex().upper(), "type": f"{self.type:02X}", "counter": self.counter,
                "amount": self.amount, "balance": self.balance, "overdraw_limit": self.overdraw_limit,
                "terminal": self.terminal.hex().upper(), "tsn": self.tsn.hex().upper(),
                "date": self.date.hex().upper(), "time": self.time.hex().upper(),
                "tac": self.tac.hex().upper(), "mac": self.mac.hex().upper()}

    @classmethod
    def from_dict(cls, d: dict) -> TransactionRecord:
        """Read the dict form back; integers may be given as JSON numbers or decimal strings."""
        if not isinstance(d, dict):
            raise RecordFormatError("expected an object")
        values = {}
        for name, length in _HEX.items():
            raw = d.get(name, "")
            if raw is None:
                raw = ""
            if not isinstance(raw, str):
                raise RecordFormatError(f"{name}: expected a hex string")
            try:
                value = bytes.fromhex(raw)
            except ValueError:
                raise RecordFormatError(f"{name}: not valid hex") from None
            required = name not in ("tsn", "mac")
            if (value or required) and length is not None and len(value) != length:
                raise RecordFormatError(f"{name}: expected {length} bytes, got {len(value)}")
            values[name] = value
        if not 1 <= len(values["serial"]) <= 10:
            raise RecordFormatError("serial: expected 1 to 10 bytes")
        raw_type = d.get("type")
        try:
            tx_type = int(raw_type, 16) if isinstance(raw_type, str) else raw_type
        except ValueError:
            raise RecordFormatError("type: not a hex byte") from None
        if tx_type not in TYPE_NAMES:
            raise RecordFormatError(f"type: unknown transaction type {raw_type!r}")
        for name, width in _INT.items():
            raw = d.get(name, 0)
            if raw in ("", None):
                raw = 0
            if isinstance(raw, bool):
                raise RecordFormatError(f"{name}: expected an integer")
            try:
                value = int(raw)
            except (TypeError, ValueError):
                raise RecordFormatError(f"{name}: expected an integer") from None
            if not 0 <= value < 1 << (8 * width):
                raise RecordFormatError(f"{name}: {value} does not fit in {width} bytes")
            values[name] = value
        if tx_type in DEBIT_TYPES and len(values["tsn"]) != 4:
            raise RecordFormatError("tsn: a debit record needs the 4-byte terminal transaction serial")
        return cls(type=tx_type, **values)
