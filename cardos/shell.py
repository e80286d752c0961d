"""``cardos shell``: an interactive card shell in the spirit of opensc-explorer.

File commands (``cd``, ``ls``, ``cat``, ``info``), authentication (``verify``),
raw APDUs (``apdu``, ``challenge``), the session (``reset``, ``connect``: a
removed card does not end the shell) and purse transactions
(``balance``, ``load``, ``purchase``, ``history``) whose MACs are made by the
terminal side of cardos (:mod:`cardos.terminal`: load host, PSAM) with keys
from a key-set file. Every APDU is shown decoded (:mod:`cardos.decoder`).

The card: a card image (``--card``, changes saved to it), a PC/SC reader
(``-r``; ``--via scriptor`` sends every APDU through pcsc-tools' scriptor), or
a fresh blank card in memory. Commands come from the keyboard (readline
history in ``~/.cardos_history``, tab completion) or, when stdin is not a
terminal, from stdin one per line (``#`` comments) — then each command is
echoed after the prompt, and the exit status is 1 if any command failed
(3 if the shell ended without a card). Amounts are fen (分; 100 fen = 1
yuan) unless written with a decimal point. See docs/cli.md.
"""
from __future__ import annotations

import cmd
import os
import sys
import time

from .decoder import decode_command, describe_sw, hex_spaced
from .i18n import Messages, display_width
from .privatefile import write_private
from .redact import apdu_spaced, redact_text, secret_span
from .scripting.lexer import Pos
from .scripting.report import HumanReporter
from .scripting.runner import Exchange
from .transports.pcsc import TransportError
from .tries import purse_mac_refused, wrong_key
from .ui import add_color_option, add_reader_option, use_color

CITY_AID = bytes.fromhex("A00000000386980701")
DEFAULT_TERMINAL = bytes.fromhex("010203040506")
HISTORY_FILE = "~/.cardos_history"
# DF FIDs `ls` tries besides the applications listed in the DIR file
DF_CANDIDATES = (0x1001, 0x1002, 0x1003, 0x1004, 0x3F01, 0x3F02, 0xDF01, 0xDF02, 0xDF03, 0xADF1, 0xADF2)
PURSES = {"ep": 0x02, "ed": 0x01}
TX_WORDS = {0x01: "ED load", 0x02: "EP load", 0x03: "ED unload", 0x04: "ED cash withdraw", 0x05: "ED purchase",
            0x06: "EP purchase", 0x07: "overdraw update", 0x09: "CAPP purchase"}


class Failed(Exception):
    """A shell command did not do what was asked (already explained to the user)."""


class UsageError(Failed):
    pass


MAX_FEN = 0xFFFFFFFF  # amounts travel as 4 bytes


def parse_amount(text: str) -> int:
    """Fen (分, 1/100 yuan) from ``250`` (fen) or ``2.50`` (yuan), as ``amount()`` in scripts.

    >>> parse_amount("250"), parse_amount("2.50"), parse_amount("2.5"), parse_amount("100.")
    (250, 250, 250, 10000)
    """
    text = text.strip()
    if text.startswith("-"):
        raise UsageError(f"amount {text!r}: amount must be a positive number of fen (分), such as 250, "
                         "or of yuan with a decimal point (2.50)")
    try:
        if "." in text:
            whole, _, frac = text.partition(".")
            if len(frac) > 2 or not (whole or frac).isdigit() or (frac and not frac.isdigit()):
                raise ValueError
            fen = int(whole or "0") * 100 + int((frac + "00")[:2])
        else:
            fen = int(text, 10)
    except ValueError:
        raise UsageError(f"amount {text!r}: write fen (250) or yuan with a decimal point (2.50)") from None
    if fen > MAX_FEN:
        raise UsageError(f"amount {text!r}: at most {MAX_FEN} fen (分) = {_money(MAX_FEN)} yuan (4 bytes)")
    return fen


def pin_bytes(text: str) -> bytes:
    """A PIN as FMCOS stores it: packed BCD, padded with F.

    >>> pin_bytes("12345").hex().upper()
    '12345F'
    """
    if not (text.isdigit() and 2 <= len(text) <= 12):
        raise UsageError(f"a PIN is 2 to 12 decimal digits (got {len(text)} characters; not echoed)")
    return bytes.fromhex(text + "F" * (len(text) % 2))


def parse_hex(text: str) -> bytes:
    """Tolerant hex: spaces, colons, ``0x`` prefixes (``00 A4:04 0x00``)."""
    cleaned = text.replace(":", " ").replace(",", " ")
    tokens = [t[2:] if t.lower().startswith("0x") else t for t in cleaned.split()]
    joined = "".join(tokens)
    bad = next((c for c in joined if c not in "0123456789abcdefABCDEF"), None)
    if bad is not None:
        raise UsageError(f"not hex: {bad!r} in {text.strip()!r}")
    if len(joined) % 2:
        raise UsageError(f"odd number of hex digits ({len(joined)}) in {text.strip()!r}: "
                         "every byte is two digits (0A, not A)")
    return bytes.fromhex(joined)


def tlv_items(data: bytes) -> list:
    """A flat BER-TLV walk: [(tag, value, depth)], constructed tags opened. Stops quietly at bad data."""
    out = []

    def walk(buf: bytes, depth: int) -> None:
        i = 0
        while i < len(buf):
            tag = buf[i]
            i += 1
            if tag & 0x1F == 0x1F and i < len(buf):
                tag = (tag << 8) | buf[i]
                i += 1
            if i >= len(buf):
                return
            length = buf[i]
            i += 1
            if length == 0x81 and i < len(buf):
                length = buf[i]
                i += 1
            value = buf[i:i + length]
            i += length
            out.append((tag, value, depth))
            first = tag >> 8 if tag > 0xFF else tag
            if first & 0x20:
                walk(value, depth + 1)
    walk(data, 0)
    return out


def _money(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _text_or_hex(b: bytes) -> str:
    if b and all(0x20 <= c < 0x7F for c in b):
        return f'"{b.decode("ascii")}"'
    return b.hex().upper()


def hexdump(data: bytes, width: int = 16) -> list:
    """``0000  6F 15 84 ...  o...`` lines (offset, hex, ASCII gutter)."""
    lines = []
    for off in range(0, len(data), width):
        chunk = data[off:off + width]
        text = "".join(chr(c) if 0x20 <= c < 0x7F else "." for c in chunk)
        lines.append(f"{off:04X}  {hex_spaced(chunk).ljust(width * 3 - 1)}  {text}")
    return lines


class _Trace(HumanReporter):
    """The decoded trace of ``cardos run``, one header per APDU (the command's name)."""

    def _head(self, pos, title: str) -> None:
        key = (pos.file, pos.line, pos.col)
        if key != self._header:
            self._header = key
            self._print(self.s("36", title))


def _card_gone(exc: TransportError) -> bool:
    """Whether a transport error says the card is out of the reader (PC/SC: removed, no smart card)."""
    text = str(exc).lower()
    return any(word in text for word in ("removed", "no smart card", "no card", "card inserted", "answered nothing"))


class CardShell(cmd.Cmd):
    intro = None
    doc_header = "commands (help COMMAND for details)"
    ruler = ""

    def __init__(self, transport, keys=None, out=None, color: bool = False, lang: str = "en",
                 terminal: bytes = DEFAULT_TERMINAL, aid: bytes = CITY_AID, interactive: bool = True,
                 stdin=None, trace: str = "full", tsn_file: str | None = None):
        super().__init__(stdin=stdin, stdout=out or sys.stdout)
        self.transport = transport
        self.keys = keys
        self.out = out or sys.stdout
        self.lang = lang
        self.msgs = Messages(lang)
        self.terminal = terminal
        self.aid = aid
        self.interactive = interactive
        self.use_rawinput = interactive
        self.trace_mode = trace
        self.reporter = _Trace(self.out, self.out, color=color, lang=lang, summary=False)
        self.s = self.reporter.s
        self.path: list = []  # DFs from the MF: (fid or None, name)
        self.current_ef: int | None = None
        self.last_fci = b""
        self.seen: dict = {}  # path text -> {fid: "DF"/"EF"}
        self.failures = 0
        self.commands = 0
        self.apdus = 0
        self.psam = None
        self.mac_failures = 0  # purse MACs the card refused in a row (it blocks the purse at a few)
        self.tsn_file = tsn_file  # where the PSAM keeps its TSN (None: beside the key-set file, if any)
        self.fatal: TransportError | None = None
        self._n = 0

    # -- output ------------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def fail(self, text: str) -> Failed:
        return Failed(text)

    @property
    def where(self) -> str:
        if not self.path:
            return "?"
        parts = []
        for fid, name in self.path:
            parts.append(f"{fid:04X}" if fid is not None else f"aid:{name.hex().upper()}")
        return "/".join(parts)

    def _update_prompt(self) -> None:
        self.prompt = f"cardos {self.where}> " if self.interactive else ""

    # -- the channel ---------------------------------------------------------------------------------

    def transmit(self, apdu: bytes, note: str = "", original: bytes = b"", compact: bool = False) -> bytes:
        """One APDU to the card, shown decoded."""
        apdu = bytes(apdu)
        started = time.perf_counter()
        response = bytes(self.transport.transmit(apdu))
        seconds = time.perf_counter() - started
        self.apdus += 1
        if len(response) < 2:
            raise TransportError("the card answered nothing (card removed or power lost)")
        mode = self.trace_mode
        if mode == "off":
            return response
        if compact or mode == "short":
            sw = int.from_bytes(response[-2:], "big")
            dc = decode_command(apdu)
            data = f"{hex_spaced(response[:-2])} " if response[:-2] and len(response) <= 18 else (
                f"({len(response) - 2} bytes) " if response[:-2] else "")
            self.say(f"  {self.s('2', '·')} {apdu_spaced(apdu)}  {self.s('2', dc.title(self.lang))}  → {data}"
                     f"{self.s.sw(sw, f'{sw >> 8:02X} {sw & 0xFF:02X}')} {describe_sw(sw, self.lang)}")
        else:
            self._n += 1
            self.reporter.exchange(Exchange(Pos("shell", self.commands, self._n), apdu, response, seconds,
                                            note=note, original=original))
        lines = getattr(self.transport, "lines", None)
        if lines:
            for line in lines:
                self.say(self.s("2", f"    scriptor| {redact_text(line)}"))
        return response

    def xfer(self, apdu: bytes, compact: bool = False) -> tuple:
        """Send; follow 61XX with GET RESPONSE and 6CXX with the right Le (each shown). Returns (data, sw)."""
        response = self.transmit(apdu, compact=compact)
        data, sw = response[:-2], int.from_bytes(response[-2:], "big")
        if sw >> 8 == 0x6C and len(apdu) >= 5:
            resend = apdu[:-1] + bytes((sw & 0xFF,))  # the same command with Le = XX
            response = self.transmit(resend, note=f"resent with Le {sw & 0xFF:02X}", compact=compact)
            data, sw = response[:-2], int.from_bytes(response[-2:], "big")
        while sw >> 8 == 0x61:
            response = self.transmit(bytes((0x00, 0xC0, 0x00, 0x00, sw & 0xFF)), note="automatic GET RESPONSE",
                                     original=apdu, compact=compact)
            data += response[:-2]
            sw = int.from_bytes(response[-2:], "big")
        return data, sw

    def ok(self, apdu: bytes, what: str, allowed=(0x9000,)) -> bytes:
        data, sw = self.xfer(apdu)
        if sw not in allowed:
            raise self.fail(f"{what}: {sw:04X} {describe_sw(sw, self.lang)}")
        return data

    # -- selection -----------------------------------------------------------------------------------

    def _select(self, p1: int, value: bytes, compact: bool = False) -> tuple:
        return self.xfer(bytes((0x00, 0xA4, p1, 0x00, len(value))) + value + b"\x00", compact=compact)

    def _df_name(self, fci: bytes) -> bytes:
        for tag, value, _depth in tlv_items(fci):
            if tag == 0x84:
                return value
        return b""

    def select_mf(self) -> None:
        fci = self.ok(bytes.fromhex("00A40000023F0000"), "SELECT MF")
        self.path = [(0x3F00, self._df_name(fci))]
        self.current_ef = None
        self.last_fci = fci

    def _reselect(self, path: list) -> None:
        """Select the DFs of ``path`` again from the MF."""
        self.select_mf()
        for fid, name in path[1:]:
            if fid is not None:
                fci = self.ok(bytes((0x00, 0xA4, 0x00, 0x00, 0x02)) + fid.to_bytes(2, "big") + b"\x00",
                              f"SELECT {fid:04X}")
            else:
                fci = self.ok(bytes((0x00, 0xA4, 0x04, 0x00, len(name))) + name + b"\x00",
                              f"SELECT {name.hex().upper()}")
            self.path.append((fid, name))
            self.last_fci = fci

    def ensure_application(self) -> None:
        """Purse commands act on the current DF; from the MF, enter the purse application first."""
        if len(self.path) <= 1:
            self.say(self.s("2", self.msgs("shell.entering", aid=self.aid.hex().upper())))
            self.do_cd(f"aid:{self.aid.hex().upper()}")

    # -- framework ----------------------------------------------------------------------------------

    def preloop(self) -> None:
        self._update_prompt()

    def precmd(self, line: str) -> str:
        stripped = line.strip()
        if stripped.startswith(("#", "//")):
            if not self.interactive and stripped:
                self.say(self.s("35", stripped))
            return ""
        if not self.interactive and stripped and stripped != "EOF":
            self.say(self.s("1", f"cardos {self.where}> {masked_command(stripped)}"))
        return line

    def onecmd(self, line: str) -> bool:
        if not line.strip():
            return False
        self.commands += 1
        try:
            return bool(super().onecmd(line))
        except UsageError as exc:
            self.failures += 1
            self.say(self.s("1;31", self.msgs("shell.usage", text=exc)))
        except Failed as exc:
            self.failures += 1
            self.say(self.s("1;31", self.msgs("shell.failure", text=exc)))
        except TransportError as exc:
            self.failures += 1
            self.fatal = exc
            self.say(self.s("1;31", self.msgs("shell.error", text=exc)))
            if _card_gone(exc):  # say how to get it back
                self.say(self.s("33", "card removed: insert it and type `connect`"))
            else:
                self.say(self.s("33", "the card or reader stopped answering: type `reset` or `connect` to start "
                                      "a new session"))
        return False

    def postcmd(self, stop: bool, line: str) -> bool:
        self._update_prompt()
        return stop

    def emptyline(self) -> bool:
        return False

    def default(self, line: str) -> None:
        word = line.split()[0] if line.split() else line
        raise UsageError(self.msgs("shell.unknown", word=word))

    def get_names(self) -> list:
        """The ``do_*`` names ``help`` and completion offer: ``EOF`` (Ctrl-D, end of input) is no command."""
        return [name for name in super().get_names() if name != "do_EOF"]

    def do_EOF(self, arg) -> bool:
        if self.interactive:
            self.say()
        return True

    def do_quit(self, arg) -> bool:
        """quit — leave the shell (also: exit, Ctrl-D)"""
        return True

    do_exit = do_quit

    # -- file commands --------------------------------------------------------------------------------

    def do_cd(self, arg: str) -> None:
        """cd FID | .. | / | aid:HEX | NAME — select a DF (or an EF: it becomes the current file)

        cd 1001                  a child DF (or EF) by file identifier
        cd aid:A00000000386980701  a DF by its name (AID), also a prefix
        cd 1PAY.SYS.DDF01        a DF by its name in ASCII
        cd ..                    the parent DF;  cd /  (or cd 3F00) the MF"""
        target = arg.strip()
        if target in ("", "/", "3F00", "3f00"):
            self.select_mf()
            return
        if target == "..":
            if len(self.path) <= 1:
                raise self.fail(self.msgs("shell.already_mf"))
            self._reselect(self.path[:-1])
            return
        if target.lower().startswith("aid:"):
            name = parse_hex(target[4:])
            data, sw = self._select(0x04, name)
            if sw not in (0x9000, 0x6283):
                raise self.fail(f"SELECT aid:{name.hex().upper()}: {sw:04X} {describe_sw(sw, self.lang)}")
            self._entered(None, data, name, sw)
            return
        if len(target) == 4 and all(c in "0123456789abcdefABCDEF" for c in target):
            fid = int(target, 16)
            data, sw = self._select(0x00, fid.to_bytes(2, "big"))
            if sw not in (0x9000, 0x6283):
                raise self.fail(f"SELECT {fid:04X}: {sw:04X} {describe_sw(sw, self.lang)}")
            if data[:1] == b"\x6f":
                self._entered(fid, data, None, sw)
            else:
                self.current_ef = fid
                self.seen.setdefault(self.where, {})[fid] = "EF"
                self.say(self.msgs("shell.ef_current", fid=f"{fid:04X}", where=self.where))
            return
        name = target.encode("utf-8")
        data, sw = self._select(0x04, name)
        if sw not in (0x9000, 0x6283):
            raise self.fail(f"SELECT {target!r}: {sw:04X} {describe_sw(sw, self.lang)}")
        self._entered(None, data, name, sw)

    def _entered(self, fid, fci: bytes, name, sw: int) -> None:
        df_name = self._df_name(fci) or name or b""
        if df_name == (self.path[0][1] if self.path else None) or fid == 0x3F00:
            self.path = [(0x3F00, df_name)]
        elif self.path and any(n == df_name and n for _f, n in self.path):
            keep = next(i for i, (_f, n) in enumerate(self.path) if n == df_name)
            self.path = self.path[:keep + 1]
        else:
            if fid is None:
                fid = self._fid_of(df_name)
            self.path.append((fid, df_name))
        self.current_ef = None
        self.last_fci = fci
        if sw == 0x6283:
            self.say(self.s("33", self.msgs("shell.app_blocked")))

    def _fid_of(self, name: bytes):
        for fid, kind in self.seen.get(self.where, {}).items():
            if kind == ("DF", name):
                return fid
        return None

    def complete_cd(self, text, line, begidx, endidx):
        options = ["..", "/", "aid:"]
        for fid, kind in self.seen.get(self.where, {}).items():
            if kind != "EF":
                options.append(f"{fid:04X}")
                if isinstance(kind, tuple) and kind[1]:
                    options.append(f"aid:{kind[1].hex().upper()}")
        return [o for o in options if o.lower().startswith(text.lower())]

    def do_ls(self, arg: str) -> None:
        """ls — list the files of the current DF

        The card has no directory command: ls tries SELECT on the short-file-identifier
        range 0001-001F (EFs), reads the DIR file of the MF for applications and tries the
        usual DF identifiers; every probe is shown on one line."""
        here = list(self.path)
        found: dict = {}
        for fid in range(0x0001, 0x0020):
            _data, sw = self._select(0x02, fid.to_bytes(2, "big"), compact=True)
            if sw in (0x9000, 0x6283):
                found[fid] = ("EF", self._ef_kind(fid))
        for fid in DF_CANDIDATES:
            data, sw = self._select(0x00, fid.to_bytes(2, "big"), compact=True)
            if sw in (0x9000, 0x6283) and data[:1] == b"\x6f":
                found[fid] = ("DF", self._df_name(data))
                self._quiet_reselect(here)
        self.current_ef = None
        apps = self._dir_applications()
        seen = self.seen.setdefault(self.where, {})
        if not found and not apps:
            self.say(self.msgs("shell.no_files"))
            return
        w = self.msgs.word
        self.say(self.s("1", f"{'FID':6s}{self.msgs.pad(self.msgs('shell.file_type'), 18)}{w('name / content')}"))
        for fid in sorted(found):
            kind, detail = found[fid]
            if kind == "DF":
                seen[fid] = ("DF", detail)
                self.say(f"{fid:04X}  {'DF':16s}  {_text_or_hex(detail)}")
            else:
                seen[fid] = "EF"
                self.say(f"{fid:04X}  {self.msgs.pad('EF ' + w(detail), 16)}  SFI {fid:02X}")
        if apps:
            self.say(self.s("1", self.msgs("shell.dir_apps")))
            for aid, label in apps:
                self.say(f"  aid:{aid.hex().upper()}" + (f"  {_text_or_hex(label)}" if label else ""))

    def _dir_applications(self) -> list:
        """(AID, label) of the application templates (61: 4F AID, 50 label) in the DIR file the FCI names (88)."""
        sfi = next((v[0] for t, v, _d in tlv_items(self.last_fci) if t == 0x88 and len(v) == 1), None)
        if not sfi or not 1 <= sfi <= 0x1F:
            return []
        apps = []
        for n in range(1, 32):
            data, sw = self.xfer(bytes((0x00, 0xB2, n, (sfi << 3) | 0x04, 0x00)), compact=True)
            if sw != 0x9000:
                break
            items = tlv_items(data)
            aid = next((v for t, v, _d in items if t == 0x4F), b"")
            label = next((v for t, v, _d in items if t == 0x50), b"")
            if aid:
                apps.append((aid, label))
        return apps

    def _quiet_reselect(self, path: list) -> None:
        """Back to ``path`` after a DF probe (compact trace)."""
        self._select(0x00, (0x3F00).to_bytes(2, "big"), compact=True)
        for fid, name in path[1:]:
            if fid is not None:
                self._select(0x00, fid.to_bytes(2, "big"), compact=True)
            else:
                self._select(0x04, name, compact=True)
        self.path = path

    def _ef_kind(self, fid: int) -> str:
        """binary / records / purse-or-key, from what READ BINARY and READ RECORD (by SFI) answer."""
        _data, sw = self.xfer(bytes((0x00, 0xB0, 0x80 | fid, 0x00, 0x01)), compact=True)
        if sw in (0x9000, 0x6281) or sw >> 8 == 0x6C:
            return "binary"
        if sw in (0x6982, 0x6987, 0x6988):
            return "(protected)"
        _data, sw = self.xfer(bytes((0x00, 0xB2, 0x01, (fid << 3) | 4, 0x00)), compact=True)
        if sw in (0x9000, 0x6A83) or sw >> 8 == 0x6C:
            return "records"
        if sw in (0x6982, 0x6987, 0x6988):
            return "records (protected)"
        return "purse" if fid in (0x0001, 0x0002) else "other"

    def complete_cat(self, text, line, begidx, endidx):
        options = [f"{fid:04X}" for fid, kind in self.seen.get(self.where, {}).items() if kind == "EF"]
        options += ["sfi:"]
        return [o for o in options if o.lower().startswith(text.lower())]

    def do_cat(self, arg: str) -> None:
        """cat [FID | sfi:N] [RECORD] — show an EF: binary as a hex dump, records one by one (decoded)

        cat 0015         select EF 0015 and read it
        cat sfi:18       read by short file identifier, without selecting
        cat 0018 1       record 1 only
        cat              the current EF"""
        words = arg.split()
        record = None
        if len(words) == 2:
            try:
                record = int(words[1], 0)
            except ValueError:
                raise UsageError("cat [FID | sfi:N] [RECORD]") from None
        elif len(words) > 2:
            raise UsageError("cat [FID | sfi:N] [RECORD]")
        sfi = None
        target = words[0] if words else ""
        if target.lower().startswith("sfi:"):
            try:
                sfi = int(target[4:], 16)
            except ValueError:
                raise UsageError(self.msgs("shell.sfi_range", target=target)) from None
            if not 1 <= sfi <= 0x1F:
                raise UsageError(self.msgs("shell.sfi_range", target=target))
            label = f"SFI {sfi:02X}"
        elif target:
            try:
                fid = int(target, 16)
                if len(target) != 4:
                    raise ValueError
            except ValueError:
                raise UsageError(self.msgs("shell.fid_digits", target=target)) from None
            self.ok(bytes((0x00, 0xA4, 0x02, 0x00, 0x02)) + fid.to_bytes(2, "big"), f"SELECT {fid:04X}")
            self.current_ef = fid
            label = f"{fid:04X}"
        elif self.current_ef is not None:
            label = f"{self.current_ef:04X}"
        else:
            raise UsageError(self.msgs("shell.no_ef"))
        log_like = sfi == 0x18 or (sfi is None and (self.current_ef == 0x0018))
        if record is None:
            p1 = 0x80 | sfi if sfi is not None else 0x00
            data, sw = self.xfer(bytes((0x00, 0xB0, p1, 0x00, 0x00)))
            if sw in (0x9000, 0x6281):
                content = data
                offset = len(data)
                while sfi is None and len(data) == 256:  # larger than one READ BINARY
                    data, sw = self.xfer(bytes((0x00, 0xB0, offset >> 8, offset & 0xFF, 0x00)))
                    if sw not in (0x9000, 0x6281):
                        break
                    content += data
                    offset += len(data)
                self.say(self.s("1", self.msgs("shell.binary", label=label, n=len(content))))
                for line in hexdump(content):
                    self.say(f"  {line}")
                return
            if sw != 0x6981:  # 6981: not a binary file -> records
                raise self.fail(f"READ BINARY {label}: {sw:04X} {describe_sw(sw, self.lang)}")
        numbers = [record] if record is not None else range(1, 255)
        shown = 0
        rows = []
        for n in numbers:
            p2 = ((sfi or 0) << 3) | 0x04
            data, sw = self.xfer(bytes((0x00, 0xB2, n, p2, 0x00)))
            if sw == 0x6A83 and record is None:
                break
            if sw != 0x9000:
                raise self.fail(f"READ RECORD {n} of {label}: {sw:04X} {describe_sw(sw, self.lang)}")
            shown += 1
            rows.append((n, data))
        self.say(self.s("1", self.msgs("shell.records", label=label, n=shown)))
        for n, data in rows:
            if log_like and len(data) == 23:
                self.say("  " + self.msgs("shell.record", n=n, text=self._record_text(data)))
            else:
                text = hex_spaced(data) + (f"  {_text_or_hex(data[2:])}" if len(data) > 2 and data[1] == len(data) - 2
                                           else "")
                self.say("  " + self.msgs("shell.record", n=n, text=text))

    def _record_text(self, r: bytes) -> str:
        return self.msgs("shell.record_text", counter=int.from_bytes(r[0:2], "big"), type=self._tx_word(r[9]),
                         amount=_money(int.from_bytes(r[5:9], "big")), overdraw=_money(int.from_bytes(r[2:5], "big")),
                         terminal=r[10:16].hex().upper(), date=f"{r[16:18].hex()}-{r[18:19].hex()}-{r[19:20].hex()}",
                         time=f"{r[20:21].hex()}:{r[21:22].hex()}:{r[22:23].hex()}")

    def _tx_word(self, code: int) -> str:
        return self.msgs.tx_type(code, TX_WORDS.get(code, f"type {code:02X}"))

    def do_info(self, arg: str) -> None:
        """info — the card, the current DF and its FCI decoded"""
        w, pad = self.msgs.word, self.msgs.pad
        self.say(f"{pad(w('card'), 11)}{self.transport.label}")
        self.say(f"{pad(w('ATR'), 11)}{hex_spaced(self.transport.atr)}")
        self.say(f"{pad(w('path'), 11)}{self.where}" + (f"  ({w('current EF')} {self.current_ef:04X})"
                                                        if self.current_ef else ""))
        name = self.path[-1][1] if self.path else b""
        if name:
            self.say(f"{pad(w('DF name'), 11)}{_text_or_hex(name)}" + (
                f"  ({name.hex().upper()})" if name.isascii() and name.decode('ascii', 'replace').isprintable()
                else ""))
        if self.keys is not None:
            self.say(f"{pad(w('keys'), 11)}{self.keys.label}")
        self.say(f"{pad(w('terminal'), 11)}{self.terminal.hex().upper()}")
        if self.last_fci:
            self.say(f"{pad(w('FCI'), 11)}{hex_spaced(self.last_fci)}")
            for tag, value, depth in tlv_items(self.last_fci):
                meaning = w({0x6F: "FCI template", 0x84: "DF name", 0xA5: "proprietary data",
                             0x88: "SFI of the DIR file", 0x9F0C: "issuer data (0015)",
                             0xBF0C: "FCI issuer discretionary data"}.get(tag, ""))
                text = hex_spaced(value) if tag not in (0x6F, 0xA5, 0xBF0C) else ""
                if tag == 0x9F0C and len(value) >= 20:
                    text += f"  → {w('application serial')} {value[12:20].hex().upper()}"
                self.say(f"  {'  ' * depth}{tag:02X} {pad(meaning, 28)} {text}".rstrip())

    # -- authentication & raw --------------------------------------------------------------------------

    def do_verify(self, arg: str) -> None:
        """verify [ID] PIN — VERIFY a PIN (ID 00 by default): verify 123456, verify 00 123456, verify CHV0 123456"""
        words = arg.split()
        if len(words) == 1:
            kid, pin = 0, words[0]
        elif len(words) == 2:
            ident = words[0].upper()
            ident = ident.removeprefix("CHV")
            try:
                kid = int(ident, 16)
            except ValueError:
                raise UsageError("verify [ID] PIN") from None
            pin = words[1]
        else:
            raise UsageError("verify [ID] PIN")
        value = pin_bytes(pin)
        _data, sw = self.xfer(bytes((0x00, 0x20, 0x00, kid, len(value))) + value)
        if sw != 0x9000:
            tries = wrong_key(sw, "PIN")
            raise self.fail(f"VERIFY: {sw:04X} {describe_sw(sw, self.lang)}" + (f" — {tries}" if tries else ""))
        self.say(self.msgs("shell.pin_verified"))

    def do_apdu(self, arg: str) -> None:
        """apdu HEX — send an APDU as it is (61XX and 6CXX followed automatically): apdu 00 84 00 00 04"""
        if not arg.strip():
            raise UsageError("apdu HEX")
        apdu = parse_hex(arg)
        if len(apdu) < 4:
            raise UsageError(self.msgs("shell.apdu_short"))
        _data, sw = self.xfer(apdu)
        if sw >> 8 in (0x90,):
            self.say(self.s("32", self.msgs("shell.success")))
        else:
            tries = wrong_key(sw)
            raise self.fail(f"{sw:04X} {describe_sw(sw, self.lang)}" + (f" — {tries}" if tries else ""))

    def do_challenge(self, arg: str) -> None:
        """challenge [N] — GET CHALLENGE of N bytes (4 by default; 8, or 16 for SM4 keys)"""
        try:
            n = int(arg.strip() or "4")
        except ValueError:
            raise UsageError("challenge [N]") from None
        data = self.ok(bytes((0x00, 0x84, 0x00, 0x00, n)), "GET CHALLENGE")
        self.say(self.msgs("shell.random", hex=data.hex().upper()))

    def do_reset(self, arg: str) -> None:
        """reset — power the card off and on (security state cleared), then select the MF

        After the card was pulled out and put back, reset connects to it again (as connect does)."""
        try:
            atr = self.transport.reset(cold=True)
        except TransportError:
            if not self._reopenable():
                raise
            self.do_connect("")  # the old connection died with the removal: a new one
            return
        self.fatal = None
        self.say(f"ATR {hex_spaced(atr)}")
        self.path, self.current_ef = [], None
        self.select_mf()

    def do_connect(self, arg: str) -> None:
        """connect [READER] — connect to the card again (after it was removed), or to the card in another reader

        READER: a name, a number (0) or a unique part of a name, as -r. The security state
        starts afresh and the MF is selected. With --card (an image) connect powers the card up again."""
        spec = arg.strip()
        if not self._reopenable():
            if spec:
                raise UsageError("connect READER needs a shell on a PC/SC reader (cardos shell -r READER)")
            self.transport.reset(cold=True)
        else:
            old = self.transport
            try:
                old.close()
            except Exception:  # noqa: BLE001, S110 - the connection may be dead already
                pass
            self.transport = self._reopen(old, spec or getattr(old, "reader", None) or old.label)
        self.fatal = None
        self.say(self.s("1", f"connected to {self.transport.label} — ATR {hex_spaced(self.transport.atr)}"))
        self.path, self.current_ef = [], None
        self.select_mf()

    def _reopenable(self) -> bool:
        """Whether the transport is a reader connection that connect can open anew (PC/SC, scriptor)."""
        from .transports.pcsc import PcscTransport
        from .transports.scriptor import ScriptorTransport

        return isinstance(self.transport, (PcscTransport, ScriptorTransport))

    @staticmethod
    def _reopen(old, spec: str):
        from .transports.scriptor import ScriptorTransport

        if isinstance(old, ScriptorTransport):
            return ScriptorTransport(spec)
        return type(old)(spec)

    def do_echo(self, arg: str) -> None:
        """echo TEXT — print TEXT (for scripts)"""
        self.say(arg)

    def do_trace(self, arg: str) -> None:
        """trace full | short | off — how APDUs are shown (full: decoded with fields; short: one line each)"""
        mode = arg.strip() or "full"
        if mode not in ("full", "short", "off"):
            raise UsageError("trace full | short | off")
        self.trace_mode = mode

    # -- purse --------------------------------------------------------------------------------------

    def _purse_arg(self, words: list) -> int:
        names = [w for w in words if w.lower() in PURSES]
        if len(names) > 1:
            raise UsageError(self.msgs("shell.one_purse"))
        return PURSES[names[0].lower()] if names else PURSES["ep"]

    def complete_balance(self, text, line, begidx, endidx):
        return [p for p in PURSES if p.startswith(text.lower())]

    complete_load = complete_purchase = complete_balance

    def _channel(self):
        shell = self

        class Channel:
            def transmit(self, apdu: bytes) -> bytes:
                return shell.transmit(apdu)
        return Channel()

    def _need_keys(self, what: str):
        if self.keys is None:
            raise UsageError(self.msgs("shell.needs_keys", what=what))
        return self.keys.issuer_keys()

    def do_balance(self, arg: str) -> None:
        """balance [ep|ed] — GET BALANCE of the EP (default) or the ED, shown in yuan (the card counts fen, 分)"""
        purse = self._purse_arg(arg.split())
        self.ensure_application()
        data = self.ok(bytes((0x80, 0x5C, 0x00, purse, 0x04)), "GET BALANCE")
        name = self.msgs.purse("EP" if purse == 2 else "ED")
        self.say(self.s("1", self.msgs("shell.balance", purse=name, money=_money(int.from_bytes(data, "big")))))

    def _transaction(self, kind: str, arg: str):
        from .terminal import purse as tx

        words = arg.split()
        amounts = [w for w in words if w.lower() not in PURSES]
        if len(amounts) != 1:
            raise UsageError(self.msgs("shell.amount_usage", kind=kind))
        amount = parse_amount(amounts[0])
        purse = self._purse_arg(words)
        keys = self._need_keys(kind)
        self.ensure_application()
        try:
            if kind == "load":
                from .terminal.host import LoadHost

                record = tx.load(self._channel(), LoadHost(keys), amount, terminal=self.terminal, purse=purse)
            else:
                from .terminal.psam import PSAM

                if self.psam is None:
                    self.psam = PSAM(keys, self.terminal, state=self.tsn_file)
                record = tx.purchase(self._channel(), self.psam, amount, purse=purse)
        except tx.CardMute as exc:
            raise TransportError(str(exc)) from None
        except tx.TransactionError as exc:
            detail = f" ({describe_sw(exc.sw, self.lang)})" if exc.sw is not None else ""
            if exc.sw in (0x9302, 0x9303):
                self.mac_failures += 1
                detail += f" — {purse_mac_refused(exc.sw, self.mac_failures)}"
            raise self.fail(f"{exc}{detail}") from None
        except Exception as exc:  # HostError, PSAMError: the terminal side refuses (wrong keys)
            if type(exc).__name__ in ("HostError", "PSAMError", "KeySetError"):
                raise self.fail(f"{kind}: {exc}") from None
            raise
        self.mac_failures = 0
        self.say(self.s("1", self.msgs.transaction(record)))

    def do_load(self, arg: str) -> None:
        """load AMOUNT [ep|ed] — 圈存: INITIALIZE FOR LOAD, MAC1 checked and MAC2 made by the load host, CREDIT

        AMOUNT is fen (分, 1/100 yuan: 1000) or yuan with a decimal point (10.00). Keys: --keys.
        The ED needs the PIN first (verify PIN)."""
        self._transaction("load", arg)

    def do_purchase(self, arg: str) -> None:
        """purchase AMOUNT [ep|ed] — 消费: INITIALIZE FOR PURCHASE, MAC1 from the PSAM, DEBIT, MAC2 checked

        AMOUNT is fen (分, 1/100 yuan: 250) or yuan with a decimal point (2.50). Keys: --keys.
        The ED needs the PIN first (verify PIN)."""
        self._transaction("purchase", arg)

    def do_history(self, arg: str) -> None:
        """history [SFI] — the transaction log (SFI 18 by default), newest first, as a table"""
        try:
            sfi = int(arg.strip() or "18", 16)
        except ValueError:
            raise UsageError("history [SFI]") from None
        self.ensure_application()
        rows = []
        for n in range(1, 255):
            data, sw = self.xfer(bytes((0x00, 0xB2, n, (sfi << 3) | 0x04, 0x00)))
            if sw == 0x6A83:
                break
            if sw != 0x9000:
                raise self.fail(f"READ RECORD {n} (SFI {sfi:02X}): {sw:04X} {describe_sw(sw, self.lang)}")
            rows.append((n, data))
        if not rows:
            self.say(self.msgs("shell.no_transactions"))
            return
        w, pad = self.msgs.word, self.msgs.pad
        counter_width = max(7, display_width(w("counter")))
        self.say(self.s("1", f"{'#':>2}  {pad(w('counter'), counter_width, True)}  {pad(w('type'), 16)}  "
                             f"{pad(w('amount'), 9, True)}  {pad(w('overdraw'), 9, True)}  "
                             f"{pad(w('terminal'), 12)}  {pad(w('date'), 10)}  {w('time')}"))
        for n, r in rows:
            if len(r) != 23:
                self.say(f"{n:>2}  {hex_spaced(r)}")
                continue
            date, t = r[16:20].hex(), r[20:23].hex()
            self.say(f"{n:>2}  {int.from_bytes(r[0:2], 'big'):>{counter_width}}  {pad(self._tx_word(r[9]), 16)}  "
                     f"{_money(int.from_bytes(r[5:9], 'big')):>9}  {_money(int.from_bytes(r[2:5], 'big')):>9}  "
                     f"{r[10:16].hex().upper():12s}  {date[:4]}-{date[4:6]}-{date[6:]}  {t[:2]}:{t[2:4]}:{t[4:]}")

    def do_keys(self, arg: str) -> None:
        """keys — the key source the purse commands use (names only, never values)"""
        if self.keys is None:
            self.say(self.msgs("shell.no_keys"))
            return
        self.say(f"{self.keys.label}: " + ", ".join("@" + n for n in self.keys.names()))


# -- command line ------------------------------------------------------------------------------

def add_parser(sub) -> None:
    p = sub.add_parser("shell", help="an interactive card shell (cd, ls, cat, info, verify, apdu, purse commands)",
                       description="An interactive shell on a card, in the spirit of opensc-explorer: cd, ls, "
                                   "cat, info, verify, apdu, challenge, reset, connect (after the card was removed), "
                                   "and the purse commands balance, load, purchase and history (MACs made with the "
                                   "keys of --keys; amounts in fen (分, 1/100 yuan) or in yuan with a decimal "
                                   "point: 250 or 2.50). Every APDU is shown decoded. Readline history "
                                   "(~/.cardos_history) and tab completion on a terminal; otherwise commands are "
                                   "read from stdin, one per line (# comments), "
                                   "and the exit status is 1 if any failed (3 if the card is gone at the end). "
                                   "See docs/cli.md.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--card", metavar="IMAGE", help="a card image (changes are saved to it)")
    add_reader_option(where)
    p.add_argument("--via", choices=("pyscard", "scriptor"), default="pyscard",
                   help="with --reader: send the APDUs through pyscard (default) or through a pcsc-tools "
                        "scriptor process (cardos still computes the MACs)")
    p.add_argument("--keys", metavar="FILE", help="keys for load and purchase: a key-set file (cardos keys new), "
                   "a shipped key set (test, test-sm4), or 'sample' (the sample card's TEST keys)")
    p.add_argument("--tsn-file", metavar="FILE",
                   help="where the PSAM keeps its terminal transaction serial between sessions (default: beside "
                        "the --keys key-set file, KEYS.tsn.json; the shipped key sets and 'sample' keep it in "
                        "memory only)")
    p.add_argument("--terminal", metavar="HEX", default=DEFAULT_TERMINAL.hex().upper(),
                   help="6-byte terminal id for load and purchase (default %(default)s)")
    p.add_argument("--aid", metavar="HEX", default=CITY_AID.hex().upper(),
                   help="the application purse commands enter from the MF (default %(default)s)")
    p.add_argument("--lang", choices=("en", "zh"), default="en",
                   help="language of the output: command and field names, status words, messages")
    p.add_argument("--trace", choices=("full", "short", "off"), default="full",
                   help="how APDUs are shown (default full: decoded with fields)")
    add_color_option(p)
    p.set_defaults(func=run)


def _open(args):
    from .scripting.transport import open_transport

    if args.via == "scriptor":
        if not args.reader:
            raise TransportError("--via scriptor needs --reader (scriptor talks to a PC/SC reader)")
        from .transports.scriptor import ScriptorTransport

        return ScriptorTransport(args.reader)
    return open_transport(args.card, args.reader)


def _setup_readline():
    try:
        import readline
    except ImportError:  # pragma: no cover - no readline on this Python
        return None
    path = os.path.expanduser(os.environ.get("CARDOS_HISTORY", HISTORY_FILE))
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)
    readline.set_completer_delims(" \t\n")
    return path


def masked_command(line: str) -> str:
    """A shell command line with its PIN or key value as ``*``: for the echo and the history.

    >>> masked_command("verify 00 123456")
    'verify 00 ******'
    >>> masked_command("apdu 00 20 00 00 02 12 34")
    'apdu 00 20 00 00 02 ** **'
    >>> masked_command("cd 3F00")
    'cd 3F00'
    >>> masked_command("apud 0020000002 1234")  # a typo is no excuse to keep a PIN
    'apud 0020000002 ****'
    """
    words = line.split()
    command = words[0].lower() if words else ""
    if len(words) > 1 and command == "verify":
        return " ".join(words[:-1] + ["*" * len(words[-1])])
    if len(words) > 1 and command == "apdu":
        try:
            apdu = parse_hex(line.split(None, 1)[1])
        except UsageError:
            return redact_text(line)
        return f"apdu {apdu_spaced(apdu)}" if secret_span(apdu) else line
    return redact_text(line)


def _save_history(path: str) -> None:
    """Write the readline history to ``path``, mode 0600, without the lines that held a PIN or a key.

    Those lines are dropped rather than masked (a masked line is no use to
    recall); old entries read from the file are filtered the same way.
    """
    import readline
    import tempfile

    for index in reversed(range(readline.get_current_history_length())):
        item = readline.get_history_item(index + 1)  # 1-based, unlike remove_history_item
        if item is not None and masked_command(item) != item:
            readline.remove_history_item(index)
    with tempfile.TemporaryDirectory() as folder:  # readline writes only to a path: a private one
        scratch = os.path.join(folder, "history")
        readline.write_history_file(scratch)
        with open(scratch, "rb") as f:
            data = f.read()
    write_private(path, data)


def run(args, stdin=None, out=None) -> int:
    from .scripting.keysource import open_keys

    stdin = stdin or sys.stdin
    out = out or sys.stdout
    keys = None
    if args.keys:
        try:
            keys = open_keys(args.keys)
        except ValueError as exc:
            print(f"cardos shell: error: --keys: {exc}", file=sys.stderr)
            return 2
    try:
        terminal = bytes.fromhex(args.terminal)
        aid = bytes.fromhex(args.aid)
        if len(terminal) != 6:
            raise ValueError
    except ValueError:
        print("cardos shell: error: --terminal is 6 bytes of hex, --aid hex", file=sys.stderr)
        return 2
    interactive = bool(getattr(stdin, "isatty", lambda: False)())
    transport = _open(args)  # TransportError: exit 3 in cardos.cli
    color = use_color(out, False if args.no_color else None)
    shell = CardShell(transport, keys, out=out, color=color, lang=args.lang, terminal=terminal, aid=aid,
                      interactive=interactive, stdin=stdin, trace=args.trace,
                      tsn_file=getattr(args, "tsn_file", None))
    history = _setup_readline() if interactive else None
    try:
        if interactive:
            print(shell.msgs("shell.intro", label=transport.label, atr=hex_spaced(transport.atr)), file=out)
        try:
            shell.select_mf()
        except Failed as exc:
            print(shell.s("33", shell.msgs("shell.no_mf", reason=exc)), file=out)
        except TransportError:
            raise
        shell._update_prompt()
        while True:
            try:
                shell.cmdloop()
                break
            except KeyboardInterrupt:  # Ctrl-C: a new prompt, not the end
                print("^C", file=out)
    finally:
        if history:
            try:
                _save_history(history)
            except OSError:
                pass
        transport.close()
    if shell.fatal is not None:
        return 3
    return 1 if shell.failures else 0
