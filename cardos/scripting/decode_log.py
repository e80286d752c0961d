"""``cardos decode``: annotate a pasted APDU log with the decoder.

Understands scriptor output (``> 00 A4 ...`` / ``< 6F ... 90 00 : Normal
processing.``), ``>>``/``<<`` traces, apdu4j (``A>> T=1 (4+0008) 00A40400
...`` / ``A<< (0018+2) (12ms) ... 9000``), opensc-tool ``Sending:``, cardos
scripts (the APDU part of each line) and Chinese-tool pastes where a case-2
command and its response share one line (``00B095000A <10 bytes> 9000``).
"""
from __future__ import annotations

import re

from ..apdu import CardError, parse
from .lexer import Pos
from .report import HumanReporter
from .runner import Exchange, Message

_CMD = re.compile(r"^\s*(?:A>>|>>|>|->|Sending:|send:?|C:)\s*(.*)$", re.IGNORECASE)
_RSP = re.compile(r"^\s*(?:A<<|<<|<|<-|Received[^:]*:|recv:?|R:)\s*(.*)$", re.IGNORECASE)
_NOISE = re.compile(r"T=[01]|\([^)]*\)")


def _hex_prefix(text: str) -> bytes | None:
    """Leading hex tokens of ``text`` (stops at the first word that is not hex)."""
    text = _NOISE.sub(" ", text.split("=>")[0].split("#")[0].split("//")[0])
    digits = []
    for token in text.replace(":", " ").split():
        if re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", token):
            digits.append(token)
        else:
            break
    if not digits:
        return None
    return bytes.fromhex("".join(digits))


def _valid(apdu: bytes) -> bool:
    try:
        parse(apdu)
        return True
    except CardError:
        return False


def decode_log(text: str, out, lang: str = "en", color: bool = False, path: str = "log") -> int:
    """Print every APDU found in ``text`` decoded; returns how many."""
    reporter = HumanReporter(out, out, color=color, lang=lang, summary=False)
    pending: tuple | None = None  # (pos, command)
    count = 0

    def flush(response: bytes = b""):
        nonlocal pending, count
        if pending is not None:
            pos, command = pending
            reporter.exchange(Exchange(pos, command, response, None))
            count += 1
        pending = None

    for number, line in enumerate(text.splitlines(), start=1):
        pos = Pos(path, number, 1)
        m = _CMD.match(line)
        if m:
            data = _hex_prefix(m.group(1))
            if data is not None:
                flush()
                pending = (pos, data)
            continue
        m = _RSP.match(line)
        if m:
            data = _hex_prefix(m.group(1))
            if data is not None and len(data) >= 2:
                if pending is None:
                    pending = (pos, b"")
                flush(data)
            continue
        data = _hex_prefix(line)
        if data is None or len(data) < 4:
            if line.strip():
                flush()
                reporter.message(Message(pos, line.strip()))
            continue
        flush()
        if not _valid(data) and len(data) >= 7 and len(data) - 5 == (data[4] or 256) + 2:
            pending = (pos, data[:5])  # a case-2 command with its response pasted behind it
            flush(data[5:])
            continue
        pending = (pos, data)
    flush()
    return count
