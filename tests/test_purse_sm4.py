"""SM4 purse keys (algorithm id 04): the §4.6 hypotheses, checked against an independent SM4
computation from ``cryptography`` (no published SM4 purse vectors exist), and a whole SM4
card driven by the terminal side with diversified keys."""
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cardos.crypto import SM4
from cardos.terminal import purse as tx
from cardos.terminal.host import LoadHost
from cardos.terminal.keys import IssuerKeys
from cardos.terminal.psam import PSAM
from cardos.terminal.settle import settle

from .conftest import hx
from .purse_util import SERIAL, WHEN, built_card, key_record

TERM = "0000000000A1"
DLK = hx("0123456789ABCDEFFEDCBA9876543210")
DPK = hx("00112233445566778899AABBCCDDEEFF")
DTK = hx("FFEEDDCCBBAA99887766554433221100")
DTK_DES = hx("0102030405060708090A0B0C0D0E0F10")


def _sm4_ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def _sm4_mac(key: bytes, data: bytes) -> bytes:
    padded = data + b"\x80" + bytes((15 - len(data) % 16) % 16)
    enc = Cipher(algorithms.SM4(key), modes.CBC(bytes(16))).encryptor()
    return (enc.update(padded) + enc.finalize())[-16:][:4]


def _card(tac_alg: int = 0x04, dtk: bytes = DTK, load: bytes = DLK, purchase: bytes = DPK):
    keys = {(0x34, 0): key_record(0x34, dtk, b4=tac_alg),
            (0x3F, 1): key_record(0x3F, load, b3=0x02, b4=0x04),
            (0x3E, 1): key_record(0x3E, purchase, b3=0x03, b4=0x04)}
    return built_card(keys=keys, ed=False)


def test_sm4_load_follows_the_hypotheses():
    _, t = _card()
    t.randoms.push("0A0B0C0D")
    init = t.ok(f"805000020B0100000100{TERM}10")
    sk = _sm4_ecb(DLK, hx("0A0B0C0D 0000 8000") + bytes(8))  # input ‖ 00×8 → 16-byte session key
    assert init == hx("00000000 0000 02 04 0A0B0C0D") + _sm4_mac(sk, hx(f"00000000 00000100 02 {TERM}"))
    stamp = "20260503 120000"
    tac = t.ok(f"805200000B{stamp}{_sm4_mac(sk, hx(f'00000100 02 {TERM} {stamp}')).hex()}04")
    assert tac == _sm4_mac(DTK, hx(f"00000100 0000 00000100 02 {TERM} {stamp}"))  # whole DTK, no XOR


def test_sm4_purchase_follows_the_hypotheses():
    _, t = _card()
    t.randoms.push("0A0B0C0D")
    t.ok(f"805000020B0100000100{TERM}10")
    sk = _sm4_ecb(DLK, hx("0A0B0C0D 0000 8000") + bytes(8))
    stamp = "20260503 120000"
    t.ok(f"805200000B{stamp}{_sm4_mac(sk, hx(f'00000100 02 {TERM} {stamp}')).hex()}04")
    t.randoms.push("11111111")
    assert t.ok(f"805001020B0100000001{TERM}0F") == hx("00000100 0000 000000 03 04 11111111")
    sk = _sm4_ecb(DPK, hx("11111111 0000 0009") + bytes(8))
    mac1 = _sm4_mac(sk, hx(f"00000001 06 {TERM} {stamp}"))
    response = t.ok(f"805401000F 00000009 {stamp} {mac1.hex()} 08")
    assert response == _sm4_mac(DTK, hx(f"00000001 06 {TERM} 00000009 {stamp}")) + _sm4_mac(sk, hx("00000001"))


def test_algorithm_is_per_key_sm4_purse_key_with_a_3des_tac_key():
    from cardos.crypto import DES
    _, t = _card(tac_alg=0x00, dtk=DTK_DES)
    t.randoms.push("0A0B0C0D")
    t.ok(f"805000020B0100000100{TERM}10")
    sk = _sm4_ecb(DLK, hx("0A0B0C0D 0000 8000") + bytes(8))
    stamp = "20260503 120000"
    tac = t.ok(f"805200000B{stamp}{_sm4_mac(sk, hx(f'00000100 02 {TERM} {stamp}')).hex()}04")
    assert tac == DES.mac(DES.tac_key(DTK_DES), hx(f"00000100 0000 00000100 02 {TERM} {stamp}"))


def test_sm4_card_with_diversified_keys_through_the_terminal():
    masters = IssuerKeys(load=hx("11" * 16), purchase=hx("22" * 16), tac=hx("33" * 16), algorithm="SM4")
    card_keys = {role: SM4.diversify(masters.master(role), SERIAL) for role in ("load", "purchase", "tac")}
    assert card_keys["tac"] == SM4.encrypt(hx("33" * 16), SERIAL + bytes(b ^ 0xFF for b in SERIAL))
    card, _ = _card(dtk=card_keys["tac"], load=card_keys["load"], purchase=card_keys["purchase"])
    assert tx.select_application(card) == SERIAL
    records = [tx.load(card, LoadHost(masters), 5000, terminal=hx("000000000002"), when=WHEN),
               tx.purchase(card, PSAM(masters, hx(TERM)), 1234, when=WHEN)]
    assert tx.get_balance(card) == 5000 - 1234
    report = settle(records, masters)
    assert report.ok and len(report.accepted) == 2
