"""APDU exchange for the conformance tests: expectations, failures that name the command, traces.

A :class:`Channel` wraps a target's ``transmit(bytes) -> bytes``. Every
expectation that fails raises :class:`ConformanceFailure`, which carries the
**command** whose answer was wrong (its label, e.g. ``"READ RECORD"``): the
summary table attributes the failure to that command, so a card that gets
one command wrong is reported against that command even when the test was
about another one (a purchase test whose load step failed).

>>> sw_matches(0x63C2, "63CX"), sw_matches(0x6A82, "6A8X"), sw_matches(0x9000, "6A82")
(True, True, False)
>>> command_label(bytes.fromhex("805000020B0100000064112233445566" "10"))
'INITIALIZE FOR LOAD'
>>> command_label(bytes.fromhex("80DC01D030")), command_label(bytes.fromhex("00DC0114 04 01020304"))
('UPDATE CAPP DATA CACHE', 'UPDATE RECORD')
"""
from __future__ import annotations

from dataclasses import dataclass

from ..decoder import describe_sw
from ..redact import apdu_hex

OK = 0x9000

# Labels of the commands (reference §1-§3); CLA class 00 (ISO) and 80 (proprietary).
ISO_COMMANDS = {
    0xA4: "SELECT", 0xB0: "READ BINARY", 0xD6: "UPDATE BINARY", 0xB2: "READ RECORD",
    0xDC: "UPDATE RECORD", 0xE2: "APPEND RECORD", 0xC0: "GET RESPONSE", 0x84: "GET CHALLENGE",
    0x82: "EXTERNAL AUTHENTICATE", 0x88: "INTERNAL AUTHENTICATE", 0x20: "VERIFY",
}
PROPRIETARY_COMMANDS = {
    0xE0: "CREATE FILE", 0x0E: "ERASE DF", 0xD4: "WRITE KEY", 0x24: "PIN UNBLOCK",
    0x1E: "APPLICATION BLOCK", 0x18: "APPLICATION UNBLOCK", 0x16: "CARD BLOCK",
    0x52: "CREDIT FOR LOAD", 0x58: "UPDATE OVERDRAW LIMIT", 0x5C: "GET BALANCE",
    0x5A: "GET TRANSACTION PROOF", 0xDC: "UPDATE CAPP DATA CACHE", 0xE2: "APPEND RECORD",
}
INITIALIZE = {0x00: "INITIALIZE FOR LOAD", 0x01: "INITIALIZE FOR PURCHASE", 0x02: "INITIALIZE FOR CASH WITHDRAW",
              0x03: "INITIALIZE FOR CAPP PURCHASE", 0x04: "INITIALIZE FOR UPDATE", 0x05: "INITIALIZE FOR UNLOAD"}
DEBIT_AFTER = {0x01: "DEBIT FOR PURCHASE", 0x02: "DEBIT FOR CASH WITHDRAW", 0x03: "DEBIT FOR CAPP PURCHASE"}


def command_label(apdu: bytes, last_init: int | None = None) -> str:
    """The command an APDU is (the summary's row). ``last_init``: P1 of the
    last INITIALIZE, which tells the three uses of ``80 54 01 00`` apart."""
    if len(apdu) < 4:
        return "malformed APDU"
    cla, ins, p1 = apdu[0], apdu[1], apdu[2]
    if cla & 0x80 == 0:
        return ISO_COMMANDS.get(ins, f"INS {ins:02X}")
    if ins == 0x50:
        return INITIALIZE.get(p1, "INITIALIZE (unknown P1)")
    if ins == 0x54:
        if p1 == 0x03:
            return "DEBIT FOR UNLOAD"
        return DEBIT_AFTER.get(last_init, "DEBIT FOR PURCHASE")
    if ins == 0x5E:
        return "CHANGE PIN" if p1 == 0x01 else "RELOAD PIN"
    return PROPRIETARY_COMMANDS.get(ins, f"INS {ins:02X}")


def sw_matches(sw: int, pattern) -> bool:
    """``pattern``: an int, or 4 hex digits where ``X``/``?`` match any nibble."""
    if isinstance(pattern, int):
        return sw == pattern
    text = f"{sw:04X}"
    pattern = pattern.upper()
    return len(pattern) == 4 and all(p in "X?" or p == t for p, t in zip(pattern, text))


def sw_text(sw: int) -> str:
    return f"{sw:04X} ({describe_sw(sw)})"


def _pattern_text(patterns) -> str:
    return "|".join(p if isinstance(p, str) else f"{p:04X}" for p in patterns)


class ConformanceFailure(AssertionError):
    """A card answer that does not conform; ``command`` is the command that answered it."""

    def __init__(self, command: str, message: str):
        super().__init__(f"{command}: {message}")
        self.command = command
        self.message = message


class CardMute(Exception):
    """The card gave no answer (power lost, removed, transport error)."""


@dataclass
class Response:
    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    def __repr__(self) -> str:
        return f"Response({self.data.hex().upper()} {self.sw:04X})"


def hexs(data: bytes) -> str:
    return data.hex().upper()


class Trace:
    """What one test sent and received; formatted only when a report needs it."""

    def __init__(self):
        self.entries: list = []   # (apdu | None, response | None, note)

    def add(self, apdu: bytes | None, response: bytes | None, note: str = "") -> None:
        self.entries.append((apdu, response, note))

    def text(self, limit: int = 400) -> str:
        lines = []
        entries = self.entries
        if len(entries) > limit:
            lines.append(f"... {len(entries) - limit} earlier exchanges left out")
            entries = entries[-limit:]
        for apdu, response, note in entries:
            if apdu is None:
                lines.append(f"-- {note}")
                continue
            lines.append(f">> {apdu_hex(apdu)}  {note or command_label(apdu)}")
            if response is None:
                lines.append("<< (no answer)")
            elif len(response) < 2:
                lines.append(f"<< {hexs(response)} (short answer)")
            else:
                sw = int.from_bytes(response[-2:], "big")
                body = f"{hexs(response[:-2])} " if len(response) > 2 else ""
                lines.append(f"<< {body}{sw_text(sw)}")
        return "\n".join(lines)


class Channel:
    """Send APDUs to a target and check its answers.

    ``send`` follows ``61XX`` with GET RESPONSE (as a T=0 terminal does);
    ``raw`` sends exactly one APDU. Hex strings may contain spaces.
    """

    def __init__(self, target, trace: Trace | None = None):
        self.target = target
        self.trace = trace if trace is not None else Trace()
        self.last_init: int | None = None

    # -- exchange ------------------------------------------------------------------------
    @staticmethod
    def _bytes(apdu) -> bytes:
        if isinstance(apdu, str):
            return bytes.fromhex(apdu.replace(" ", ""))
        return bytes(apdu)

    def label(self, apdu) -> str:
        return command_label(self._bytes(apdu), self.last_init)

    def raw(self, apdu) -> Response:
        apdu = self._bytes(apdu)
        if len(apdu) >= 4 and apdu[0] & 0x80 and apdu[1] == 0x50:
            self.last_init = apdu[2]
        try:
            response = bytes(self.target.transmit(apdu))
        except CardMute:
            self.trace.add(apdu, None)
            raise
        self.trace.add(apdu, response)
        if len(response) < 2:
            raise CardMute(f"{command_label(apdu)} {apdu_hex(apdu)}: the card answered "
                           f"{hexs(response) or 'nothing'}")
        return Response(response[:-2], int.from_bytes(response[-2:], "big"))

    def send(self, apdu) -> Response:
        """One command; a ``61XX`` answer is completed with GET RESPONSE."""
        apdu = self._bytes(apdu)
        r = self.raw(apdu)
        data = r.data
        rounds = 0
        while r.sw1 == 0x61 and rounds < 64:
            rounds += 1
            r = self.raw(bytes((0x00, 0xC0, 0x00, 0x00, r.sw & 0xFF)))
            data += r.data
            if r.sw1 != 0x61 and r.sw != OK:
                raise ConformanceFailure("GET RESPONSE", f"fetching the answer of {command_label(apdu)} "
                                                         f"{apdu_hex(apdu)} gave {sw_text(r.sw)}")
        return Response(data, r.sw)

    # -- expectations --------------------------------------------------------------------
    def expect(self, apdu, *sws, data: bytes | None = None, why: str = "") -> Response:
        """Send ``apdu`` and require one of ``sws`` (default ``9000``), and ``data`` if given."""
        apdu = self._bytes(apdu)
        patterns = sws or (OK,)
        r = self.send(apdu)
        label = command_label(apdu, self.last_init)
        if not any(sw_matches(r.sw, p) for p in patterns):
            raise ConformanceFailure(label, f"{why + ': ' if why else ''}{apdu_hex(apdu)} answered {sw_text(r.sw)}, "
                                            f"expected {_pattern_text(patterns)}")
        if data is not None and r.data != data:
            raise ConformanceFailure(label, f"{why + ': ' if why else ''}{apdu_hex(apdu)} returned {hexs(r.data) or '(no data)'}, "
                                            f"expected {hexs(data) or '(no data)'}")
        return r

    def ok(self, apdu, why: str = "", length: int | None = None) -> bytes:
        """Send, require ``9000`` (and ``length`` data bytes if given); returns the data."""
        r = self.expect(apdu, why=why)
        if length is not None and len(r.data) != length:
            raise ConformanceFailure(self.label(apdu), f"{why + ': ' if why else ''}{hexs(self._bytes(apdu))} returned "
                                                       f"{len(r.data)} bytes, expected {length}")
        return r.data

    def refused(self, apdu, why: str = "") -> Response:
        """Send and require a refusal: anything but ``9000`` / ``61XX`` (for points the
        reference leaves without a status word)."""
        apdu = self._bytes(apdu)
        r = self.send(apdu)
        if r.sw == OK:
            raise ConformanceFailure(command_label(apdu, self.last_init),
                                     f"{why + ': ' if why else ''}{apdu_hex(apdu)} was accepted (9000), expected a refusal")
        return r

    def check(self, condition: bool, command: str, message: str) -> None:
        """A computed check (a MAC, a TAC, a balance) about ``command``'s answer."""
        if not condition:
            raise ConformanceFailure(command, message)

    # -- helpers ---------------------------------------------------------------------------
    def challenge(self, n: int = 4) -> bytes:
        return self.ok(bytes((0x00, 0x84, 0x00, 0x00, n)), "GET CHALLENGE", length=n)

    def power_cycle(self) -> bytes:
        """Power off and on (cold reset); returns the ATR."""
        self.trace.add(None, None, "power cycle (cold reset)")
        self.last_init = None
        return self.target.power_cycle()

    def note(self, text: str) -> None:
        self.trace.add(None, None, text)
