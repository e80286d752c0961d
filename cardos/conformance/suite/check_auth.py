"""GET CHALLENGE (§2.5), EXTERNAL AUTHENTICATE (§2.6), INTERNAL AUTHENTICATE (§2.7), WRITE KEY (§2.3):
keys the suite writes into its scratch DF."""
import pytest

from cardos.conformance.apdus import (AUTH_KEY, DECRYPT_KEY, ENCRYPT_KEY, FREE, MAC_KEY, NEVER, add_key, apdu, counter,
                                      create_binary, create_key_file, key_record, modify_key, read_binary)
from cardos.conformance.testkeys import AUTH, AUTH_DES, AUTH_OTHER, VECTOR
from cardos.terminal.secure import external_auth_cryptogram, protected_apdu

pytestmark = pytest.mark.family("keys and authentication")


def ext_auth(card, kid, key, challenge=None):
    challenge = challenge if challenge is not None else card.challenge()
    return apdu(0x00, 0x82, 0x00, kid, external_auth_cryptogram(key, challenge))


@pytest.fixture
def keys(scratch, card):
    """Master 39/00 (state 5, 3 tries), 39/01 (state 2, use right 'state 1 exactly'), file 0001 readable at 5."""
    s = scratch.key_file()
    s.auth_key(0x00, AUTH, state=5)
    s.auth_key(0x01, AUTH_OTHER, state=2, use=0x11)
    s.auth_key(0x02, AUTH_DES, state=1)
    s.create(create_binary(0x0001, 4, read=0x55, write=0x55))
    return s.enter()


# -- GET CHALLENGE --------------------------------------------------------------------------

@pytest.mark.command("GET CHALLENGE")
def test_challenge_lengths(card):
    four = card.ok("0084000004", length=4)
    eight = card.ok("0084000008", length=8)
    card.check(four != card.ok("0084000004", length=4) or eight != card.ok("0084000008", length=8),
               "GET CHALLENGE", "two challenges in a row were equal")


@pytest.mark.command("GET CHALLENGE")
def test_challenge_of_another_length(card):
    card.expect("0084000005", "6700", "6CXX")


@pytest.mark.command("GET CHALLENGE")
def test_challenge_bad_p1p2(card):
    card.expect("0084010004", "6A86")


# -- EXTERNAL AUTHENTICATE ------------------------------------------------------------------

@pytest.mark.command("EXTERNAL AUTHENTICATE")
def test_external_authentication_sets_the_state(keys, card):
    card.expect(read_binary(0x01, 0, 4), "6982", why="before authentication")
    card.ok(ext_auth(card, 0x00, AUTH))
    card.expect(read_binary(0x01, 0, 4), "9000", "6281", why="after authentication (state 5)")


@pytest.mark.command("EXTERNAL AUTHENTICATE")
def test_single_des_key(keys, card):
    """An 8-byte key works as single DES (§2.3)."""
    card.ok(ext_auth(card, 0x02, AUTH_DES))


@pytest.mark.command("EXTERNAL AUTHENTICATE")
def test_wrong_cryptogram_counts_down(keys, card):
    card.expect(ext_auth(card, 0x00, AUTH_OTHER), "63C2")
    card.expect(ext_auth(card, 0x00, AUTH_OTHER), "63C1")
    card.ok(ext_auth(card, 0x00, AUTH), "a success restores the counter")
    card.expect(ext_auth(card, 0x00, AUTH_OTHER), "63C2", why="counter back at 3 after the success")


@pytest.mark.command("EXTERNAL AUTHENTICATE")
def test_key_blocks_after_its_tries(keys, card):
    for left in (2, 1, 0):
        card.expect(ext_auth(card, 0x00, AUTH_OTHER), f"63C{left}")
    card.expect(ext_auth(card, 0x00, AUTH), "6983", why="right key, blocked")
    card.power_cycle()
    keys.enter()
    card.expect(ext_auth(card, 0x00, AUTH), "6983", why="still blocked after a power cycle")


@pytest.mark.command("EXTERNAL AUTHENTICATE")
def test_no_such_key(keys, card):
    card.expect(ext_auth(card, 0x07, AUTH), "6A88")


@pytest.mark.command("EXTERNAL AUTHENTICATE")
def test_key_use_right(keys, card):
    card.expect(ext_auth(card, 0x01, AUTH_OTHER), "6982", why="key 39/01 may be used in state 1 only")
    card.ok(ext_auth(card, 0x02, AUTH_DES), "state 1")
    card.ok(ext_auth(card, 0x01, AUTH_OTHER), "key 39/01 in state 1")


@pytest.mark.command("EXTERNAL AUTHENTICATE")
def test_wrong_length(keys, card):
    card.challenge()
    card.expect(apdu(0x00, 0x82, 0x00, 0x00, bytes(7)), "6700")


@pytest.mark.command("EXTERNAL AUTHENTICATE")
def test_external_authenticate_without_a_key_file(scratch, card):
    card.challenge()
    card.expect(apdu(0x00, 0x82, 0x00, 0x00, bytes(8)), "6A82", "6A88")


@pytest.mark.command("GET CHALLENGE")
def test_challenge_is_single_use(keys, card):
    """§2.5: a challenge is valid only for the immediately following command."""
    auth = ext_auth(card, 0x00, AUTH)
    card.ok(auth)
    card.expect(auth, "6984", "63CX", why="the same cryptogram again")
    challenge = card.challenge()
    card.ok("00A40000020001", "another command in between")
    card.expect(ext_auth(card, 0x00, AUTH, challenge), "6984", "63CX", why="challenge followed by another command")


@pytest.mark.command("GET CHALLENGE")
def test_challenge_is_lost_on_power_cycle(keys, card):
    challenge = card.challenge()
    card.power_cycle()
    keys.enter()
    card.expect(ext_auth(card, 0x00, AUTH, challenge), "6984", "63CX", why="challenge from before the power cycle")


@pytest.mark.command("EXTERNAL AUTHENTICATE")
def test_without_challenge(keys, card):
    card.expect(apdu(0x00, 0x82, 0x00, 0x00, external_auth_cryptogram(AUTH, bytes(4))), "6984", "63CX")


# -- INTERNAL AUTHENTICATE (reference §7 row 1 vectors) ----------------------------------------

@pytest.fixture
def internal_keys(scratch, card):
    s = scratch.key_file()
    for key_type in (ENCRYPT_KEY, DECRYPT_KEY, MAC_KEY):
        s.key(key_type, 0x00, VECTOR, b3=0x01, b4=0x00)
    s.key(ENCRYPT_KEY, 0x01, VECTOR, use=0x11, b3=0x01, b4=0x00)
    return s.enter()


@pytest.mark.command("INTERNAL AUTHENTICATE")
def test_internal_encrypt_vector(internal_keys, card):
    card.expect(apdu(0x00, 0x88, 0x00, 0x00, bytes.fromhex("0102030405060708"), 0),
                data=bytes.fromhex("178F59F8578E0D3F"), why="reference §7 row 1")


@pytest.mark.command("INTERNAL AUTHENTICATE")
def test_internal_decrypt_vector(internal_keys, card):
    card.expect(apdu(0x00, 0x88, 0x01, 0x00, bytes.fromhex("178F59F8578E0D3F"), 0),
                data=bytes.fromhex("0102030405060708"), why="reference §7 row 1 backwards")


@pytest.mark.command("INTERNAL AUTHENTICATE")
def test_internal_mac_vector(internal_keys, card):
    card.expect(apdu(0x00, 0x88, 0x02, 0x00, bytes.fromhex("0102030405060708"), 0),
                data=bytes.fromhex("A82A8CEB"), why="reference §7 row 1 MAC")


@pytest.mark.command("INTERNAL AUTHENTICATE")
def test_internal_errors(internal_keys, card):
    card.expect(apdu(0x00, 0x88, 0x00, 0x05, bytes(8), 0), "6A88", why="no key 30/05")
    card.expect(apdu(0x00, 0x88, 0x07, 0x00, bytes(8), 0), "6A86", why="P1 07")
    card.expect(apdu(0x00, 0x88, 0x00, 0x01, bytes(8), 0), "6982", why="key 30/01 needs state 1")
    card.expect(apdu(0x00, 0x88, 0x00, 0x00, le=0), "6700", why="no data")


# -- WRITE KEY --------------------------------------------------------------------------------

@pytest.mark.command("WRITE KEY")
def test_add_then_use_a_key(scratch, card):
    scratch.key_file()
    card.ok(add_key(0x00, key_record(AUTH_KEY, FREE, FREE, 0x05, counter(3), AUTH)))
    scratch.enter()
    card.ok(ext_auth(card, 0x00, AUTH), "authenticate with the added key")


@pytest.mark.command("WRITE KEY")
def test_modify_a_key(keys, card):
    card.ok(modify_key(0x00, key_record(AUTH_KEY, FREE, FREE, 0x05, counter(3), AUTH_OTHER)), "change 39/00")
    card.expect(ext_auth(card, 0x00, AUTH), "63CX", why="the old value")
    card.ok(ext_auth(card, 0x00, AUTH_OTHER), "the new value")


@pytest.mark.command("WRITE KEY")
def test_modify_a_missing_key(keys, card):
    card.expect(modify_key(0x09, key_record(AUTH_KEY, FREE, FREE, 0x05, counter(3), AUTH)), "6A88")


@pytest.mark.command("WRITE KEY")
def test_add_an_existing_key(keys, card):
    card.refused(add_key(0x00, key_record(AUTH_KEY, FREE, FREE, 0x05, counter(3), AUTH_OTHER)),
                 "adding 39/00 again")
    card.ok(ext_auth(card, 0x00, AUTH), "39/00 unchanged")


@pytest.mark.command("WRITE KEY")
def test_key_value_length(scratch, card):
    scratch.key_file()
    card.expect(add_key(0x00, key_record(AUTH_KEY, FREE, FREE, 0x05, counter(3), bytes(10))), "6700")


@pytest.mark.command("WRITE KEY")
def test_write_key_without_a_key_file(scratch, card):
    card.expect(add_key(0x00, key_record(AUTH_KEY, FREE, FREE, 0x05, counter(3), AUTH)), "6A82")


@pytest.mark.command("WRITE KEY")
def test_key_file_full(scratch, card):
    card.ok(create_key_file(0x0018), "a key file for one 16-byte key (16 + 8)")
    card.ok(add_key(0x00, key_record(AUTH_KEY, FREE, FREE, 0x05, counter(3), AUTH)))
    card.expect(add_key(0x01, key_record(AUTH_KEY, FREE, FREE, 0x05, counter(3), AUTH_OTHER)), "6A84")


@pytest.mark.command("WRITE KEY")
def test_add_right(scratch, card):
    card.ok(create_key_file(0x0100, add=0x11))
    card.ok(add_key(0x00, key_record(AUTH_KEY, FREE, FREE, 0x01, counter(3), AUTH)))
    scratch.enter()
    new = add_key(0x01, key_record(AUTH_KEY, FREE, FREE, 0x01, counter(3), AUTH_OTHER))
    card.expect(new, "6982")
    card.ok(ext_auth(card, 0x00, AUTH))
    card.ok(new, "add a key in state 1")


@pytest.mark.command("WRITE KEY")
def test_change_right(scratch, card):
    s = scratch.key_file()
    s.auth_key(0x00, AUTH, state=1, change=NEVER)
    s.enter()
    card.ok(ext_auth(card, 0x00, AUTH))
    card.expect(modify_key(0x00, key_record(AUTH_KEY, FREE, NEVER, 0x01, counter(3), AUTH_OTHER)), "6982")


@pytest.mark.command("WRITE KEY")
def test_secure_key_update(scratch, card):
    """§2.3: a key type with the two top bits set (39 → F9) changes only with CLA 84, its data
    encrypted and MAC'd under the DF master key (reference §7 row 11 form)."""
    s = scratch.key_file()
    s.auth_key(0x00, AUTH, state=1)
    secure = key_record(0xF9, FREE, FREE, 0x01, counter(3), AUTH_OTHER)
    card.ok(protected_apdu(0x84, 0xD4, 0x39, 0x00, secure, AUTH, card.challenge(), encrypt=True),
            "modify 39/00 under itself into a secure-update key")
    s.enter()
    card.ok(ext_auth(card, 0x00, AUTH_OTHER), "the new master value")
    card.refused(modify_key(0x00, key_record(AUTH_KEY, FREE, FREE, 0x01, counter(3), AUTH)),
                 "plain change of a secure-update key")
    wrong = protected_apdu(0x84, 0xD4, 0x39, 0x00, key_record(0xF9, FREE, FREE, 0x01, counter(3), AUTH), AUTH,
                           card.challenge(), encrypt=True)
    card.expect(wrong, "9302", why="MAC under the old master value")
    card.ok(ext_auth(card, 0x00, AUTH_OTHER), "the master is unchanged")


@pytest.mark.command("WRITE KEY")
def test_a_blocked_key_cannot_be_changed(keys, card):
    for left in (2, 1, 0):
        card.expect(ext_auth(card, 0x00, AUTH_OTHER), f"63C{left}")
    card.expect(modify_key(0x00, key_record(AUTH_KEY, FREE, FREE, 0x05, counter(3), AUTH)), "6983")


@pytest.mark.command("WRITE KEY")
def test_key_id_ff(scratch, card):
    scratch.key_file()
    card.expect(add_key(0xFF, key_record(AUTH_KEY, FREE, FREE, 0x05, counter(3), AUTH)), "6A86",
                why="key id FF is reserved (§2.3)")


@pytest.mark.command("WRITE KEY")
def test_modification_keeps_the_key_length(keys, card):
    """§2.3: a modification must have the stored header + value length."""
    card.refused(modify_key(0x00, key_record(AUTH_KEY, FREE, FREE, 0x05, counter(3), AUTH_DES)),
                 "an 8-byte value for a 16-byte key")
    card.ok(ext_auth(card, 0x00, AUTH), "39/00 unchanged")
