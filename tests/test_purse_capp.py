"""Composite (CAPP, 复合消费) purchase: INITIALIZE FOR CAPP PURCHASE, UPDATE CAPP DATA CACHE, DEBIT."""
import pytest

from cardos.apdu import build
from cardos.sample import SampleKeys
from cardos.terminal.secure import protected_apdu

from .conftest import hx
from .purse_util import VERIFY_PIN, authenticate, mac, sample_card, session_key, tac_of

K = SampleKeys()
TERM = "112233445566"
STAMP = "20260501 083000"
OLD = hx("AA 29 00") + bytes(40)  # tag AA, 41 bytes: lock flag + 40 bytes of transit data
NEW = hx("AA 29 00") + bytes(range(1, 41))
OTHER = hx("BB 03 00 01 02")


def _debit(t, amount="00000010", random="C0FFEE01", counter="0000", tsn="0000002A", tx_type="09"):
    sk = session_key(K.purchase, f"{random}{counter}{tsn[4:]}")
    return f"805401000F{tsn}{STAMP}{mac(sk, f'{amount}{tx_type}{TERM}{STAMP}').hex()}08", sk


@pytest.fixture
def capp():
    """Sample card, EP loaded with 10.00, two composite records in 001A (tags AA, BB)."""
    card, t, _ = sample_card()
    t.randoms.push("11223344")
    t.ok(f"805000020B0100000064{TERM}10")
    sk = session_key(K.load, "11223344 0000 8000")
    t.ok(f"805200000B{STAMP}{mac(sk, f'00000064 02 {TERM} {STAMP}').hex()}04")
    t.ok(build(0x00, 0xE2, 0x00, 0xD0, OLD))
    t.ok(build(0x00, 0xE2, 0x00, 0xD0, OTHER))
    return card, t


def _init(t, amount="00000010", random="C0FFEE01"):
    t.randoms.push(random)
    return t.ok(f"805003020B01{amount}{TERM}0F")


def test_capp_purchase_commits_balance_log_and_composite_record(capp):
    _, t = capp
    assert _init(t) == hx("00000064 0000 000000 01 00 C0FFEE01")
    t.ok(build(0x80, 0xDC, 0xAA, 0xD0, NEW))  # P1 = tag AA, P2 = SFI 1A, mode 000
    apdu, sk = _debit(t)
    response = t.ok(apdu)
    tac = tac_of(K.tac, f"00000010 09 {TERM} 0000002A {STAMP}")
    assert response == tac + mac(sk, "00000010")
    assert t.ok("805C000204") == hx("00000054")
    assert t.ok("00B201D400") == NEW  # record 1 of 001A
    assert t.ok("00B202D400") == OTHER
    t.ok(VERIFY_PIN)
    assert t.ok("00B201C417") == hx(f"0001 000000 00000010 09 {TERM}") + hx(STAMP)
    assert t.ok("805A000902000008") == mac(sk, "00000010") + tac


def test_several_cached_records_by_tag_and_number_last_wins(capp):
    _, t = capp
    _init(t)
    t.ok(build(0x80, 0xDC, 0xAA, 0xD0, NEW[:-1] + b"\x77"))
    t.ok(build(0x80, 0xDC, 0x02, 0xD4, hx("BB 03 09 08 07")))  # record number 2, mode 100
    t.ok(build(0x80, 0xDC, 0x01, 0xD4, NEW))  # record 1 again: replaces the first update
    t.ok(_debit(t)[0])
    assert t.ok("00B201D400") == NEW
    assert t.ok("00B202D400") == hx("BB 03 09 08 07")


def test_capp_purchase_without_cache_update_is_a_type_09_debit(capp):
    _, t = capp
    _init(t, "00000000")  # transit entry: amount 0
    t.ok(_debit(t, "00000000")[0])
    assert t.ok("805C000204") == hx("00000064")
    assert t.ok("00B201D400") == OLD


def test_cyclic_composite_file_gets_the_record_appended(capp):
    _, t = capp
    authenticate(t, K.app_master)  # the ADF's create right (AA)
    t.ok("80E0001E07 2E 03 30 F0 F0 FF FF")  # 3 × 48-byte transit process log
    first = bytes(range(48))
    t.ok(build(0x00, 0xE2, 0x00, 0xF0, first))
    _init(t)
    t.ok(build(0x80, 0xDC, 0x00, 0xF0, bytes(48)))
    t.ok(_debit(t)[0])
    assert t.ok("00B201F400") == bytes(48)
    assert t.ok("00B202F400") == first


def test_failed_debit_writes_no_cached_record(capp):
    _, t = capp
    _init(t)
    t.ok(build(0x80, 0xDC, 0xAA, 0xD0, NEW))
    assert t.sw(f"805401000F0000002A{STAMP}0000000008") == 0x9302
    assert t.ok("00B201D400") == OLD
    assert t.ok("805C000204") == hx("00000064")


def test_power_loss_drops_the_cache(capp):
    card, t = capp
    _init(t)
    t.ok(build(0x80, 0xDC, 0xAA, 0xD0, NEW))
    card.power_on()
    t.ok("00A4040009A00000000386980701")
    assert t.sw(_debit(t)[0]) == 0x6901
    assert t.ok("00B201D400") == OLD


def test_update_capp_data_cache_needs_a_capp_session(capp):
    _, t = capp
    assert t.sw(build(0x80, 0xDC, 0xAA, 0xD0, NEW)) == 0x6901
    t.randoms.push("C0FFEE01")
    t.ok(f"805001020B0100000010{TERM}0F")  # an ordinary purchase session
    assert t.sw(build(0x80, 0xDC, 0xAA, 0xD0, NEW)) == 0x6901


@pytest.mark.parametrize("apdu, sw", [
    (build(0x80, 0xDC, 0xAA, 0xE0, NEW), 0x6A82),                # SFI 1C: no such file
    (build(0x80, 0xDC, 0x01, 0xAC, bytes(30)), 0x6981),          # SFI 15: binary file
    (build(0x80, 0xDC, 0xCC, 0xD0, hx("CC 01 00")), 0x6A83),     # no record with tag CC
    (build(0x80, 0xDC, 0x05, 0xD4, NEW), 0x6A83),                # no record 5
    (build(0x80, 0xDC, 0xAA, 0xD0, NEW[:-1]), 0x6A80),           # TLV length byte wrong
    (build(0x80, 0xDC, 0xAA, 0xD0, hx("AA 28 00") + bytes(39)), 0x6700),  # record length changes
    (build(0x80, 0xDC, 0x02, 0xD4, hx("CC 03 00 01 02")), 0x6A80),  # the record would change its tag
    (build(0x80, 0xDC, 0xAA, 0xD1, NEW), 0x6A86),                # mode 001
    (build(0x80, 0xDC, 0x00, 0xC0, bytes(23)), 0x6982),          # the log 0018: write right EF
    (build(0x84, 0xDC, 0xAA, 0xD0, NEW + bytes(4)), 0x6900),     # CLA 84 on an unprotected file
])
def test_update_capp_data_cache_errors_end_the_session(capp, apdu, sw):
    _, t = capp
    _init(t)
    assert t.sw(apdu) == sw
    assert t.sw(_debit(t)[0]) == 0x6901
    assert t.ok("00B201D400") == OLD


def test_protected_composite_file_takes_a_mac_over_the_capp_random(capp):
    _, t = capp
    authenticate(t, K.app_master)
    t.ok("80E0001B07 AC 0040 F0 F0 FF FF")  # variable records, writes MAC'd with 36/00
    challenge = t.challenge()
    t.ok(protected_apdu(0x04, 0xE2, 0x00, 0xD8, OTHER, K.app_line, challenge))
    new = hx("BB 03 00 0A 0B")
    # without line protection
    _init(t)
    assert t.sw(build(0x80, 0xDC, 0xBB, 0xD8, new)) == 0x6987
    # wrong MAC (IV = a challenge instead of the CAPP random)
    _init(t)
    assert t.sw(protected_apdu(0x84, 0xDC, 0xBB, 0xD8, new, K.app_line, hx("00000000"))) == 0x6988
    # right MAC: IV = the random of INITIALIZE FOR CAPP PURCHASE ‖ 00000000
    _init(t, random="0BADCAFE")
    t.ok(protected_apdu(0x84, 0xDC, 0xBB, 0xD8, new, K.app_line, hx("0BADCAFE")))
    t.ok(_debit(t, random="0BADCAFE")[0])
    assert t.ok("00B201DC00") == new
