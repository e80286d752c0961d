"""Published vectors of reference §7 (rows 1, 2, 9, 10, 11, 12) as known-answer tests,
the crypto ones directly and the card ones through APDUs."""
from cardos import Card
from cardos.crypto import DES, SM4
from cardos.sample import TRANSPORT_KEY

from .conftest import Terminal, hx


def test_row1_des_encrypt_and_mac():
    key = hx("1122334455667788")
    assert DES.encrypt(key, hx("0102030405060708")) == hx("178F59F8578E0D3F")
    assert DES.mac(key, hx("0102030405060708")) == hx("A82A8CEB")


def test_row2_external_auth_cryptogram():
    assert DES.encrypt(hx("0102030405060708"), hx("BB83BFF300000000")) == hx("74B0047DD681D96C")


def test_row9_key_diversification():
    assert DES.diversify(hx("00112233445566778899AABBCCDDEEFF"), hx("1122334455667788")) == \
        hx("496BD7A3513644533100B54E71196528")


def test_row10_ld_encryption_and_retail_mac():
    mk = hx("00112233445566778899AABBCCDDEEFF")
    ct = DES.sm_encrypt(mk, hx("220000") + mk)
    assert ct == hx("DCC0BB5793ABFCA2CA8C1624822F6E01A86A0B5CBED191DD")
    assert DES.mac(mk, hx("84D400001C") + ct, hx("5D72B3FD00000000")) == hx("8A9D4ADB")


def test_row11_secure_write_key_cryptograms():
    master = hx("FF" * 8)
    ct = DES.sm_encrypt(master, hx("F9F0F0AAFF1122334455667788"))
    assert ct == hx("7C87BC23140021B3AFEA67E6359DDCFE")
    assert DES.mac(master, hx("84D4010214") + ct, hx("4C45BAB900000000")) == hx("D7C943F6")
    assert DES.mac(master, hx("84D4390114") + ct, hx("EF36481800000000")) == hx("9095E4E1")
    ct2 = DES.sm_encrypt(master, hx("39F0F0AAFF1122334455667788"))
    assert ct2 == hx("7E65DE142F66CA41AFEA67E6359DDCFE")
    assert DES.mac(master, hx("84D4F90214") + ct2, hx("C0B3549C00000000")) == hx("012EF5F5")


def test_row12_sm4_primitive():
    key = hx("0123456789ABCDEFFEDCBA9876543210")
    assert SM4.encrypt(key, key) == hx("681EDF34D206965E86B3E94F536E4246")


def _challenges(*values):
    queue = [hx(v) for v in values]
    return lambda n: queue.pop(0)[:n]


def test_row2_through_apdus():
    """EXTERNAL AUTHENTICATE with the manual's key and challenge BB83BFF3."""
    card = Card.blank()
    t = Terminal(card)
    card.set_random_source(_challenges("FFFFFFFF", "BB83BFF3"))
    t.ok("00A40000023F00 00")
    t.challenge()
    t.ok("0082000008" + DES.encrypt(TRANSPORT_KEY, hx("FFFFFFFF00000000")).hex())
    t.ok("800E000000")
    t.ok("80E00000073F005001F0FFFF")
    t.ok("80D401000D 39 F0 F0 11 33 0102030405060708")
    card.power_on()
    assert t.challenge() == hx("BB83BFF3")
    t.ok("008200000874B0047DD681D96C")


def test_row11_through_apdus():
    """B-WK: add key F9/02 then modify 39/01 and F9/02 with CLA 84 under master FF×8."""
    card = Card.blank()
    t = Terminal(card)
    card.set_random_source(_challenges("00000000", "4C45BAB9", "EF364818", "C0B3549C"))
    t.ok("00A40000023F00 00")
    t.challenge()
    t.ok("0082000008" + DES.encrypt(TRANSPORT_KEY, bytes(8)).hex())
    t.ok("800E000000")
    t.ok("80E00000073F005001F0FFFF")
    t.ok("80D401000D39F0F0AAFF" + "FF" * 8)  # master key 39/00 = FF×8
    t.ok("80D401010D39F0F0AAFF" + "00" * 8)  # key 39/01 to modify later
    assert t.challenge() == hx("4C45BAB9")
    t.ok("84D4010214 7C87BC23140021B3AFEA67E6359DDCFE D7C943F6")
    assert t.challenge() == hx("EF364818")
    t.ok("84D4390114 7C87BC23140021B3AFEA67E6359DDCFE 9095E4E1")
    assert t.challenge() == hx("C0B3549C")
    t.ok("84D4F90214 7E65DE142F66CA41AFEA67E6359DDCFE 012EF5F5")
