"""WRITE KEY (add, modify, secure update), key types, try counters and lock-out."""
import pytest

from cardos.crypto import DES, SM4
from cardos.terminal.secure import external_auth_cryptogram, protected_apdu

from .conftest import hx

K8 = "1122334455667788"
K16 = "00112233445566778899AABBCCDDEEFF"

EVERY_TYPE = [
    ("30", "F0 F0 01 00", K16), ("31", "F0 F0 01 00", K16), ("32", "F0 F0 01 00", K16),
    ("34", "F0 F0 01 00", K16), ("36", "F0 F0 FF 33", K16), ("37", "F0 F0 FF 33", K16),
    ("38", "F0 F0 FF 33", K16), ("39", "F0 F0 AA 33", K16), ("3A", "F0 EF 01 33", "123456"),
    ("3C", "F0 F0 01 00", K16), ("3D", "F0 F0 01 00", K16), ("3E", "F0 F0 02 01", K16),
    ("3F", "F0 F0 01 00", K16),
]


def add_key(t, kid, key_type, header, value, expect=0x9000):
    data = hx(key_type + header + value)
    assert t.sw(bytes((0x80, 0xD4, 0x01, kid, len(data))) + data) == expect


@pytest.fixture
def keyed(erased):
    """Erased MF with a key file (add right F0) whose master key 39/00 is K8."""
    erased.ok("80E0000007 3F 0200 01 F0 FF FF")
    add_key(erased, 0, "39", "F0 F0 AA 33", K8)
    return erased


def auth(t, key_hex, kid=0):
    challenge = t.challenge()
    return t.sw(bytes((0x00, 0x82, 0x00, kid, 0x08)) + external_auth_cryptogram(hx(key_hex), challenge))


def test_every_key_type_can_be_added(keyed):
    for key_type, header, value in EVERY_TYPE:
        add_key(keyed, 1, key_type, header, value)
    add_key(keyed, 1, "3E", "F0 F0 02 01", K16, expect=0x6A80)   # same type and id again
    add_key(keyed, 2, "3E", "F0 F0 03 01", K16)                   # same type, next id


def test_keys_work_after_being_written(keyed):
    add_key(keyed, 1, "39", "F0 F0 55 33", K16)
    assert auth(keyed, K16, kid=1) == 0x9000
    add_key(keyed, 0, "30", "F0 F0 01 00", K8)
    add_key(keyed, 0, "31", "F0 F0 01 00", K8)
    add_key(keyed, 0, "32", "F0 F0 01 00", K8)
    assert keyed.ok("0088000008 0102030405060708") == hx("178F59F8578E0D3F")   # reference §7 row 1
    assert keyed.ok("0088010008 178F59F8578E0D3F") == hx("0102030405060708")
    assert keyed.ok("0088020008 0102030405060708") == hx("A82A8CEB")


def test_sm4_key_by_algorithm_id(keyed):
    key = "0123456789ABCDEFFEDCBA9876543210"
    add_key(keyed, 0, "30", "F0 F0 01 04", key)                 # alg id 04 = SM4
    assert keyed.ok("0088000010" + key) == hx("681EDF34D206965E86B3E94F536E4246")  # row 12
    assert keyed.ok("0088000010" + key) == SM4.encrypt(hx(key), hx(key))
    add_key(keyed, 1, "30", "F0 F0 01 04", K8, expect=0x6700)   # SM4 keys are 16 bytes


def test_modify_key(keyed):
    add_key(keyed, 1, "39", "F0 F0 55 33", K16)
    data = hx("39 F0 F0 55 33" + "AB" * 16)
    keyed.ok(bytes((0x80, 0xD4, 0x39, 0x01, len(data))) + data)
    assert auth(keyed, "AB" * 16, kid=1) == 0x9000
    assert keyed.sw(bytes((0x80, 0xD4, 0x39, 0x02, len(data))) + data) == 0x6A88   # no such key
    assert keyed.sw(bytes((0x80, 0xD4, 0x3E, 0x01, len(data))) + data) == 0x6A86   # P1 ≠ type
    short = hx("39 F0 F0 55 33" + K8)
    assert keyed.sw(bytes((0x80, 0xD4, 0x39, 0x01, len(short))) + short) == 0x6700  # length changes


def test_write_key_length_and_parameter_errors(keyed):
    add_key(keyed, 1, "39", "F0 F0 AA 33", "11223344556677", expect=0x6700)
    add_key(keyed, 1, "3A", "F0 EF 01 33", "112233445566778899", expect=0x6700)
    add_key(keyed, 1, "25", "F0 F0 AA 33", K8, expect=0x6A80)     # unknown key type
    assert keyed.sw("80D40100 04 39F0F0AA") == 0x6700
    assert keyed.sw("80D401FF0D 39 F0 F0 AA 33" + K8) == 0x6A86


def test_key_file_full(erased):
    erased.ok("80E0000007 3F 0020 01 F0 FF FF")   # 32 bytes: one 16-byte key (24) fits
    add_key(erased, 0, "39", "F0 F0 AA 33", K16)
    add_key(erased, 1, "39", "F0 F0 AA 33", K8, expect=0x6A84)


def test_no_key_file(erased):
    add_key(erased, 0, "39", "F0 F0 AA 33", K8, expect=0x6A82)
    assert auth(erased, K8) == 0x6A82


def test_add_and_change_rights(erased):
    erased.ok("80E0000007 3F 0200 01 11 FF FF")    # add-key right: exactly state 1
    add_key(erased, 0, "39", "F0 F0 11 33", K8)     # still free (empty on entry)
    add_key(erased, 1, "39", "F0 22 11 33", K16)    # change right: exactly state 2
    erased.ok("00A40000023F00")                     # re-enter: rights enforced
    add_key(erased, 2, "39", "F0 F0 AA 33", K8, expect=0x6982)
    assert auth(erased, K8) == 0x9000               # state 1
    add_key(erased, 2, "39", "F0 F0 AA 33", K8)
    data = hx("39 F0 22 11 33" + "CD" * 16)
    assert erased.sw(bytes((0x80, 0xD4, 0x39, 0x01, len(data))) + data) == 0x6982


def test_external_auth_try_counter_and_lockout(keyed):
    add_key(keyed, 1, "39", "F0 F0 55 33", K16)
    assert auth(keyed, "00" * 16, kid=1) == 0x63C2
    assert auth(keyed, "00" * 16, kid=1) == 0x63C1
    assert auth(keyed, K16, kid=1) == 0x9000          # success restores the counter
    for expected in (0x63C2, 0x63C1, 0x63C0):
        assert auth(keyed, "00" * 16, kid=1) == expected
    assert auth(keyed, K16, kid=1) == 0x6983          # blocked, even with the right key
    keyed.card.power_off()
    keyed.card.power_on()
    assert auth(keyed, K16, kid=1) == 0x6983          # the counter survived the power cycle
    data = hx("39 F0 F0 55 33" + K16)
    assert keyed.sw(bytes((0x80, 0xD4, 0x39, 0x01, len(data))) + data) == 0x6983


def test_external_auth_errors(keyed):
    challenge = keyed.challenge()
    assert keyed.sw("0082000007 00000000000000") == 0x6700
    assert keyed.sw("0082000508" + external_auth_cryptogram(hx(K8), challenge).hex()) == 0x6A88
    assert keyed.sw("0082010008 0000000000000000") == 0x6A86
    assert keyed.sw("0082000008" + external_auth_cryptogram(hx(K8), challenge).hex()) == 0x6984  # no challenge
    add_key(keyed, 2, "39", "11 F0 55 33", K8)          # use right: exactly state 1
    keyed.ok("00A40000023F00")
    assert auth(keyed, K8, kid=2) == 0x6982


def test_challenge_is_single_use_and_dies_with_power(keyed):
    challenge = keyed.challenge()
    cryptogram = external_auth_cryptogram(hx(K8), challenge)
    assert keyed.sw(b"\x00\x82\x00\x00\x08" + cryptogram) == 0x9000
    assert keyed.sw(b"\x00\x82\x00\x00\x08" + cryptogram) == 0x6984     # used up
    challenge = keyed.challenge()
    keyed.ok("00A40000023F00")                                          # another command between
    assert keyed.sw(b"\x00\x82\x00\x00\x08" + external_auth_cryptogram(hx(K8), challenge)) == 0x6984
    challenge = keyed.challenge()
    assert keyed.sw("00A400") == 0x6700                                 # even a malformed command uses it
    assert keyed.sw(b"\x00\x82\x00\x00\x08" + external_auth_cryptogram(hx(K8), challenge)) == 0x6984
    challenge = keyed.challenge()
    keyed.card.power_off()
    assert keyed.sw(b"\x00\x82\x00\x00\x08" + external_auth_cryptogram(hx(K8), challenge)) == 0x6984


def test_get_challenge_lengths(keyed):
    assert len(keyed.ok("0084000004")) == 4
    assert len(keyed.ok("0084000008")) == 8
    assert keyed.sw("0084000005") == 0x6700
    assert keyed.sw("0084000000") == 0x6700
    assert keyed.sw("00840000") == 0x6700
    assert keyed.sw("0084000104") == 0x6A86


def test_internal_authenticate_errors(keyed):
    assert keyed.sw("0088000008 0102030405060708") == 0x6A88
    add_key(keyed, 0, "30", "11 F0 01 00", K8)
    keyed.ok("00A40000023F00")
    assert keyed.sw("0088000008 0102030405060708") == 0x6982
    assert keyed.sw("0088030008 0102030405060708") == 0x6A86
    assert keyed.sw("00880000") == 0x6700


def test_secure_key_update_needs_cla_84_and_a_good_mac(erased):
    t = erased
    t.ok("80E0000007 3F 0200 01 F0 FF FF")
    master = hx("FF" * 8)
    t.ok("80D401000D 39 F0 F0 AA 33" + "FF" * 8)
    plain = hx("F9 F0 F0 AA 33" + K8)
    assert t.sw(bytes((0x80, 0xD4, 0x01, 0x01, len(plain))) + plain) == 0x6987    # secure key in plain
    challenge = t.challenge()
    good = protected_apdu(0x84, 0xD4, 0x01, 0x01, plain, master, challenge, encrypt=True)
    bad = good[:-1] + bytes((good[-1] ^ 1,))
    assert t.sw(bad) == 0x9302                                                   # wrong MAC
    assert t.sw(bad) == 0x6984                                                   # challenge used up
    challenge = t.challenge()
    t.ok(protected_apdu(0x84, 0xD4, 0x01, 0x01, plain, master, challenge, encrypt=True))
    assert auth(t, K8, kid=1) == 0x9000
    modify = hx("39 F0 F0 AA 33" + "CC" * 8)
    assert t.sw(bytes((0x80, 0xD4, 0x39, 0x01, len(modify))) + modify) == 0x6987  # modify in plain
    challenge = t.challenge()
    t.ok(protected_apdu(0x84, 0xD4, 0x39, 0x01, modify, master, challenge, encrypt=True))
    assert auth(t, "CC" * 8, kid=1) == 0x9000


def test_secure_write_key_mac_failures_count_against_the_master(keyed):
    plain = hx("39 F0 F0 AA 33" + K16)
    for expected in (0x9302, 0x9302, 0x9302):
        challenge = keyed.challenge()
        apdu = protected_apdu(0x84, 0xD4, 0x01, 0x05, plain, hx("00" * 8), challenge, encrypt=True)
        assert keyed.sw(apdu) == expected
    challenge = keyed.challenge()
    apdu = protected_apdu(0x84, 0xD4, 0x01, 0x05, plain, hx(K8), challenge, encrypt=True)
    assert keyed.sw(apdu) == 0x6983                                              # master key blocked


def test_des_single_key_mac_is_plain_cbc():
    assert DES.mac(hx(K8), hx("0102030405060708")) == hx("A82A8CEB")
