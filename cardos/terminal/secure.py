"""Terminal side of FMCOS line protection (reference §2.8): wrap a command
with a MAC (and optionally encrypt its data) under a card challenge."""
from __future__ import annotations

from ..apdu import lc_bytes
from ..crypto import DES, Algorithm


def protected_apdu(cla: int, ins: int, p1: int, p2: int, data: bytes, key: bytes, challenge: bytes,
                   encrypt: bool = False, algorithm: Algorithm = DES, le: int | None = None) -> bytes:
    """Build ``CLA INS P1 P2 Lc' data' MAC [Le]``.

    ``cla`` should have the 0x04 bit set (``04``/``84``). ``data'`` is
    ``data`` itself, or its LD-prefixed encryption when ``encrypt``.
    """
    body = algorithm.sm_encrypt(key, data) if encrypt else data
    lc = len(body) + 4
    header = bytes((cla, ins, p1, p2))
    mac = algorithm.mac(key, header + lc_bytes(lc) + body, algorithm.line_iv(challenge))
    out = header + lc_bytes(lc) + body + mac
    if le is not None:
        out += bytes((le & 0xFF,))
    return out


def external_auth_cryptogram(key: bytes, challenge: bytes, algorithm: Algorithm = DES) -> bytes:
    """What EXTERNAL AUTHENTICATE carries: the challenge, zero-filled, encrypted."""
    return algorithm.encrypt(key, algorithm.auth_block(challenge))
