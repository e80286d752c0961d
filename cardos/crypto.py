"""Card algorithms behind one interface: DES, 2-key 3DES and SM4.

The block ciphers come from ``cryptography``; this module only chains blocks
(CBC-MAC), pads, and composes the PBOC-style derivations (reference §4).
Everything that is a *hypothesis* for SM4 (reference §4.6) lives in
:class:`SM4Algorithm` and is documented in ``docs/algorithms.md``.
"""
from __future__ import annotations

import hmac
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography >= 43 moved TripleDES to the "decrepit" namespace
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

ALG_ID_SM4 = 0x04


def pad80(data: bytes, block: int = 8) -> bytes:
    """ISO 9797-1 method 2: always append ``80`` then zeros to a block multiple."""
    return data + b"\x80" + b"\x00" * ((block - 1 - len(data) % block) % block)


def pad80_if_needed(data: bytes, block: int = 8) -> bytes:
    """FMCOS line-protection encryption pads only when not already aligned."""
    return data if len(data) % block == 0 else pad80(data, block)


def unpad80(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        raise ValueError("missing 80 padding")
    return stripped[:-1]


def xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare MACs and cryptograms without leaking the first differing byte."""
    return hmac.compare_digest(a, b)


def _cbc_last_block(encrypt_block, data: bytes, iv: bytes, block: int) -> bytes:
    """CBC-encrypt 80-padded ``data`` from ``iv``; return only the last block."""
    chain = int.from_bytes(iv, "big")
    padded = pad80(data, block)
    for offset in range(0, len(padded), block):
        word = (int.from_bytes(padded[offset:offset + block], "big") ^ chain).to_bytes(block, "big")
        chain = int.from_bytes(encrypt_block(word), "big")
    return chain.to_bytes(block, "big")


@lru_cache(maxsize=512)
def _ecb(kind: str, key: bytes):
    """Cached (encryptor, decryptor) pair; ECB contexts are stateless per block."""
    if kind == "des":
        cipher = Cipher(TripleDES(key * 3 if len(key) == 8 else key + key[:8]), modes.ECB())
    else:
        cipher = Cipher(algorithms.SM4(key), modes.ECB())
    return cipher.encryptor(), cipher.decryptor()


class Algorithm:
    """What a key's algorithm must provide to the card and the terminal."""

    name = "abstract"
    block = 8

    def encrypt(self, key: bytes, data: bytes) -> bytes:  # ECB, data block-aligned
        raise NotImplementedError

    def decrypt(self, key: bytes, data: bytes) -> bytes:
        raise NotImplementedError

    def mac(self, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
        """PBOC MAC: 80-pad, CBC chain from ``iv``, leftmost 4 bytes."""
        raise NotImplementedError

    def session_key(self, key: bytes, derivation_input: bytes) -> bytes:
        raise NotImplementedError

    def tac_key(self, dtk: bytes) -> bytes:
        raise NotImplementedError

    def diversify(self, master: bytes, factor: bytes) -> bytes:
        raise NotImplementedError

    def line_iv(self, challenge: bytes) -> bytes:
        """IV for line-protection MACs: the challenge, zero-filled to a block."""
        return (challenge + bytes(self.block))[: self.block]

    def auth_block(self, challenge: bytes) -> bytes:
        """What EXTERNAL AUTHENTICATE encrypts: the challenge zero-filled to a block."""
        return (challenge + bytes(self.block))[: self.block]

    def sm_encrypt(self, key: bytes, plaintext: bytes) -> bytes:
        """Line-protection encryption: LD ‖ data, 80-padded only if unaligned, ECB."""
        return self.encrypt(key, pad80_if_needed(bytes([len(plaintext)]) + plaintext, self.block))

    def sm_decrypt(self, key: bytes, ciphertext: bytes) -> bytes:
        """Inverse of :meth:`sm_encrypt`; raises ``ValueError`` on a bad LD or length."""
        if not ciphertext or len(ciphertext) % self.block:
            raise ValueError("ciphertext is not a whole number of blocks")
        plain = self.decrypt(key, ciphertext)
        length = plain[0]
        if length > len(plain) - 1:
            raise ValueError("LD longer than the decrypted data")
        return plain[1 : 1 + length]


class DESAlgorithm(Algorithm):
    """Single DES (8-byte keys) and 2-key 3DES EDE (16-byte keys), PBOC style."""

    name = "3DES"
    block = 8

    def encrypt(self, key: bytes, data: bytes) -> bytes:
        return _ecb("des", key)[0].update(data)

    def decrypt(self, key: bytes, data: bytes) -> bytes:
        return _ecb("des", key)[1].update(data)

    def mac(self, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
        # Single-DES CBC chain with the left half; a 16-byte key finishes the
        # last block with D(KR) then E(KL) (ISO 9797-1 alg. 3, "retail MAC").
        enc = _ecb("des", key[:8])[0]
        out = _cbc_last_block(enc.update, data, iv or bytes(8), 8)
        if len(key) == 16:
            out = enc.update(_ecb("des", key[8:])[1].update(out))
        return out[:4]

    def session_key(self, key: bytes, derivation_input: bytes) -> bytes:
        return self.encrypt(key, derivation_input)

    def tac_key(self, dtk: bytes) -> bytes:
        return xor(dtk[:8], dtk[8:]) if len(dtk) == 16 else dtk

    def diversify(self, master: bytes, factor: bytes) -> bytes:
        inverted = bytes(b ^ 0xFF for b in factor)
        if len(master) == 8:
            return self.encrypt(master, factor)
        return self.encrypt(master, factor) + self.encrypt(master, inverted)


class SM4Algorithm(Algorithm):
    """SM4 (GB/T 32907). The purse-level rules are hypotheses (reference §4.6):

    * MAC = SM4-CBC over 80-padded data (16-byte blocks), IV zero or
      challenge ‖ zeros, leftmost 4 bytes;
    * session key = SM4(key, 8-byte PBOC input ‖ 00×8) — 16 bytes;
    * TAC key = the whole 16-byte DTK (no halves to XOR);
    * diversification = SM4(MK, F ‖ ¬F).
    """

    name = "SM4"
    block = 16

    def encrypt(self, key: bytes, data: bytes) -> bytes:
        return _ecb("sm4", key)[0].update(data)

    def decrypt(self, key: bytes, data: bytes) -> bytes:
        return _ecb("sm4", key)[1].update(data)

    def mac(self, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
        return _cbc_last_block(_ecb("sm4", key)[0].update, data, iv or bytes(16), 16)[:4]

    def session_key(self, key: bytes, derivation_input: bytes) -> bytes:
        return self.encrypt(key, (derivation_input + bytes(16))[:16])

    def tac_key(self, dtk: bytes) -> bytes:
        return dtk

    def diversify(self, master: bytes, factor: bytes) -> bytes:
        inverted = bytes(b ^ 0xFF for b in factor)
        return self.encrypt(master, factor + inverted)


DES = DESAlgorithm()
SM4 = SM4Algorithm()


def algorithm_for(alg_id: int | None, key: bytes) -> Algorithm:
    """Pick the algorithm of a key: alg-id ``04`` means SM4, otherwise DES/3DES by length.

    FMCOS sources disagree on whether ``00`` or ``01`` means 3DES (reference
    §4.5), so the card computes by key length and only echoes the stored id.
    """
    if alg_id == ALG_ID_SM4:
        return SM4
    return DES
