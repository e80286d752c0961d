"""Personalization (reference §5.4): the card takes the FMCOS personalization sequence of the
``city`` profile (every step of issuing the baseline is checked for 9000), then shows the layout of
§5.1 / §5.2, its keys work, its rights and lock-down hold; ERASE DF of the MF and issuing again
from the erased card; adding an application to an issued card."""
import pytest

from cardos.conformance.apdus import (SELECT_MF, apdu, append_record, create_binary, create_key_file, key_record,
                                      read_binary, read_record, select_fid, select_name, tlv_find, update_binary)
from cardos.conformance.baseline import HOLDER, external_authenticate
from cardos.conformance.purse import EP, PurseTerminal
from cardos.terminal.secure import protected_apdu

from .conftest import CITY_AID

pytestmark = pytest.mark.family("personalization")
CAMPUS_AID = bytes.fromhex("F0434152444F5343414D505553")


@pytest.mark.command("issuance: layout")
def test_issued_layout(city, card):
    serial = city.serial
    fci = card.ok(SELECT_MF)
    card.check(tlv_find(fci, 0x88) == b"\x01", "SELECT", f"MF FCI {fci.hex().upper()}: DIR SFI 01 expected")
    entry = card.ok(read_record(0x01, 1), "DIR record 1")
    card.check(entry[:1] == b"\x61" and tlv_find(entry[2:], 0x4F) == CITY_AID and tlv_find(entry[2:], 0x50) == b"PBOC",
               "READ RECORD", f"DIR record {entry.hex().upper()}: expected 61 … 4F <city AID> 50 'PBOC'")
    mf_info = card.ok(read_binary(0x05, 0, 30), "MF 0005", length=30)
    card.check(mf_info[8:16] == serial, "READ BINARY", "0005 bytes 8..15 are not the application serial")
    fci = card.ok(select_name(CITY_AID))
    public = card.ok(read_binary(0x15, 0, 30), "0015", length=30)
    card.check(tlv_find(fci, 0x9F0C) == public, "SELECT", "9F0C differs from 0015")
    card.check(public[12:20] == serial, "READ BINARY", "0015 bytes 12..19 are not the application serial")
    holder = card.ok(read_binary(0x16, 0, 39), "0016", length=39)
    card.check(holder[2:2 + len(HOLDER)] == HOLDER.encode(), "READ BINARY", "0016 does not hold the cardholder name")
    composite = card.ok(read_record(0x1A, 1), "001A record 1")
    card.check(len(composite) == 48 and composite[:2] == b"\x01\x2e", "READ RECORD",
               f"001A record {composite.hex().upper()}: expected tag 01, length 2E")
    card.expect(read_record(0x18, 1, 0x17), "9000", "6A83", why="the transaction log is readable")
    card.ok(apdu(0x80, 0x5C, 0x00, EP, le=4), "GET BALANCE of the EP", length=4)


@pytest.mark.command("issuance: keys")
def test_issued_keys_work(city, card):
    external_authenticate(card, 0x00, city.card_key("city", "master"), why="application master key")
    content = card.ok(read_binary(0x15, 0, 30))
    card.ok(protected_apdu(0x04, 0xD6, 0x95, 0x00, content, city.card_key("city", "line"), card.challenge()),
            "rewrite 0015 with the application line key")
    alg = city.keys.algorithm  # the key set's algorithm: 3DES, or SM4 (16-byte blocks)
    block = bytes(range(1, alg.block + 1))
    encrypted = card.ok(apdu(0x00, 0x88, 0x00, 0x00, block, 0), "INTERNAL AUTHENTICATE with key 30/00")
    card.check(encrypted == alg.encrypt(city.card_key("city", "internal"), block), "INTERNAL AUTHENTICATE",
               "the internal key does not encrypt like the key set's diversified key")


@pytest.mark.command("issuance: rights")
def test_rights_after_issuance(city, card):
    card.expect(append_record(0x18, bytes(23)), "6982", why="the transaction log is never writable")
    card.refused(update_binary(0x15, 0, b"\x00"), "plain write to 0015 (MAC-protected)")
    card.expect("800E000000", "6982", why="ERASE DF of the application without its master key")
    card.ok(SELECT_MF)
    card.expect("800E000000", "6982", why="ERASE DF of the MF without the card master key")
    card.expect(create_binary(0x0011, 8), "6982", why="CREATE FILE in the MF without authentication")


@pytest.mark.command("WRITE KEY")
def test_lockdown(city, card):
    """§5.4 step 8: after issuance the purse keys cannot be changed, even by the application master."""
    master = city.card_key("city", "master")
    external_authenticate(card, 0x00, master, why="application master key")
    record = key_record(0xFE, 0xF0, 0xEF, 0x01, 0x00, bytes(16))
    card.expect(protected_apdu(0x84, 0xD4, 0x3E, 0x01, record, master, card.challenge(), encrypt=True), "6982",
                why="change purchase key 3E/01 (change right EF)")


@pytest.mark.command("WRITE KEY")
def test_secure_update_keys_refuse_a_plain_change(city, card):
    external_authenticate(card, 0x00, city.card_key("city", "master"), why="application master key")
    card.refused(apdu(0x80, 0xD4, 0x36, 0x00, key_record(0x36, 0xF0, 0xAA, 0xFF, 0x33, bytes(16))),
                 "plain change of the line key (written with secure update)")


@pytest.mark.command("ERASE DF")
def test_erase_the_card_and_issue_again(city, card):
    """ERASE DF in the MF wipes every file and application but keeps the MF; the empty MF is free
    again (§1.1, §1.7); the card then takes a whole personalization without authentication."""
    city.dirty = True
    city.mf_authenticate(card)
    card.ok("800E000000", "ERASE DF in the MF")
    card.ok(SELECT_MF, "the MF stays")
    card.expect(select_fid(0x1001), "6A82", why="the city application is gone")
    card.expect(select_name(CITY_AID), "6A82", why="the city application is gone (by name)")
    card.expect(read_binary(0x05, 0, 8), "6A82", why="MF 0005 is gone")
    card.ok(create_key_file(0x0040, add=0xAA), "CREATE FILE (key file) in the empty MF without authentication")
    card.ok(create_binary(0x0011, 8, write=0xAA), "an EF with write right AA")
    card.ok(update_binary(0x11, 0, b"\x01"), "and write it without authentication (same session)")
    card.ok("800E000000", "ERASE DF again (free)")
    city.ensure(card, "city")
    card.check(city.issues >= 2, "personalization", "the card was not issued again")
    card.ok(select_name(CITY_AID), "the city application is back")


@pytest.mark.command("issuance: add application")
def test_add_an_application(city, card):
    """An extension operator adds the ``campus`` application under the MF create right (key 39/01)."""
    from cardos.personalize import IssueError, add_application

    city.dirty = True
    card.ok(SELECT_MF)
    try:
        plan = add_application(card.target.transmit, "campus", city.keys,
                               log=lambda label, a, r: card.trace.add(a, r, label))
    except IssueError as exc:
        card.check(False, card.label(exc.apdu) if exc.apdu else "personalization", f"adding campus: {exc}")
    fci = card.ok(select_name(CAMPUS_AID), "select the campus application")
    card.check(tlv_find(fci, 0x84) == CAMPUS_AID, "SELECT", "selected another DF")
    serial = bytes.fromhex(plan.values["card_serial"])
    campus = PurseTerminal(card, city.keys, serial, {("load", 1): 1})
    campus.load(100, EP)
