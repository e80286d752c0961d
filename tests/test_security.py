"""Security: access rights, PIN commands, line protection, application and card blocking."""
import pytest

from cardos import Card, CardConfig
from cardos.crypto import DES
from cardos.sample import CITY_AID, issue_sample
from cardos.security import right_satisfied
from cardos.terminal.secure import protected_apdu

from .conftest import Terminal, hx

SELECT_ADF = "00A4040009A0000000038698070100"


@pytest.mark.parametrize("right, mf, df, allowed", [
    (0x00, 0, 0, True), (0x01, 0, 5, False), (0x01, 1, 0, True),   # X = 0: MF register ≥ Y
    (0xF0, 0, 0, True), (0xF1, 0, 0, False), (0xF1, 0, 1, True),
    (0x53, 0, 2, False), (0x53, 0, 3, True), (0x53, 0, 5, True), (0x53, 0, 6, False),
    (0x22, 0, 2, True), (0x22, 0, 3, False),                          # X = Y: exactly
    (0xEF, 0, 15, False), (0xEF, 15, 15, False),                      # X < Y: never
])
def test_access_right_rule(right, mf, df, allowed):
    assert right_satisfied(right, mf, df) is allowed


@pytest.fixture
def app():
    card = Card.blank()
    sample = issue_sample(card.transmit)
    card.power_on()
    t = Terminal(card)
    t.ok(SELECT_ADF)
    t.keys = sample.keys
    return t


# -- PIN --------------------------------------------------------------------------

def test_verify_raises_the_security_state(app):
    assert app.sw("00B201C400") == 0x6982     # 0018 needs state ≥ 1
    app.ok("0020000003123456")
    assert app.sw("00B201C400") == 0x6A83                         # allowed now; no record yet
    app.ok("00A40000023F00")
    app.ok(SELECT_ADF)
    assert app.sw("00B201C400") == 0x6982                         # state dropped on DF change


def test_verify_counts_failures_and_blocks(app):
    assert app.sw("0020000003 123457") == 0x63C2
    assert app.sw("0020000003 123458") == 0x63C1
    app.ok("0020000003 123456")                                    # counter restored
    for expected in (0x63C2, 0x63C1, 0x63C0):
        assert app.sw("0020000003 000000") == expected
    assert app.sw("0020000003 123456") == 0x6983
    app.card.power_off()
    app.card.power_on()
    app.ok(SELECT_ADF)
    assert app.sw("0020000003 123456") == 0x6983                   # still blocked after power loss


def test_verify_errors(app):
    assert app.sw("0020000103 123456") == 0x9403                   # no PIN with id 01
    assert app.sw("0020000101 12") == 0x9403
    assert app.sw("0020000001 12") == 0x6700
    assert app.sw("0020000007 12345612345612") == 0x6700
    assert app.sw("0020010003 123456") == 0x6A86
    app.ok("00A40000023F00")
    assert app.sw("0020000003 123456") == 0x9403                   # the MF has no PIN


def test_verify_with_trailing_ff_omitted(erased):
    t = erased
    t.ok("80E0000007 3F 0100 01 F0 FF FF")
    t.ok("80D401000B 3A F0 EF 01 33 12345FFFFFFF")
    t.ok("0020000003 12345F")
    t.ok("0020000006 12345FFFFFFF")
    assert t.sw("0020000003 12345E") == 0x63C2


def test_change_pin(app):
    assert app.sw("805E010007 123457 FF 654321") == 0x63C2
    app.ok("805E010007 123456 FF 654321")
    assert app.sw("0020000003 123456") == 0x63C2
    app.ok("0020000003 654321")
    app.ok("805E010008 654321 FF 11223344")                        # PIN length may change
    app.ok("0020000004 11223344")
    assert app.sw("805E010004 123456") == 0x6700                   # no FF separator


def test_reload_pin(app):
    reload_key = DES.tac_key(app.keys.pin_reload)                   # halves XORed
    new_pin = hx("888888")
    mac = DES.mac(reload_key, new_pin)
    assert app.sw(b"\x80\x5E\x00\x00\x07" + new_pin + bytes(4)) == 0x9302
    app.ok(b"\x80\x5E\x00\x00\x07" + new_pin + mac)
    app.ok("0020000003 888888")
    assert app.sw("805E000003 888888") == 0x6700


def test_pin_unblock(app):
    for _ in range(3):
        app.sw("0020000003 000000")
    assert app.sw("0020000003 123456") == 0x6983
    challenge = app.challenge()
    apdu = protected_apdu(0x84, 0x24, 0x00, 0x00, hx("123456"), app.keys.pin_unblock, challenge, encrypt=True)
    assert app.sw(b"\x80" + apdu[1:]) == 0x6987                    # must be line-protected
    challenge = app.challenge()
    bad = protected_apdu(0x84, 0x24, 0x00, 0x00, hx("123456"), app.keys.app_line, challenge, encrypt=True)
    assert app.sw(bad) == 0x6988                                    # wrong key → wrong MAC
    challenge = app.challenge()
    app.ok(protected_apdu(0x84, 0x24, 0x00, 0x00, hx("123456"), app.keys.pin_unblock, challenge, encrypt=True))
    app.ok("0020000003 123456")


# -- line protection ------------------------------------------------------------

def test_mac_protected_update_binary(app):
    line_key = app.keys.app_line
    challenge = app.challenge()
    app.ok(protected_apdu(0x04, 0xD6, 0x95, 0x00, hx("AABB"), line_key, challenge))
    assert app.ok("00B0950002") == hx("AABB")
    assert app.sw("00D6950002 CCDD") == 0x6987                      # MAC missing
    challenge = app.challenge()
    apdu = protected_apdu(0x04, 0xD6, 0x95, 0x00, hx("CCDD"), line_key, challenge)
    assert app.sw(apdu[:-1] + b"\x00") == 0x6988                    # MAC wrong
    assert app.sw(protected_apdu(0x04, 0xD6, 0x95, 0x00, hx("CCDD"), line_key, bytes(4))) == 0x6984  # no challenge
    assert app.ok("00B0950002") == hx("AABB")                       # nothing was written


def test_line_key_counter_blocks_after_wrong_macs(app):
    line_key = app.keys.app_line
    for _ in range(3):
        app.challenge()
        assert app.sw("04D6950006 AABB 00000000") == 0x6988
    challenge = app.challenge()
    assert app.sw(protected_apdu(0x04, 0xD6, 0x95, 0x00, hx("AABB"), line_key, challenge)) == 0x6983


def test_sm_on_an_unprotected_file_is_refused(app):
    app.ok("0020000003 123456")
    challenge = app.challenge()
    apdu = protected_apdu(0x04, 0xB2, 0x01, 0xC4, b"", app.keys.app_line, challenge)
    assert app.sw(apdu) == 0x6900


@pytest.fixture
def protected_files(erased):
    """An MF with a line key and files protected by MAC, by encryption and for reads."""
    t = erased
    t.ok("80E0000007 3F 0100 01 F0 FF FF")
    t.key = hx("00112233445566778899AABBCCDDEEFF")
    t.ok("80D4010015 36 F0 F0 FF 33" + t.key.hex())
    t.ok("80E0000507 E8 0020 F0 F0 FF FF")     # C0: encrypted + MAC writes, plain reads (b8 = 1)
    t.ok("80E0000607 A8 0010 F0 F0 FF 7F")     # MAC writes; b8 = 0 → reads must be protected
    t.ok("80E0000707 AA 0204 F0 F0 FF FF")     # MAC-protected fixed records
    return t


def test_encrypted_write(protected_files):
    t = protected_files
    challenge = t.challenge()
    t.ok(protected_apdu(0x04, 0xD6, 0x85, 0x00, hx("0102030405"), t.key, challenge, encrypt=True))
    assert t.ok("00B0850005") == hx("0102030405")
    challenge = t.challenge()
    assert t.sw(protected_apdu(0x04, 0xD6, 0x85, 0x00, hx("0102030405"), t.key, challenge)) == 0x6988


def test_protected_read(protected_files):
    t = protected_files
    challenge = t.challenge()
    t.ok(protected_apdu(0x04, 0xD6, 0x86, 0x00, hx("CAFE"), t.key, challenge))
    assert t.sw("00B0860002") == 0x6987                             # plain read refused
    challenge = t.challenge()
    apdu = protected_apdu(0x04, 0xB0, 0x86, 0x00, b"", t.key, challenge, le=2)
    data = t.ok(apdu)
    assert data[:2] == hx("CAFE")
    assert data[2:] == DES.mac(t.key, hx("CAFE"), challenge + bytes(4))


def test_protected_records(protected_files):
    t = protected_files
    challenge = t.challenge()
    t.ok(protected_apdu(0x04, 0xE2, 0x00, 0x38, hx("11223344"), t.key, challenge))
    challenge = t.challenge()
    t.ok(protected_apdu(0x04, 0xDC, 0x01, 0x3C, hx("55667788"), t.key, challenge))
    assert t.ok("00B2013C04") == hx("55667788")
    assert t.sw("00DC013C04 99999999") == 0x6987


# -- blocking ----------------------------------------------------------------------

def _mac_only(t, ins, p2):
    challenge = t.challenge()
    return protected_apdu(0x84, ins, 0x00, p2, b"", t.keys.app_line, challenge)


def test_application_block_and_unblock(app):
    assert app.sw("841E000004 00000000") == 0x6984                  # no challenge
    app.challenge()
    assert app.sw("841E000004 00000000") == 0x6988
    assert app.sw("801E000000") == 0x6987
    app.ok(_mac_only(app, 0x1E, 0x00))                              # temporary block
    assert app.sw("00B0950002") == 0x6A81
    assert app.sw("0020000003 123456") == 0x6A81
    assert app.send(SELECT_ADF)[1] == 0x6283                        # selectable, flagged
    app.card.power_on()
    assert app.send(SELECT_ADF)[1] == 0x6283                        # the block is persistent
    app.ok(_mac_only(app, 0x18, 0x00))
    app.ok(SELECT_ADF)
    app.ok("00B0950002")


def test_permanent_application_block(app):
    app.ok(_mac_only(app, 0x1E, 0x01))
    assert app.sw(_mac_only(app, 0x18, 0x00)) == 0x9303
    assert app.sw("841E020004 00000000") == 0x6A81                  # blocked: only select/challenge/unblock


def test_blocked_application_select_6a81_mode():
    card = Card.blank(CardConfig(blocked_app_select="6A81"))
    sample = issue_sample(card.transmit)
    card.power_on()
    t = Terminal(card)
    t.keys = sample.keys
    t.ok(SELECT_ADF)
    t.ok(_mac_only(t, 0x1E, 0x00))
    t.ok("00A40000023F00")
    assert t.sw(SELECT_ADF) == 0x6A81


def test_three_bad_unblocks_make_the_block_permanent(app):
    app.ok(_mac_only(app, 0x1E, 0x00))
    for _ in range(3):
        app.challenge()
        assert app.sw("8418000004 00000000") == 0x6988
    assert app.sw(_mac_only(app, 0x18, 0x00)) == 0x9303


def test_card_block_is_final(app):
    app.challenge()
    assert app.sw("8416000004 00000000") == 0x6988
    app.ok(_mac_only(app, 0x16, 0x00))
    assert app.sw("00A40000023F00") == 0x6A81
    app.card.power_off()
    assert app.sw("0084000004") == 0x6A81
    assert app.card.transmit(hx("00A4040009") + CITY_AID) == hx("6A81")
