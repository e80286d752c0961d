"""Security registers and access rights (reference §2.1, §2.2), observed through reads of files
with chosen rights in the scratch DF."""
import pytest

from cardos.conformance.apdus import NEVER, SELECT_MF, create_binary, read_binary, select_fid
from cardos.terminal.secure import protected_apdu

pytestmark = pytest.mark.family("security rules")
KEYS = {2: bytes([0x22]) * 16, 3: bytes([0x33]) * 8 + bytes([0x34]) * 8, 5: bytes([0x55]) * 8 + bytes([0x56]) * 8,
        6: bytes([0x66]) * 8 + bytes([0x67]) * 8, 15: bytes([0xFF]) * 8 + bytes([0xF0]) * 8}


@pytest.fixture
def rights(scratch, card):
    """Keys 39/0N giving state N (N = 2, 3, 5, 6, 15); EFs 0001 (53), 0002 (22), 0003 (EF), 0004 (01)."""
    s = scratch.key_file(0x0200)
    for state, value in KEYS.items():
        s.auth_key(state, value, state=state)
    s.create(create_binary(0x0001, 4, read=0x53))
    s.create(create_binary(0x0002, 4, read=0x22))
    s.create(create_binary(0x0003, 4, read=NEVER))
    s.create(create_binary(0x0004, 4, read=0x01))
    return s.enter()


def readable(card, sfi) -> bool:
    return card.expect(read_binary(sfi, 0, 4), "9000", "6281", "6982").sw != 0x6982


def in_state(rights, state):
    rights.enter()
    rights.authenticate(state, KEYS[state])


@pytest.mark.command("READ BINARY")
def test_range_right(rights, card):
    """``53``: allowed when 3 ≤ current register ≤ 5."""
    for state, allowed in ((2, False), (3, True), (5, True), (6, False)):
        in_state(rights, state)
        card.check(readable(card, 0x01) is allowed, "READ BINARY",
                   f"right 53 in state {state}: {'refused' if allowed else 'allowed'}")


@pytest.mark.command("READ BINARY")
def test_exact_right(rights, card):
    """``22``: state 2 exactly."""
    for state, allowed in ((2, True), (3, False)):
        in_state(rights, state)
        card.check(readable(card, 0x02) is allowed, "READ BINARY", f"right 22 in state {state}")


@pytest.mark.command("READ BINARY")
def test_never(rights, card):
    """``EF`` (X < Y): never, not even in state F."""
    in_state(rights, 15)
    card.check(not readable(card, 0x03), "READ BINARY", "right EF allowed a read in state F")


@pytest.mark.command("EXTERNAL AUTHENTICATE")
def test_authentication_sets_the_register(rights, card):
    """§2.1: a success *sets* the register to the key's state (also downwards)."""
    in_state(rights, 6)
    rights.authenticate(3, KEYS[3])
    card.check(readable(card, 0x01), "EXTERNAL AUTHENTICATE", "state 6 then a state-3 key: right 53 refused")


@pytest.mark.command("EXTERNAL AUTHENTICATE")
def test_failed_authentication_keeps_the_register(rights, card):
    in_state(rights, 3)
    card.challenge()
    card.expect("0082000508" + "00" * 8, "63CX", "6984", why="a wrong cryptogram")
    card.check(readable(card, 0x01), "EXTERNAL AUTHENTICATE", "a failed authentication changed the register")


@pytest.mark.command("SELECT")
def test_df_change_resets_the_register(rights, card):
    in_state(rights, 5)
    card.ok(SELECT_MF)
    card.ok(select_fid(rights.FID))
    card.check(not readable(card, 0x01), "SELECT", "the register survived leaving and re-entering the DF")


@pytest.mark.command("SELECT")
def test_ef_selection_keeps_the_register(rights, card):
    in_state(rights, 5)
    card.expect(select_fid(0x0002, le=None), "9000")
    card.check(readable(card, 0x01), "SELECT", "selecting an EF reset the register")


@pytest.mark.command("reset")
def test_power_cycle_resets_the_register(rights, card):
    in_state(rights, 5)
    card.power_cycle()
    card.ok(SELECT_MF)
    card.ok(select_fid(rights.FID))
    card.check(not readable(card, 0x01), "reset", "the register survived a power cycle")


@pytest.mark.command("READ BINARY")
def test_x0_rights_look_at_the_mf_register(rights, issued, card):
    """``0Y``: the MF register ≥ Y, whatever the current DF's register."""
    in_state(rights, 15)
    card.check(not readable(card, 0x04), "READ BINARY", "right 01 allowed with the MF register at 0")
    issued.mf_authenticate(card)
    card.ok(select_fid(rights.FID))
    card.check(readable(card, 0x04), "READ BINARY", "right 01 refused after authenticating in the MF")


@pytest.mark.command("SELECT")
def test_selecting_the_mf_restores_its_register(issued, card):
    """§2.1: selecting the MF makes the current register equal to the MF register."""
    line = issued.card_key("mf", "line")
    content = card.ok("00B0850000")
    issued.mf_authenticate(card)
    card.ok(select_fid(0xDF20))
    card.ok(SELECT_MF)
    card.ok(protected_apdu(0x04, 0xD6, 0x85, 0x00, content, line, card.challenge()),
            "rewrite MF 0005 (write right AA) after coming back to the MF")
    card.power_cycle()
    card.ok(SELECT_MF)
    card.expect(protected_apdu(0x04, 0xD6, 0x85, 0x00, content, line, card.challenge()), "6982",
                why="the same without authentication")
