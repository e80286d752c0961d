"""APDU handling: ISO cases 1-4 short and extended, lengths, CLA/INS, Le, 61XX + GET RESPONSE."""
import pytest

from cardos import Card, CardConfig
from cardos.apdu import CardError, build, parse

from .conftest import Terminal, hx

MF_FCI = hx("6F15840E315041592E5359532E4444463031A503880101")


@pytest.mark.parametrize("apdu, case", [
    ("00A40000", (b"", None, False)),                          # case 1
    ("0084000004", (b"", 4, False)),                           # case 2 short
    ("00B0000000", (b"", 256, False)),                         # case 2 short, Le 00 = 256
    ("00A40000023F00", (hx("3F00"), None, False)),              # case 3 short
    ("00A40000023F0000", (hx("3F00"), 256, False)),             # case 4 short
    ("00B0000000 0100", (b"", 256, True)),                      # case 2 extended
    ("00B0000000 0000", (b"", 65536, True)),                    # case 2 extended, 0000 = 65536
    ("00A4000000 0002 3F00", (hx("3F00"), None, True)),         # case 3 extended
    ("00A4000000 0002 3F00 0010", (hx("3F00"), 16, True)),      # case 4 extended
])
def test_parse_cases(apdu, case):
    cmd = parse(hx(apdu))
    assert (cmd.data, cmd.le, cmd.extended) == case


@pytest.mark.parametrize("apdu", [
    "", "00", "00A400", "00A40000023F", "00A40000023F000000", "00A400000000", "00A4000000 0000 3F00", "00A4000000 0003 3F00",
    "00A4000000 0002 3F00 00",
])
def test_malformed_lengths(apdu):
    with pytest.raises(CardError) as exc:
        parse(hx(apdu))
    assert exc.value.sw == 0x6700


@pytest.mark.parametrize("apdu", ["00", "00A400", "00A40000023F", "00A40000023F000000", "00A4000000 0003 3F00"])
def test_malformed_length_answers_6700(term, apdu):
    assert term.sw(apdu) == 0x6700


def test_build_round_trips():
    assert build(0x00, 0xA4, 0x00, 0x00, hx("3F00"), 0) == hx("00A40000023F0000")
    assert build(0x00, 0xB0, 0x00, 0x00, le=512) == hx("00B0000000 0200")
    assert parse(build(0x80, 0xE2, 0, 0, bytes(300))).data == bytes(300)


def test_unknown_ins_and_cla(term):
    assert term.sw("00FF000000") == 0x6D00
    assert term.sw("80A40000023F00") == 0x6E00   # SELECT exists, but in class 00
    assert term.sw("00E0000000") == 0x6E00       # CREATE FILE is class 80, not 00
    assert term.sw("A0A40000023F00") == 0x6E00   # GSM class
    assert term.sw("01A40000023F00") == 0x6E00   # logical channel bits
    assert term.sw("0CA40000023F00") == 0x6E00   # ISO SM bits


def test_bad_p1p2(term):
    assert term.sw("00A40100023F00") == 0x6A86
    assert term.sw("00A40005023F00") == 0x6A86
    assert term.sw("0084010004") == 0x6A86


def test_t0_style_61xx_and_get_response(term):
    assert term.send("00A40000023F00") == (b"", 0x6117)
    assert term.send("00C0000008") == (MF_FCI[:8], 0x610F)
    assert term.send("00C000000F") == (MF_FCI[8:], 0x9000)
    assert term.sw("00C0000001") == 0x6985  # nothing pending any more


def test_get_response_wrong_le_and_p1p2(term):
    term.sw("00A40000023F00")
    assert term.sw("00C0000020") == 0x6C17
    assert term.sw("00C0010017") == 0x6A86
    assert term.sw("00C00000") == 0x6700
    assert term.send("00C0000000") == (MF_FCI, 0x9000)  # Le 00: everything


def test_pending_response_dropped_by_other_command(term):
    term.sw("00A40000023F00")
    term.ok("00A40000023F00 00")
    assert term.sw("00C0000017") == 0x6985


def test_get_response_keeps_challenge_valid(term):
    """GET RESPONSE is transparent: the challenge stays for the following command."""
    challenge = term.challenge()
    assert term.sw("00C0000017") == 0x6985
    from cardos.terminal.secure import external_auth_cryptogram
    term.ok(b"\x00\x82\x00\x00\x08" + external_auth_cryptogram(b"\xff" * 8, challenge))


def test_wrong_le_answers_6cxx(term):
    assert term.send("00A40000023F0010") == (b"", 0x6C17)
    assert term.send("00A40000023F0017") == (MF_FCI, 0x9000)


def test_extended_length_round_trip():
    card = Card.blank()
    t = Terminal(card)
    t.ok("00A40000023F00 00")
    t.challenge()
    from cardos.terminal.secure import external_auth_cryptogram
    challenge = card.security.challenge
    t.ok(b"\x00\x82\x00\x00\x08" + external_auth_cryptogram(b"\xff" * 8, challenge))
    t.ok("800E000000")
    t.ok("80E0000007 3F 0100 01 F0 FF FF")
    t.ok("80E0000107 28 0400 F0 F0 FF FF")  # a 1 KB binary file
    t.ok("00A40000020001")
    payload = bytes(range(256)) * 2
    t.ok("00D6000000 0200" + payload.hex())  # extended case 3
    assert t.send("00B0000000 0200") == (payload, 0x9000)  # extended case 2
    assert t.send("00B0000000 0000") == (payload + bytes(512), 0x9000)  # 0000 = all (up to 65536)
    data, sw = t.send("00B0000000")  # short Le 00: 256 bytes
    assert (data, sw) == (payload[:256], 0x9000)


def test_without_t0_get_response_data_comes_directly():
    card = Card.blank(CardConfig(t0_get_response=False))
    assert card.transmit(hx("00A40000023F00")) == MF_FCI + hx("9000")


def test_transmit_powers_on_and_never_raises():
    card = Card.blank()
    assert card.transmit(hx("00A40000023F00 00")) == MF_FCI + hx("9000")
    assert card.transmit(b"") == hx("6700")
    assert card.transmit(bytearray(hx("00A40000023F00 00")))[-2:] == hx("9000")


def test_internal_error_answers_6f00_and_rolls_back(blank, monkeypatch):
    from cardos.commands import DISPATCH

    def broken(card, cmd):
        card.write(card.mf, "erase_right", 0x00)
        raise RuntimeError("bug")

    monkeypatch.setitem(DISPATCH, (0x80, 0x0E), broken)
    assert blank.transmit(hx("800E000000")) == hx("6F00")
    assert blank.mf.erase_right == 0xAA  # the half-done write was undone


def test_atr_offers_t0_and_t1():
    atr = Card.blank().power_on()
    assert atr[0] == 0x3B and atr[2:4] == hx("8001")
    checksum = 0
    for b in atr[1:]:
        checksum ^= b
    assert checksum == 0
