"""``cardos decode``: annotate a pasted APDU log with the decoder.

Understands scriptor output (``> 00 A4 ...`` / ``< 6F ... 90 00 : Normal
processing.``, answers wrapped at 16 bytes), ``>>``/``<<`` traces, apdu4j
(``A>> T=1 (4+0008) 00A40400 ...`` / ``A<< (0018+2) (12ms) ... 9000``),
opensc-tool (``Sending: ...`` / ``Received (SW1=0x90, SW2=0x00):`` and its
hex dump with an ASCII gutter), pyscard's console observer (``<  [] 90 00``),
cardos's own traces (``cardos run``, ``cardos shell``: fields split by ``|``,
long data on indented lines) and ``cardos run --json`` lines, cardos scripts
(the APDU part of each line), Chinese-tool pastes where a case-2 command
and its response share one line (``00B095000A <10 bytes> 9000``), pastes of
bare hex where a command line and its answer line alternate, and the live
traces of ``cardos serve --trace`` / ``-v`` and the pyscard reader (each
line behind a timestamp, optionally a ``[slot]``).
"""
from __future__ import annotations

import json
import re

from ..apdu import CardError, parse
from ..redact import redact_text
from .lexer import Pos
from .report import HumanReporter
from .runner import Exchange, Message

_CMD = re.compile(r"^(\s*)(?:A>>|>>|>|->|Sending:|send:?|C:)\s*(.*)$", re.IGNORECASE)
_RSP = re.compile(r"^(\s*)(?:A<<|<<|<|<-|recv:?|R:)\s*(.*)$", re.IGNORECASE)
_OPENSC_RSP = re.compile(r"^\s*Received \(SW1=0x([0-9A-Fa-f]{2}), SW2=0x([0-9A-Fa-f]{2})\)(:?)\s*$")
_COMPACT = re.compile(r"^\s*·\s*(.*?)\s+→\s+(.*)$")  # cardos shell probes: "· CMD  NAME  → RSP meaning"
_FIELDS = re.compile(r"^\s*(?:[^\W\d][\w.]*=\S+(?:\s+\([^)]*\))?\s*)+$")  # "key_id=01 amount=... (1.00)"
_NOISE = re.compile(r"T=[01]|\([^)]*\)|\[\]")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
# "2026-12-03T08:10:01.123  [localhost:35964]  > ..." (cardos.transports.trace), or "08:10:01.123 ..."
_STAMP = re.compile(r"^\s*(?:\d{4}-\d\d-\d\d[T ])?\d\d:\d\d:\d\d(?:[.,]\d+)?(?:\s+\[[^\]]*\])?\s+(?=\S)")
_SW1 = frozenset(range(0x61, 0x70)) | frozenset(range(0x90, 0xA0))


def _hex_split(text: str):
    """Leading hex tokens of ``text`` (stops at the first word that is not hex) and what follows."""
    text = _NOISE.sub(" ", text.split("=>")[0].split("#")[0].split("//")[0])
    tokens = text.replace(":", " ").replace("|", " ").split()
    digits = []
    for i, token in enumerate(tokens):
        if _HEX.fullmatch(token):
            digits.append(token)
        else:
            return (bytes.fromhex("".join(digits)) if digits else None), " ".join(tokens[i:])
    return (bytes.fromhex("".join(digits)) if digits else None), ""


def _hex_prefix(text: str) -> bytes | None:
    """Leading hex tokens of ``text`` (stops at the first word that is not hex)."""
    return _hex_split(text)[0]


def _cardos_cut(indent: str, text: str) -> str:
    """cardos trace lines (``  > 80 5C 00 02 | 04  GET BALANCE``): the APDU ends at two spaces."""
    if indent or " | " in text:
        return re.split(r"\s{2,}", text.strip(), maxsplit=1)[0]
    return text


def _valid(apdu: bytes) -> bool:
    try:
        parse(apdu)
        return True
    except CardError:
        return False


def _is_answer(data: bytes) -> bool:
    """Bare hex that reads as an answer (data ‖ SW) rather than as a command: it ends in a status word
    and is too short or the wrong length to be a command."""
    return len(data) >= 2 and data[-2] in _SW1 and (len(data) < 4 or not _valid(data))


def _opensc_dump(line: str) -> bytes | None:
    """One line of an opensc-tool hex dump: 16 spaced bytes in 48 columns, then an ASCII gutter."""
    m = re.match(r"^((?:[0-9A-Fa-f]{2} ){1,16})", line[:48] + " ")
    if not m or not line.strip():
        return None
    return bytes.fromhex(m.group(1).replace(" ", ""))


def decode_log(text: str, out, lang: str = "en", color: bool = False, path: str = "log",
               show_keys: bool = False) -> int:
    """Print every APDU found in ``text`` decoded; returns how many.

    Understands scriptor (responses wrapped at 16 bytes), opensc-tool (``Sending:`` /
    ``Received (SW1=.., SW2=..):`` and its hex dump), apdu4j, pyscard's console observer,
    cardos traces (``cardos run``, ``cardos shell``), ``cardos run --json`` lines, and
    plain or pasted hex.
    """
    reporter = HumanReporter(out, out, color=color, lang=lang, summary=False, show_keys=show_keys)
    pending: tuple | None = None  # (pos, command)
    command_open = False  # a cardos trace command whose data continues on indented lines
    response: dict | None = None  # an answer still being read: pos, data, style, sw
    plain_pending = False  # the pending command came from a bare hex line
    count = 0

    def flush(answer: bytes = b""):
        nonlocal pending, count, command_open
        if pending is not None:
            pos, command = pending
            reporter.exchange(Exchange(pos, command, answer, None))
            count += 1
        pending = None
        command_open = False

    def finish_response():
        nonlocal response
        if response is not None:
            r, response = response, None
            if pending is None:
                _start(r["pos"], b"")
            flush(bytes(r["data"]) + r["sw"])

    def _start(pos, command: bytes, plain: bool = False):
        nonlocal pending, plain_pending
        pending = (pos, command)
        plain_pending = plain

    for number, line in enumerate(text.splitlines(), start=1):
        pos = Pos(path, number, 1)
        line = _STAMP.sub("  ", line, count=1)  # a live trace line reads like an indented cardos trace line
        stripped = line.strip()

        if response is not None:  # continuation of a wrapped answer?
            style = response["style"]
            if style == "opensc":
                data = _opensc_dump(line)
                if data is not None:
                    response["data"] += data
                    continue
            elif style == "scriptor" and not _CMD.match(line) and not _RSP.match(line):
                body, sep, _meaning = line.partition(" : ")
                data, rest = _hex_split(body)
                if data is not None and not rest:
                    response["data"] += data
                    if sep:
                        finish_response()
                    continue
            elif style == "cardos" and line[:1].isspace() and not _CMD.match(line) and not _RSP.match(line):
                data, rest = _hex_split(_cardos_cut("  ", line))
                if data is not None and not _FIELDS.match(line):
                    response["data"] += data
                    if re.split(r"\s{2,}", stripped, maxsplit=1)[1:]:
                        finish_response()
                    continue
            finish_response()

        if command_open and pending is not None and line[:1].isspace() and not _CMD.match(line) \
                and not _RSP.match(line) and not _FIELDS.match(line):
            data, rest = _hex_split(_cardos_cut("  ", line))
            if data is not None and not rest:
                pending = (pending[0], pending[1] + data)
                continue
        command_open = False

        if stripped.startswith("{") and stripped.endswith("}"):  # cardos run --json
            try:
                event = json.loads(stripped)
            except ValueError:
                event = None
            if isinstance(event, dict):
                if event.get("event") == "exchange":
                    flush()
                    try:
                        _start(pos, bytes.fromhex(event.get("command", "")))
                        flush(bytes.fromhex(event.get("response", "")))
                    except ValueError:
                        pending = None
                elif event.get("event") == "message" and event.get("text"):
                    flush()
                    reporter.message(Message(pos, str(event["text"])))
                continue

        m = _OPENSC_RSP.match(line)
        if m:
            sw = bytes.fromhex(m.group(1) + m.group(2))
            if pending is None:
                _start(pos, b"")
            response = {"pos": pos, "data": bytearray(), "style": "opensc", "sw": sw}
            if not m.group(3):
                finish_response()
            continue

        m = _COMPACT.match(line)
        if m:
            command = _hex_prefix(m.group(1))
            answer, _rest = _hex_split(re.sub(r"^\(\d+ bytes\)", "", m.group(2).strip()))
            if command is not None and answer is not None and len(answer) >= 2:
                flush()
                _start(pos, command)
                flush(answer)
                continue

        m = _CMD.match(line)
        if m:
            body = _cardos_cut(m.group(1), m.group(2))
            data = _hex_prefix(body)
            if data is not None:
                if pending is not None and plain_pending and pending[1] == data:
                    pending = None  # scriptor echoes each line of its script file before "> ..."
                flush()
                _start(pos, data)
                command_open = bool(m.group(1)) or " | " in m.group(2)
            continue
        m = _RSP.match(line)
        if m:
            indent, body = m.group(1), m.group(2)
            if " : " in body:  # scriptor: "< 90 00 : Normal processing."
                data, rest = _hex_split(body.partition(" : ")[0])
                if data is not None:
                    if pending is None:
                        _start(pos, b"")
                    flush(data)
                continue
            cardos = bool(indent) or " | " in body
            data, rest = _hex_split(_cardos_cut(indent, body))
            if data is None:
                continue
            if cardos and not re.split(r"\s{2,}", body.strip(), maxsplit=1)[1:]:
                response = {"pos": pos, "data": bytearray(data), "style": "cardos", "sw": b""}
            elif not cardos and not rest and len(data) % 16 == 0:  # scriptor wraps at 16 bytes
                response = {"pos": pos, "data": bytearray(data), "style": "scriptor", "sw": b""}
            elif len(data) >= 2:
                if pending is None:
                    _start(pos, b"")
                flush(data)
            continue

        data = _hex_prefix(line)
        if data is not None and pending is not None and plain_pending and _is_answer(data):
            flush(data)  # the answer line of a paste where command and answer lines alternate
            continue
        if data is None or len(data) < 4:
            if stripped and not _FIELDS.match(line):
                flush()
                reporter.message(Message(pos, stripped if show_keys else redact_text(stripped)))
            continue
        flush()
        if not _valid(data) and len(data) >= 7 and len(data) - 5 == (data[4] or 256) + 2:
            _start(pos, data[:5])  # a case-2 command with its response pasted behind it
            flush(data[5:])
            continue
        _start(pos, data, plain=True)
    finish_response()
    flush()
    return count
