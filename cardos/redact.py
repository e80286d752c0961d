"""Key values out of human-readable APDU logs.

A plain WRITE KEY (``80 D4``) carries a key in clear as its data; the
commands that print the APDUs they send on their own initiative (``cardos
demo``, ``cardos issue -v``) show it as ``*`` instead, keeping the header and
the key's type and header bytes. Keys are printed only when asked for
(``cardos keys new|show --show``). See docs/robustness.md.

>>> apdu_hex(bytes.fromhex("80D401000D39F0F0AA331122334455667788"))
'80D401000D39F0F0AA33****************'
>>> apdu_hex(bytes.fromhex("00A40000023F00"))
'00A40000023F00'
"""
from __future__ import annotations

WRITE_KEY = 0xD4


def apdu_hex(apdu: bytes) -> str:
    """Upper-case hex of ``apdu``, with the key value of a plain WRITE KEY masked."""
    text = bytes(apdu).hex().upper()
    if len(apdu) > 5 and apdu[0] & 0xF4 == 0x80 and apdu[1] == WRITE_KEY:
        header = 7 if apdu[4] == 0 and len(apdu) > 7 else 5  # extended Lc: 00 LL LL
        shown = 2 * (header + 5)  # CLA INS P1 P2 Lc, then type and the 4 header bytes
        text = text[:shown] + "*" * max(0, len(text) - shown)
    return text
