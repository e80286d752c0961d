"""PINs and key values out of everything cardos prints, logs or reports.

The one redaction path (docs/robustness.md, "Secrets"): :func:`secret_span`
says which bytes of a command APDU are secret, and every trace, log line,
report and error message shows those bytes as ``*`` — through
:func:`apdu_hex` / :func:`apdu_spaced` for an APDU, through
:func:`redact_text` for free text that embeds APDUs in hex (a scriptor
transcript, a log message), and through the decoder's secret fields
(:func:`cardos.decoder.decode_command`) for the decoded traces.

Secret-bearing commands (CLA/INS/P1 as in docs/commands.md):

* VERIFY ``00 20`` (and ``04 20``: PIN ‖ MAC — the PIN is still in clear);
* CHANGE PIN ``80 5E 01`` (old PIN ‖ FF ‖ new PIN) and RELOAD PIN ``80 5E 00``
  (new PIN ‖ MAC), whatever the CLA;
* WRITE KEY ``80 D4``: the key value after the type byte and the four header
  bytes;
* PIN UNBLOCK sent without line protection (``80 24``: the card refuses it,
  but what was sent may be a PIN), and the ISO PIN commands a terminal may
  send to any card: CHANGE REFERENCE DATA ``00 24`` and RESET RETRY COUNTER
  ``00 2C``.

Left as they are: ``84 D4`` and ``84 24``, whose data is encrypted with a key
of the card; and every response (no command answers key material).

>>> apdu_hex(bytes.fromhex("80D401000D39F0F0AA331122334455667788"))
'80D401000D39F0F0AA33****************'
>>> apdu_hex(bytes.fromhex("0020000003123456"))
'0020000003******'
>>> apdu_hex(bytes.fromhex("805E010007123456FF654321"))
'805E010007**************'
>>> apdu_hex(bytes.fromhex("00A40000023F00"))
'00A40000023F00'
>>> apdu_spaced(bytes.fromhex("0020000003123456"))
'00 20 00 00 03 ** ** **'
>>> redact_text("> 00 20 00 01 02 12 34\\n< 90 00")
'> 00 20 00 01 02 ** **\\n< 90 00'
"""
from __future__ import annotations

import re

VERIFY, PIN_UNBLOCK, RESET_RETRY_COUNTER, CHANGE_OR_RELOAD_PIN, WRITE_KEY = 0x20, 0x24, 0x2C, 0x5E, 0xD4
PIN_DATA = frozenset({VERIFY, RESET_RETRY_COUNTER, CHANGE_OR_RELOAD_PIN})  # every byte of the data
LINE_PROTECTION = 0x04  # CLA bit: the data of 84 D4 / 84 24 is encrypted
KEY_HEADER = 5  # WRITE KEY: type, use right, change right, two header bytes — then the value
MASK = "*"


def _data_bounds(apdu: bytes) -> tuple[int, int]:
    """Where the command data lies: ``(start, end)``; ``start == end`` when there is none.

    A length that fits no ISO case counts everything after the header as data
    (masking too much is harmless; masking too little is not).
    """
    n = len(apdu)
    if n <= 5:
        return n, n
    if apdu[4]:  # short Lc
        start, lc = 5, apdu[4]
        well_formed = n in (start + lc, start + lc + 1)
    elif n >= 7:  # extended: 00 Lc1 Lc2
        start, lc = 7, int.from_bytes(apdu[5:7], "big")
        well_formed = n in (start + lc, start + lc + 2)
        if n == 7:  # case 2 extended: 00 Le1 Le2, no data
            return n, n
    else:
        return 5, n
    return (start, start + lc) if well_formed else (start, n)


def secret_span(apdu: bytes) -> tuple[int, int] | None:
    """The byte range ``[start, end)`` of ``apdu`` that holds a PIN or a key value, or None.

    >>> secret_span(bytes.fromhex("0020000003123456"))
    (5, 8)
    >>> secret_span(bytes.fromhex("84D401001C") + bytes(28)) is None  # encrypted
    True
    """
    if len(apdu) < 5:
        return None
    cla, ins = apdu[0], apdu[1]
    encrypted = cla & 0x80 and cla & LINE_PROTECTION  # FMCOS 84 xx: the data is ciphertext
    if ins in PIN_DATA or (ins == PIN_UNBLOCK and not encrypted):
        skip = 0
    elif ins == WRITE_KEY and not encrypted:
        skip = KEY_HEADER
    else:
        return None
    start, end = _data_bounds(apdu)
    start = min(start + skip, end)
    return (start, end) if start < end else None


def apdu_hex(apdu: bytes) -> str:
    """Upper-case hex of ``apdu`` with its PIN or key value (see :func:`secret_span`) as ``*``."""
    apdu = bytes(apdu)
    text = apdu.hex().upper()
    span = secret_span(apdu)
    if span is None:
        return text
    start, end = span
    return text[:2 * start] + MASK * (2 * (end - start)) + text[2 * end:]


def apdu_spaced(apdu: bytes) -> str:
    """``00 20 00 00 03 ** ** **``: :func:`apdu_hex` one byte per group."""
    text = apdu_hex(apdu)
    return " ".join(text[i:i + 2] for i in range(0, len(text), 2))


# Hex bytes, optionally separated by one space or colon: a run of at least a header (4 bytes) and Lc.
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{2}(?:[ :]?[0-9A-Fa-f]{2}){4,}(?![0-9A-Za-z])")


def _mask_run(match: re.Match) -> str:
    run = match.group(0)
    digits = [i for i, c in enumerate(run) if c not in " :"]
    span = secret_span(bytes.fromhex(re.sub("[ :]", "", run)))
    if span is None:
        return run
    chars = list(run)
    for i in digits[2 * span[0]:2 * span[1]]:
        chars[i] = MASK
    return "".join(chars)


def redact_text(text: str) -> str:
    """``text`` with every command APDU written in hex in it redacted as by :func:`apdu_hex`.

    For free text that embeds APDUs: a scriptor transcript, a log message.
    Separators are kept; hex that is no secret-bearing command is left alone.

    >>> redact_text("command 80D401000D39F0F0AA331122334455667788 failed")
    'command 80D401000D39F0F0AA33**************** failed'
    >>> redact_text("ATR 3B 02 14 50")
    'ATR 3B 02 14 50'
    """
    return _HEX_RUN.sub(_mask_run, text)
