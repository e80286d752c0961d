"""READ RECORD / UPDATE RECORD / APPEND RECORD (reference §1.5, §1.6) on fixed, variable and
cyclic record files the suite creates in its scratch DF."""
import pytest

from cardos.conformance.apdus import (CYCLIC, FIXED, MAC, apdu, append_record, create_binary, create_records,
                                      create_variable, read_record, read_record_by_tag, update_record)
from cardos.conformance.testkeys import AUTH, LINE

from .check_binary import protect

pytestmark = pytest.mark.family("file system")
R = [bytes((i,)) * 4 for i in range(1, 6)]


@pytest.fixture
def files(scratch, card):
    s = scratch.key_file().auth_key(0, AUTH, state=1).key(0x36, 0x00, LINE, b3=0xFF)
    s.create(create_records(0x0007, FIXED, 3, 4), "fixed 3 × 4")
    s.create(create_records(0x0008, CYCLIC, 3, 4), "cyclic 3 × 4")
    s.create(create_variable(0x0009, 32), "variable, 32 bytes")
    s.create(create_binary(0x000A, 8), "binary")
    s.create(create_records(0x000B, FIXED, 2, 4, read=0x11, write=0x11), "fixed, state 1 for reads and writes")
    s.create(create_records(0x000C, FIXED, 2, 4, protection=MAC), "fixed, MAC-protected writes")
    return s.enter()


@pytest.mark.command("APPEND RECORD")
def test_append_fills_a_fixed_file(files, card):
    for data in R[:3]:
        card.ok(append_record(0x07, data))
    for number in (1, 2, 3):
        card.expect(read_record(0x07, number, 4), data=R[number - 1])
    card.expect(append_record(0x07, R[3]), "6A84", why="the file is full")


@pytest.mark.command("APPEND RECORD")
def test_append_of_the_wrong_length(files, card):
    card.expect(append_record(0x07, b"\x01\x02"), "6700", why="2 bytes into 4-byte records")


@pytest.mark.command("READ RECORD")
def test_record_not_found(files, card):
    card.ok(append_record(0x07, R[0]))
    card.expect(read_record(0x07, 2, 4), "6A83")


@pytest.mark.command("READ RECORD")
def test_read_record_le(files, card):
    """Reference §1.5: Le 00 returns the whole record; a wrong Le gets ``6CXX`` with its length."""
    card.ok(append_record(0x07, R[0]))
    card.expect(read_record(0x07, 1, 0), data=R[0])
    card.expect(read_record(0x07, 1, 2), "6C04")


@pytest.mark.command("UPDATE RECORD")
def test_update_fixed_record(files, card):
    for data in R[:3]:
        card.ok(append_record(0x07, data))
    card.ok(update_record(0x07, 2, b"\xee" * 4))
    card.expect(read_record(0x07, 2, 4), data=b"\xee" * 4)
    card.expect(read_record(0x07, 3, 4), data=R[2])
    card.expect(update_record(0x07, 2, b"\xee" * 3), "6700", why="a fixed record keeps its length")


@pytest.mark.command("UPDATE RECORD")
def test_update_record_not_found(files, card):
    card.ok(append_record(0x07, R[0]))
    card.expect(update_record(0x07, 3, R[1]), "6A83")


@pytest.mark.command("APPEND RECORD")
def test_cyclic_file_newest_first(files, card):
    """Cyclic files: record 1 is the newest; when full the oldest is overwritten (§1.5)."""
    for data in R[:3]:
        card.ok(append_record(0x08, data))
    for number, data in zip((1, 2, 3), (R[2], R[1], R[0])):
        card.expect(read_record(0x08, number, 4), data=data, why=f"record {number}")
    card.ok(append_record(0x08, R[3]), "append to the full cyclic file")
    for number, data in zip((1, 2, 3), (R[3], R[2], R[1])):
        card.expect(read_record(0x08, number, 4), data=data, why=f"record {number} after wrapping")


@pytest.mark.command("UPDATE RECORD")
def test_cyclic_records_are_append_only(files, card):
    """PERM: cyclic files take UPDATE/APPEND RECORD as appends only; a record is not rewritten in place."""
    card.ok(append_record(0x08, R[0]))
    card.ok(append_record(0x08, R[1]))
    card.refused(update_record(0x08, 2, b"\xee" * 4), "UPDATE RECORD of record 2 of a cyclic file")
    card.expect(read_record(0x08, 2, 4), data=R[0])


@pytest.mark.command("READ RECORD")
def test_variable_records_by_number_and_tag(files, card):
    card.ok(append_record(0x09, bytes.fromhex("0102AABB")))
    card.ok(append_record(0x09, bytes.fromhex("0203CCDDEE")))
    card.expect(read_record(0x09, 1), data=bytes.fromhex("0102AABB"))
    card.expect(read_record(0x09, 2), data=bytes.fromhex("0203CCDDEE"))
    card.expect(read_record_by_tag(0x09, 0x02), data=bytes.fromhex("0203CCDDEE"), why="READ RECORD by tag 02")
    card.expect(read_record_by_tag(0x09, 0x07), "6A83", why="no record with tag 07")


@pytest.mark.command("UPDATE RECORD")
def test_variable_record_keeps_its_length(files, card):
    card.ok(append_record(0x09, bytes.fromhex("0102AABB")))
    card.ok(update_record(0x09, 1, bytes.fromhex("01021122")))
    card.expect(read_record(0x09, 1), data=bytes.fromhex("01021122"))
    card.refused(update_record(0x09, 1, bytes.fromhex("0103112233")), "a variable record must keep its length")
    card.expect(read_record(0x09, 1), data=bytes.fromhex("01021122"))


@pytest.mark.command("UPDATE RECORD")
def test_update_record_by_tag(files, card):
    """P2 mode ``000`` first / ``001`` last record with tag P1 (§1.5)."""
    for record in ("0101AA", "0201BB", "0101CC"):
        card.ok(append_record(0x09, bytes.fromhex(record)))
    card.ok(apdu(0x00, 0xDC, 0x01, (0x09 << 3) | 0b000, bytes.fromhex("010111")), "update the first record tagged 01")
    card.ok(apdu(0x00, 0xDC, 0x01, (0x09 << 3) | 0b001, bytes.fromhex("010133")), "update the last record tagged 01")
    card.expect(read_record(0x09, 1), data=bytes.fromhex("010111"))
    card.expect(read_record(0x09, 2), data=bytes.fromhex("0201BB"))
    card.expect(read_record(0x09, 3), data=bytes.fromhex("010133"))


@pytest.mark.command("READ RECORD")
def test_read_record_of_a_binary_file(files, card):
    card.expect(read_record(0x0A, 1, 4), "6981")


@pytest.mark.command("UPDATE RECORD")
def test_update_record_of_a_binary_file(files, card):
    card.expect(update_record(0x0A, 1, R[0]), "6981")


@pytest.mark.command("APPEND RECORD")
def test_append_record_to_a_binary_file(files, card):
    card.expect(append_record(0x0A, R[0]), "6981")


@pytest.mark.command("READ RECORD")
def test_read_record_no_such_file(files, card):
    card.expect(read_record(0x1E, 1, 4), "6A82")


@pytest.mark.command("APPEND RECORD")
def test_append_record_no_such_file(files, card):
    card.expect(append_record(0x1E, R[0]), "6A82")


@pytest.mark.command("READ RECORD")
def test_read_right(files, card):
    card.expect(read_record(0x0B, 1, 4), "6982")


@pytest.mark.command("APPEND RECORD")
def test_write_right(files, card):
    card.expect(append_record(0x0B, R[0]), "6982")
    files.authenticate(0x00, AUTH)
    card.ok(append_record(0x0B, R[0]))
    card.expect(read_record(0x0B, 1, 4), data=R[0])


@pytest.mark.command("UPDATE RECORD")
def test_update_record_right(files, card):
    files.authenticate(0x00, AUTH)
    card.ok(append_record(0x0B, R[0]))
    files.enter()
    card.expect(update_record(0x0B, 1, R[1]), "6982")


@pytest.mark.family("line protection")
@pytest.mark.command("APPEND RECORD")
def test_protected_record_writes(files, card):
    card.expect(append_record(0x0C, R[0]), "6987", why="plain append to a MAC-protected file")
    card.ok(protect(card, 0x04, 0xE2, 0x00, 0x0C << 3, R[0], LINE), "APPEND RECORD with a MAC")
    card.ok(protect(card, 0x04, 0xDC, 0x01, (0x0C << 3) | 4, R[1], LINE), "UPDATE RECORD with a MAC")
    card.expect(read_record(0x0C, 1, 4), data=R[1])
    card.expect(update_record(0x0C, 1, R[2]), "6987", why="plain update of a MAC-protected file")


@pytest.mark.command("READ RECORD")
def test_read_record_bad_mode(files, card):
    card.ok(append_record(0x07, R[0]))
    card.expect(apdu(0x00, 0xB2, 0x01, (0x07 << 3) | 0b111, le=4), "6A86", why="P2 mode 111")


@pytest.mark.command("UPDATE RECORD")
def test_update_record_bad_mode(files, card):
    card.ok(append_record(0x07, R[0]))
    card.expect(apdu(0x00, 0xDC, 0x01, (0x07 << 3) | 0b111, R[1]), "6A86", why="P2 mode 111")
    card.expect(read_record(0x07, 1, 4), data=R[0])


@pytest.mark.command("APPEND RECORD")
def test_append_a_malformed_variable_record(files, card):
    """A variable-length record is tag ‖ length ‖ value (§1.2); one whose length byte lies is refused."""
    card.refused(append_record(0x09, bytes.fromhex("0105AABB")), "length byte 05 with 2 value bytes")
    card.expect(read_record(0x09, 1), "6A83", why="nothing was appended")
