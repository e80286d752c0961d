"""The suite's own terminal-side cryptography against the published vectors of reference §7.

The suite computes every cryptogram, MAC1/MAC2/TAC and line-protection MAC it sends or checks
with ``cardos.crypto``; these tests prove those computations against independent vectors, so a
card is never judged by a formula the suite got wrong. No card is involved."""
import pytest

from cardos.crypto import DES, SM4

pytestmark = [pytest.mark.family("suite self-check"), pytest.mark.command("terminal crypto (reference §7)")]
H = bytes.fromhex


def test_row1_des_and_mac():
    assert DES.encrypt(H("1122334455667788"), H("0102030405060708")) == H("178F59F8578E0D3F")
    assert DES.mac(H("1122334455667788"), H("0102030405060708")) == H("A82A8CEB")


def test_row2_external_authentication():
    assert DES.encrypt(H("0102030405060708"), H("BB83BFF3") + bytes(4)) == H("74B0047DD681D96C")


def test_row3_load_session_key_and_macs():
    sk = DES.session_key(H("11223344556677888877665544332211"), H("11223344") + H("0000") + H("8000"))
    assert sk == H("9B1D924E05595603")
    assert DES.mac(sk, H("00000000 00001000 01 001122334455")) == H("2988AE5A")
    assert DES.mac(sk, H("00001000 01 001122334455 20111221 214822")) == H("3A845BF0")


def test_row4_load_with_tac():
    sk = DES.session_key(H("3F01") * 8, H("06B825D7") + H("0017") + H("8000"))
    assert sk == H("6E76E8541E217D9A")
    assert DES.mac(sk, H("0000001A 00000001 02 112233445566")) == H("684C81CE")
    assert DES.mac(sk, H("00000001 02 112233445566 20170310 110734")) == H("9C8A0625")
    tac_key = DES.tac_key(H("34") * 16)
    assert DES.mac(tac_key, H("0000001B 0017 00000001 02 112233445566 20170310 110734")) == H("16EAD516")


def test_row7_purchase():
    dpk = H("00112233445566778899AABBCCDDEEFF")
    sk = DES.session_key(dpk, H("584633C9") + H("0000") + H("0000"))
    assert sk == H("C08346DF9F1D457A")
    assert DES.mac(sk, H("00000001 06 001122334455 20161216 134600")) == H("D45737C5")
    assert DES.mac(sk, H("00000001")) == H("66B54A6B")
    assert DES.mac(DES.tac_key(dpk), H("00000001 06 001122334455 00000000 20161216 134600")) == H("8AF270DC")


def test_row8_load_tac():
    sk = DES.session_key(H("3F3F3F3F3F3F3F3F1122334455667788"), H("4E066548") + H("0000") + H("8000"))
    assert sk == H("3B75C79CFA8C2327")
    assert DES.mac(sk, H("00000000 00000010 02 666666666666")) == H("0D39ADBB")
    assert DES.mac(sk, H("00000010 02 666666666666 20240411 212121")) == H("097E98FE")
    tac_key = DES.tac_key(H("34343434343434341122334455667788"))
    assert tac_key == H("25160770615243BC")
    assert DES.mac(tac_key, H("00000010 0000 00000010 02 666666666666 20240411 212121")) == H("A802863E")


def test_row9_diversification():
    assert DES.diversify(H("00112233445566778899AABBCCDDEEFF"), H("1122334455667788")) == \
        H("496BD7A3513644533100B54E71196528")


def test_row10_and_row11_line_protection():
    key = H("00112233445566778899AABBCCDDEEFF")
    ct = DES.sm_encrypt(key, H("22 0000") + key)  # LD ‖ data, 80-padded when unaligned, 3DES-ECB
    assert ct == H("DCC0BB5793ABFCA2CA8C1624822F6E01A86A0B5CBED191DD")
    assert DES.mac(key, H("84D400001C") + ct, H("5D72B3FD00000000")) == H("8A9D4ADB")
    master = H("FF") * 8
    ct = DES.sm_encrypt(master, H("F9F0F0AAFF1122334455667788"))
    assert ct == H("7C87BC23140021B3AFEA67E6359DDCFE")
    assert DES.mac(master, H("84D4010214") + ct, H("4C45BAB900000000")) == H("D7C943F6")


def test_row12_sm4():
    key = H("0123456789ABCDEFFEDCBA9876543210")
    assert SM4.encrypt(key, key) == H("681EDF34D206965E86B3E94F536E4246")
