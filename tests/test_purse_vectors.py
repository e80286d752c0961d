"""Reference §7 rows 3-8 reproduced end to end through ``Card.transmit``.

Each card is personalized through APDUs (the sample issuance with the
vector's keys as the card's keys), the card's random is forced to the
published value, and the published MAC1 / MAC2 / TAC / record must appear
byte-exact in the card's responses.
"""
from cardos.crypto import DES
from cardos.terminal.host import LoadHost
from cardos.terminal.keys import IssuerKeys
from cardos.terminal.purse import load

from .conftest import hx
from .purse_util import VERIFY_PIN, WHEN, sample_card, session_key, tac_of


def test_row3_ncu_ed_load():
    dlk = hx("11223344556677888877665544332211")
    _, t, sample = sample_card(load=dlk)
    t.randoms.push("11223344")
    t.ok(VERIFY_PIN)  # the ED's use right (F1) needs the PIN
    # INITIALIZE FOR LOAD, ED: key 01, amount 1000, terminal 001122334455
    assert t.ok("805000010B 01 00001000 001122334455 10") == hx("00000000 0000 01 00 11223344 2988AE5A")
    assert session_key(dlk, "11223344 0000 8000") == hx("9B1D924E05595603")
    tac = t.ok("805200000B 20111221 214822 3A845BF0 04")
    assert tac == tac_of(sample.keys.tac, "00001000 0000 00001000 01 001122334455 20111221 214822")
    assert t.ok("805C000104") == hx("00001000")


def test_row4_bjava_load_after_23_transactions():
    dlk, dtk = hx("3F01" * 8), hx("34" * 16)
    card, t, sample = sample_card(load=dlk, tac=dtk)
    host = LoadHost(IssuerKeys(load=dlk, tac=dtk, diversify=False))
    for amount in [1] * 22 + [4]:  # online counter 0017, balance 1A
        load(card, host, amount, terminal=hx("000000000001"), when=WHEN, serial=sample.serial)
    t.randoms.push("06B825D7")
    assert t.ok("805000020B 01 00000001 112233445566 10") == hx("0000001A 0017 01 00 06B825D7 684C81CE")
    assert session_key(dlk, "06B825D7 0017 8000") == hx("6E76E8541E217D9A")
    assert t.ok("805200000B201703101107349C8A0625 04") == hx("16EAD516")  # TAC key = 0 (equal halves)
    assert t.ok("805C000204") == hx("0000001B")


def test_rows5_to_7_bdeng_load_then_purchase():
    k = hx("00112233445566778899AABBCCDDEEFF")  # DLK = DPK = DTK
    _, t, _ = sample_card(load=k, purchase=k, tac=k)
    t.randoms.push("E0B84748", "C903814D", "584633C9")
    # row 5: a first INITIALIZE FOR LOAD, abandoned
    assert t.ok("805000020B 01 00002000 001122334455 10") == hx("00000000 0000 01 00 E0B84748 EA411F90")
    assert session_key(k, "E0B84748 0000 8000") == hx("7C45FBFB5B3A68F5")
    # row 6: INITIALIZE again (new random, same counter), CREDIT → TAC
    assert t.ok("805000020B 01 00002000 001122334455 10") == hx("00000000 0000 01 00 C903814D 03976C22")
    assert session_key(k, "C903814D 0000 8000") == hx("11FDF264E8AEEFA3")
    assert t.ok("805200000B 20161216 105800 8AFA5718 04") == hx("FA00066D")
    assert t.ok("805C000204") == hx("00002000")
    # row 7: purchase of 1, TSN 00000000, type 06
    assert t.ok("805001020B 01 00000001 001122334455 0F") == hx("00002000 0000 000000 01 00 584633C9")
    assert session_key(k, "584633C9 0000 0000") == hx("C08346DF9F1D457A")
    assert t.ok("805401000F0000000020161216134600D45737C5 08") == hx("8AF270DC 66B54A6B")
    assert t.ok("805C000204") == hx("00001FFF")
    # the proofs of both completed transactions stay available
    assert t.ok("805A000202 0000 08") == hx("8AFA5718 FA00066D")
    assert t.ok("805A000602 0000 08") == hx("66B54A6B 8AF270DC")


def test_row8_brobur_load_and_detail_record():
    dlk, dtk = hx("3F3F3F3F3F3F3F3F1122334455667788"), hx("34343434343434341122334455667788")
    _, t, _ = sample_card(load=dlk, tac=dtk)
    t.randoms.push("4E066548")
    assert t.ok("805000020B 01 00000010 666666666666 10") == hx("00000000 0000 01 00 4E066548 0D39ADBB")
    assert session_key(dlk, "4E066548 0000 8000") == hx("3B75C79CFA8C2327")
    assert DES.tac_key(dtk) == hx("25160770615243BC")
    assert t.ok("805200000B 20240411 212121 097E98FE 04") == hx("A802863E")
    # the 23-byte record in 0018 (SFI 18, record 1 = newest, read right F1), counter post-increment
    t.ok(VERIFY_PIN)
    assert t.ok("00B201C417") == hx("0001 000000 00000010 02 666666666666 20240411 212121")
