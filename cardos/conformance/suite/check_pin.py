"""VERIFY, CHANGE PIN, RELOAD PIN, PIN UNBLOCK (reference §2.4) on a PIN the suite writes into its
scratch DF (PIN 3A/00 = 123456, 3 tries, subsequent state 1)."""
import pytest

from cardos.conformance.apdus import FREE, PIN, apdu, create_binary, pin_bcd, read_binary
from cardos.conformance.testkeys import LINE, LINE_OTHER, RELOAD, UNBLOCK
from cardos.crypto import DES
from cardos.terminal.secure import protected_apdu

pytestmark = pytest.mark.family("PIN")
GOOD, BAD, NEW = pin_bcd("123456"), pin_bcd("654321"), pin_bcd("2468")


def verify(pin: bytes, kid: int = 0x00) -> bytes:
    return apdu(0x00, 0x20, 0x00, kid, pin)


def change(old: bytes, new: bytes) -> bytes:
    return apdu(0x80, 0x5E, 0x01, 0x00, old + b"\xff" + new)


def reload(new: bytes, key: bytes = RELOAD) -> bytes:
    """MAC = PBOC MAC over the new PIN, with the reload key's halves XORed, IV 0 (§2.4)."""
    return apdu(0x80, 0x5E, 0x00, 0x00, new + DES.mac(DES.tac_key(key), new))


@pytest.fixture
def pin(scratch, card):
    s = scratch.key_file()
    s.key(PIN, 0x00, pin_bcd("123456"), use=FREE, change=0xEF, b3=0x01)
    s.key(0x36, 0x00, LINE, b3=0xFF)
    s.key(0x37, 0x00, UNBLOCK, b3=0xFF)
    s.key(0x38, 0x00, RELOAD, b3=0xFF)
    s.create(create_binary(0x0001, 4, read=0x11, write=0x11))
    return s.enter()


def block(card):
    for left in (2, 1, 0):
        card.expect(verify(BAD), f"63C{left}")
    card.expect(verify(GOOD), "6983", why="the right PIN, blocked")


@pytest.mark.command("VERIFY")
def test_verify_sets_the_state(pin, card):
    card.expect(read_binary(0x01, 0, 4), "6982", why="before VERIFY")
    card.ok(verify(GOOD))
    card.expect(read_binary(0x01, 0, 4), "9000", "6281", why="after VERIFY (state 1)")


@pytest.mark.command("VERIFY")
def test_wrong_pin_counts_down(pin, card):
    card.expect(verify(BAD), "63C2")
    card.expect(verify(BAD), "63C1")
    card.ok(verify(GOOD), "a success restores the counter")
    card.expect(verify(BAD), "63C2", why="counter back at 3")


@pytest.mark.command("VERIFY")
def test_pin_blocks(pin, card):
    block(card)
    card.power_cycle()
    pin.enter()
    card.expect(verify(GOOD), "6983", why="still blocked after a power cycle")


@pytest.mark.command("VERIFY")
def test_trailing_ff_may_be_omitted(scratch, card):
    s = scratch.key_file()
    s.key(PIN, 0x00, bytes.fromhex("12345FFFFF"), use=FREE, change=0xEF, b3=0x01)
    s.enter()
    card.ok(verify(bytes.fromhex("12345F")), "PIN 12345 without the stored FF bytes")
    card.ok(verify(bytes.fromhex("12345FFFFF")), "PIN 12345 with them")


@pytest.mark.command("VERIFY")
def test_verify_errors(pin, card):
    card.expect(verify(GOOD, kid=0x01), "9403", why="no PIN 01")
    card.expect(verify(b"\x12"), "6700", why="1-byte PIN")
    card.expect(verify(GOOD + bytes(4)), "6700", why="7-byte PIN")


@pytest.mark.family("line protection")
@pytest.mark.command("VERIFY")
def test_verify_with_line_protection(pin, card):
    """CLA 04: PIN ‖ MAC with the line-protection key (§2.4, §2.8); a wrong MAC is 9302."""
    card.ok(protected_apdu(0x04, 0x20, 0x00, 0x00, GOOD, LINE, card.challenge()), "VERIFY with a MAC")
    card.expect(protected_apdu(0x04, 0x20, 0x00, 0x00, GOOD, LINE_OTHER, card.challenge()), "9302")


@pytest.mark.command("CHANGE PIN")
def test_change_pin(pin, card):
    card.ok(change(GOOD, NEW))
    card.expect(verify(GOOD), "63C2", why="the old PIN")
    card.ok(verify(NEW), "the new PIN")


@pytest.mark.command("CHANGE PIN")
def test_change_pin_with_a_wrong_old_pin(pin, card):
    card.expect(change(BAD, NEW), "63C2")
    card.ok(verify(GOOD), "the PIN is unchanged")


@pytest.mark.command("CHANGE PIN")
def test_change_pin_when_blocked(pin, card):
    block(card)
    card.expect(change(GOOD, NEW), "6983")


@pytest.mark.command("RELOAD PIN")
def test_reload_pin(pin, card):
    card.expect(verify(BAD), "63C2")
    card.ok(reload(NEW))
    card.ok(verify(NEW), "the reloaded PIN")
    card.expect(verify(BAD), "63C2", why="the counter was restored")


@pytest.mark.command("RELOAD PIN")
def test_reload_pin_wrong_mac(pin, card):
    card.expect(reload(NEW, key=UNBLOCK), "9302")
    card.ok(verify(GOOD), "the PIN is unchanged")


@pytest.mark.command("RELOAD PIN")
def test_reload_pin_without_a_pin(scratch, card):
    scratch.key_file().key(0x38, 0x00, RELOAD, b3=0xFF).enter()
    card.expect(reload(NEW), "9403")


@pytest.mark.command("PIN UNBLOCK")
def test_pin_unblock(pin, card):
    """§2.4: the new PIN, LD-prefixed and encrypted, plus a MAC, both with the unblock key (37)."""
    block(card)
    card.ok(protected_apdu(0x84, 0x24, 0x00, 0x00, NEW, UNBLOCK, card.challenge(), encrypt=True), "PIN UNBLOCK")
    card.ok(verify(NEW), "the unblocked PIN")


@pytest.mark.command("PIN UNBLOCK")
def test_pin_unblock_wrong_mac(pin, card):
    block(card)
    card.expect(protected_apdu(0x84, 0x24, 0x00, 0x00, NEW, LINE, card.challenge(), encrypt=True), "6988")
    card.expect(verify(NEW), "6983", why="still blocked")


@pytest.mark.command("PIN UNBLOCK")
def test_pin_unblock_needs_line_protection(pin, card):
    block(card)
    unprotected = protected_apdu(0x84, 0x24, 0x00, 0x00, NEW, UNBLOCK, card.challenge(), encrypt=True)
    card.refused(b"\x80" + unprotected[1:], "PIN UNBLOCK with CLA 80")
    card.expect(verify(NEW), "6983", why="still blocked")


@pytest.mark.command("VERIFY")
def test_verify_use_right(scratch, card):
    s = scratch.key_file()
    s.key(PIN, 0x00, pin_bcd("123456"), use=0x11, change=0xEF, b3=0x02)
    s.auth_key(0x00, LINE, state=1)
    s.enter()
    card.expect(verify(GOOD), "6982", why="PIN usable in state 1 only")
    s.authenticate(0x00, LINE)
    card.ok(verify(GOOD), "in state 1")


@pytest.mark.command("CHANGE PIN")
def test_change_pin_errors(pin, card):
    card.expect(apdu(0x80, 0x5E, 0x01, 0x00, GOOD + NEW), "6700", why="no FF between old and new PIN")
    card.ok(verify(GOOD), "the PIN is unchanged")


@pytest.mark.command("CHANGE PIN")
def test_change_pin_without_a_pin(scratch, card):
    scratch.key_file().key(0x38, 0x00, RELOAD, b3=0xFF).enter()
    card.expect(change(GOOD, NEW), "9403")


@pytest.mark.command("RELOAD PIN")
def test_reload_pin_wrong_length(pin, card):
    card.expect(apdu(0x80, 0x5E, 0x00, 0x00, GOOD), "6700", why="a PIN without MAC")


@pytest.mark.command("PIN UNBLOCK")
def test_pin_unblock_with_a_blocked_unblock_key(scratch, card):
    s = scratch.key_file()
    s.key(PIN, 0x00, pin_bcd("123456"), use=FREE, change=0xEF, b3=0x01)
    s.key(0x37, 0x00, UNBLOCK, b3=0xFF, b4=0x11)
    s.enter()
    card.expect(protected_apdu(0x84, 0x24, 0x00, 0x00, NEW, LINE, card.challenge(), encrypt=True), "6988")
    card.expect(protected_apdu(0x84, 0x24, 0x00, 0x00, NEW, UNBLOCK, card.challenge(), encrypt=True), "9303",
                why="the unblock key has no try left")


@pytest.mark.command("PIN UNBLOCK")
def test_pin_unblock_without_a_pin(scratch, card):
    scratch.key_file().key(0x37, 0x00, UNBLOCK, b3=0xFF).enter()
    card.expect(protected_apdu(0x84, 0x24, 0x00, 0x00, NEW, UNBLOCK, card.challenge(), encrypt=True), "9403")


@pytest.mark.command("CHANGE PIN")
def test_change_pin_acts_on_pin_00(pin, card):
    """§2.4: CHANGE PIN acts on PIN 00 whatever P2 says."""
    card.ok(apdu(0x80, 0x5E, 0x01, 0x05, GOOD + b"\xff" + NEW), "CHANGE PIN with P2 05")
    card.ok(verify(NEW), "PIN 00 changed")


@pytest.mark.command("PIN UNBLOCK")
def test_pin_unblock_bad_p1(pin, card):
    block(card)
    card.expect(protected_apdu(0x84, 0x24, 0x05, 0x00, NEW, UNBLOCK, card.challenge(), encrypt=True), "6A86")
