"""Transport interconnect (交通联合, JT/T 978 style) flows (reference §5.3) on a card issued with the
``interconnect`` profile: selection by AID and the FCI a reader uses, 0015/0016/0017, what transit
readers read (Metrodroid, NFSee), load and purchase, and the transit CAPP purchase that writes the
128-byte composite record (001A, CRC-32) and the process log (001E) with the debit, atomically."""
import zlib

import pytest

from cardos.conformance.apdus import apdu, read_binary, read_record, read_record_by_tag, tlv_find
from cardos.conformance.purse import CAPP, DATE_TIME, EP

from .conftest import INTERCONNECT_AID

pytestmark = pytest.mark.family("interconnect")


def transit_record(current: bytes, marker: int) -> bytes:
    """A new 128-byte composite record: same header, new content, CRC-32 over bytes 6..123 at 124."""
    body = bytes((marker,)) * 8 + current[14:124]
    record = current[:6] + body[:118]
    return record + zlib.crc32(record[6:124]).to_bytes(4, "big")


def process_record(marker: int) -> bytes:
    """48 bytes: type ‖ terminal 8 ‖ industry ‖ line 2 ‖ station 2 ‖ operator 2 ‖ RFU ‖ amount 4 ‖
    balance 4 ‖ date-time 7 ‖ city 2 ‖ institution 8 ‖ RFU 6 (reference §5.3)."""
    return (bytes((0x03,)) + bytes.fromhex("0000123456789012") + b"\x01" + bytes((0, marker)) + b"\x00\x07"
            + b"\x00\x01" + b"\x00" + (marker).to_bytes(4, "big") + bytes(4) + DATE_TIME + b"\x31\x00" + bytes(8)
            + bytes(6))


@pytest.mark.command("SELECT")
def test_fci_and_public_data(interconnect, card):
    fci = card.ok(apdu(0x00, 0xA4, 0x04, 0x00, INTERCONNECT_AID, 0))
    card.check(tlv_find(fci, 0x84) == INTERCONNECT_AID, "SELECT", "the FCI names another DF")
    public = tlv_find(fci, 0x9F0C)
    card.check(public is not None and len(public) >= 30, "SELECT", "no 30-byte 9F0C in the FCI")
    card.check(public[:30] == card.ok(read_binary(0x15, 0, 30)), "SELECT", "9F0C differs from 0015")
    number = public[10:20].hex()
    card.check(number.isdigit(), "READ BINARY", f"card number {number} is not BCD")
    card.check(public[12:20] == interconnect.serial, "READ BINARY",
               "0015 bytes 12..19 (the last 16 digits of the card number) are not the application serial")


@pytest.mark.command("READ BINARY")
def test_cardholder_and_management_files(interconnect, card):
    card.ok(read_binary(0x16, 0, 55), "0016 (55 bytes)", length=55)
    management = card.ok(read_binary(0x17, 0, 60), "0017 (60 bytes)", length=60)
    card.check(management[8:10] != b"\x00\x00", "READ BINARY", "0017: the interconnect flag (bytes 8..9) is 0")


@pytest.mark.command("READ RECORD")
def test_what_transit_readers_read(interconnect, card):
    """NFSee / Metrodroid: 0015 by SFI, the balance, the 23-byte history in SFI 18."""
    card.ok("00B095001E", "00B095001E (0015)", length=30)
    card.ok("805C000204", "805C000204 (balance)", length=4)
    interconnect.load(100, EP)
    history = card.ok("00B201C417", "00B201C417 (newest history record)", length=23)
    card.check(history[9] == 0x02, "READ RECORD", f"newest record has type {history[9]:02X}, expected 02 (load)")


@pytest.mark.command("DEBIT FOR PURCHASE")
def test_load_and_purchase(interconnect, card):
    interconnect.load(500, EP)
    interconnect.purchase(120, EP)


@pytest.mark.command("DEBIT FOR CAPP PURCHASE")
def test_transit_capp_purchase(interconnect, card):
    interconnect.load(300, EP)
    current = card.ok(read_record_by_tag(0x1A, 0x02), "001A record tag 02")
    card.check(len(current) == 128 and zlib.crc32(current[6:124]).to_bytes(4, "big") == current[124:],
               "READ RECORD", "the 001A record is not 128 bytes with a CRC-32 of bytes 6..123 at 124")
    new_record, log = transit_record(current, 0x55), process_record(0x55)
    init = interconnect.initialize(0x03, EP, 200)
    card.ok(apdu(0x80, 0xDC, 0x02, 0x1A << 3, new_record), "UPDATE CAPP DATA CACHE 001A")
    card.ok(apdu(0x80, 0xDC, 0x00, 0x1E << 3, log), "UPDATE CAPP DATA CACHE 001E")
    interconnect.debit(init)
    card.expect(read_record_by_tag(0x1A, 0x02), data=new_record, why="001A after the CAPP purchase")
    card.expect(read_record(0x1E, 1), data=log, why="001E record 1 after the CAPP purchase")
    history = card.ok(read_record(0x18, 1, 0x17))
    card.check(history[9] == CAPP, "DEBIT FOR CAPP PURCHASE", f"logged type {history[9]:02X}, expected 09")


@pytest.mark.command("DEBIT FOR CAPP PURCHASE")
def test_failed_transit_capp_changes_nothing(interconnect, card):
    interconnect.load(50, EP)
    current = card.ok(read_record_by_tag(0x1A, 0x02))
    newest = card.send(read_record(0x1E, 1))
    init = interconnect.initialize(0x03, EP, 10)
    card.ok(apdu(0x80, 0xDC, 0x02, 0x1A << 3, transit_record(current, 0x66)), "UPDATE CAPP DATA CACHE 001A")
    card.ok(apdu(0x80, 0xDC, 0x00, 0x1E << 3, process_record(0x66)), "UPDATE CAPP DATA CACHE 001E")
    tsn, _sk, _mac1, _mac2, _tac = interconnect.debit_parts(init)
    card.expect(apdu(0x80, 0x54, 0x01, 0x00, tsn + DATE_TIME + bytes(4), 8), "9302")
    card.expect(read_record_by_tag(0x1A, 0x02), data=current, why="001A after a failed debit")
    after = card.send(read_record(0x1E, 1))
    card.check((after.sw, after.data) == (newest.sw, newest.data), "DEBIT FOR CAPP PURCHASE",
               "001E changed although the debit failed")
    card.check(interconnect.balance(EP) == init.balance, "DEBIT FOR CAPP PURCHASE", "the balance changed")
    interconnect.purchase(1, EP)
