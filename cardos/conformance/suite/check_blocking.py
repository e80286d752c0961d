"""APPLICATION BLOCK / UNBLOCK and CARD BLOCK (reference §2.9), on the issued city application
(MACs with its line-protection key 36/00). Blocking leaves the card changed: the next test that
needs the baseline issues it again. CARD BLOCK is irreversible: spare emulated card only."""
import pytest

from cardos.conformance.apdus import SELECT_MF, read_binary, select_name
from cardos.terminal.secure import protected_apdu

from .conftest import CITY_AID

pytestmark = pytest.mark.family("blocking")


def mac_only(card, ins, p2, key):
    return protected_apdu(0x84, ins, 0x00, p2, b"", key, card.challenge())


def block(card, city, p2):
    city.dirty = True  # whatever happens next, issue again before the next test
    card.ok(mac_only(card, 0x1E, p2, city.card_key("city", "line")), f"APPLICATION BLOCK P2 {p2:02X}")


def reselect_blocked(card) -> bool:
    """SELECT of a blocked application: 6283 (selected, flagged) or 6A81 (refused) — reference §2.9
    [CONFLICT]. True when the application is selected."""
    card.ok(SELECT_MF)
    return card.expect(select_name(CITY_AID), "6283", "6A81", why="select the blocked application").sw == 0x6283


def online_counter(card) -> int:
    """The EP's online counter, from an INITIALIZE FOR LOAD that is not completed."""
    answer = card.ok("805000020B0100000001000000000304" "10", "INITIALIZE FOR LOAD (not completed)", length=16)
    return int.from_bytes(answer[4:6], "big")


@pytest.mark.command("APPLICATION BLOCK")
def test_temporary_block_and_unblock(city, card):
    before = online_counter(card)
    block(card, city, 0x00)
    card.expect(read_binary(0x15, 0, 4), "6A81", why="READ BINARY in the blocked application")
    card.expect("805C000204", "6A81", why="GET BALANCE in the blocked application")
    card.expect("805000020B0100000001000000000304" "10", "6A81", why="INITIALIZE FOR LOAD in the blocked application")
    if not reselect_blocked(card):
        pytest.skip("the card refuses to select a blocked application (6A81): APPLICATION UNBLOCK cannot be sent")
    card.expect(read_binary(0x15, 0, 4), "6A81", why="READ BINARY after selecting the blocked application")
    card.ok(mac_only(card, 0x18, 0x00, city.card_key("city", "line")), "APPLICATION UNBLOCK")
    card.ok(SELECT_MF)
    card.ok(select_name(CITY_AID), "select the unblocked application")
    card.ok(read_binary(0x15, 0, 4), "READ BINARY after unblocking")
    card.check(online_counter(card) == before, "APPLICATION UNBLOCK",
               "blocking and unblocking changed the EP's online counter (§2.9: neither does)")


@pytest.mark.command("APPLICATION BLOCK")
def test_block_survives_power_cycle(city, card):
    block(card, city, 0x00)
    card.power_cycle()
    reselect_blocked(card)
    card.expect(read_binary(0x15, 0, 4), "6A81", why="still blocked after a power cycle")


@pytest.mark.command("APPLICATION UNBLOCK")
def test_permanent_block(city, card):
    block(card, city, 0x01)
    if not reselect_blocked(card):
        pytest.skip("the card refuses to select a blocked application (6A81)")
    card.expect(mac_only(card, 0x18, 0x00, city.card_key("city", "line")), "9303", why="unblock a permanent block")


@pytest.mark.command("APPLICATION UNBLOCK")
def test_three_bad_unblocks_make_the_block_permanent(city, card):
    block(card, city, 0x00)
    if not reselect_blocked(card):
        pytest.skip("the card refuses to select a blocked application (6A81)")
    other = city.card_key("city", "master")
    for _ in range(3):
        card.expect(mac_only(card, 0x18, 0x00, other), "6988", why="APPLICATION UNBLOCK with a wrong MAC")
    card.expect(mac_only(card, 0x18, 0x00, city.card_key("city", "line")), "9303",
                why="the right MAC after three wrong ones")


@pytest.mark.command("APPLICATION BLOCK")
def test_block_with_a_wrong_mac(city, card):
    card.expect(mac_only(card, 0x1E, 0x00, city.card_key("city", "master")), "6988")
    content = card.ok(read_binary(0x15, 0, 30), "the application is not blocked")
    card.ok(protected_apdu(0x04, 0xD6, 0x95, 0x00, content, city.card_key("city", "line"), card.challenge()),
            "a right MAC with the line key (restores its try counter)")


@pytest.mark.command("APPLICATION BLOCK")
def test_block_needs_line_protection(city, card):
    card.refused("801E000000", "APPLICATION BLOCK without a MAC")
    card.ok(read_binary(0x15, 0, 4), "the application is not blocked")


@pytest.mark.command("APPLICATION BLOCK")
def test_block_bad_p2(city, card):
    card.expect(mac_only(card, 0x1E, 0x02, city.card_key("city", "line")), "6A86")
    card.ok(read_binary(0x15, 0, 4), "the application is not blocked")


@pytest.mark.command("CARD BLOCK")
def test_card_block_is_final(spare_card):
    card = spare_card
    line = card.base.card_key("mf", "line")
    card.ok(SELECT_MF)
    card.expect(mac_only(card, 0x16, 0x00, card.base.card_key("mf", "master")), "6988", why="wrong MAC")
    card.refused("8016000000", "CARD BLOCK without a MAC")
    card.ok(SELECT_MF, "not blocked by a wrong MAC")
    card.ok(mac_only(card, 0x16, 0x00, line), "CARD BLOCK")
    card.expect(SELECT_MF, "6A81")
    card.expect("0084000004", "6A81")
    card.power_cycle()
    card.expect(SELECT_MF, "6A81", why="after a power cycle")
    card.expect(select_name(CITY_AID), "6A81")
