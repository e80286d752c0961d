"""READ BINARY / UPDATE BINARY (reference §1.5, §1.6) and their line protection (§2.8),
on files the suite creates in its scratch DF."""
import pytest

from cardos.conformance.apdus import (ENCRYPT, FIXED, MAC, counter, create_binary, create_records, key_byte,
                                      read_binary, select_fid, update_binary)
from cardos.conformance.testkeys import AUTH, LINE, LINE_OTHER
from cardos.terminal.secure import protected_apdu

pytestmark = pytest.mark.family("file system")
DATA = bytes(range(0x10, 0x20))


def protect(card, cla, ins, p1, p2, data, key, encrypt=False, le=None):
    """GET CHALLENGE, then the command with a MAC (and encrypted data) — reference §2.8."""
    return protected_apdu(cla, ins, p1, p2, data, key, card.challenge(), encrypt=encrypt, le=le)


@pytest.fixture
def files(scratch, card):
    s = scratch.key_file().auth_key(0, AUTH, state=1)
    s.key(0x36, 0x00, LINE, b3=0xFF).key(0x36, 0x01, LINE_OTHER, b3=0xFF, b4=counter(2))
    s.create(create_binary(0x0001, 16), "binary 0001, free")
    s.create(create_binary(0x0002, 16, read=0x11, write=0x11), "binary 0002, state 1 for reads and writes")
    s.create(create_records(0x0003, FIXED, 2, 4), "fixed records 0003")
    s.create(create_binary(0x0004, 16, protection=MAC), "binary 0004, MAC on writes")
    s.create(create_binary(0x0005, 16, protection=MAC | ENCRYPT), "binary 0005, encrypted + MAC writes")
    s.create(create_binary(0x0006, 16, protection=MAC, key=key_byte(protected_reads=True)),
             "binary 0006, protected reads")
    s.create(create_binary(0x0007, 16, protection=MAC, key=key_byte(write_key=2)), "binary 0007, line key 02 (absent)")
    s.create(create_binary(0x0008, 16, protection=MAC, key=key_byte(write_key=1)), "binary 0008, line key 01 (2 tries)")
    return s.enter()


@pytest.mark.command("READ BINARY")
def test_never_written_file_warns(files, card):
    """Reference §1.6: 6281 for a binary file that was never written."""
    card.expect(read_binary(0x01, 0, 16), "6281")


@pytest.mark.command("UPDATE BINARY")
def test_update_then_read_by_sfi(files, card):
    card.ok(update_binary(0x01, 0, DATA))
    card.expect(read_binary(0x01, 0, 16), data=DATA)
    card.ok(update_binary(0x01, 4, b"\xaa\xbb"), "update at offset 4")
    card.expect(read_binary(0x01, 3, 4), data=DATA[3:4] + b"\xaa\xbb" + DATA[6:7])


@pytest.mark.command("READ BINARY")
def test_read_the_current_ef_by_offset(files, card):
    card.ok(update_binary(0x01, 0, DATA))
    card.expect(select_fid(0x0001, le=None), "9000")
    card.expect(read_binary(None, 2, 4), data=DATA[2:6])
    card.ok(update_binary(None, 14, b"\x01\x02"), "UPDATE BINARY of the current EF")
    card.expect(read_binary(0x01, 14, 2), data=b"\x01\x02")


@pytest.mark.command("READ BINARY")
def test_read_outside_the_file(files, card):
    card.ok(update_binary(0x01, 0, DATA))
    card.expect(read_binary(0x01, 16, 1), "6B00", why="offset = file size")
    r = card.expect(read_binary(0x01, 12, 8), "6CXX", "6700", "6B00", why="offset + Le past the end")
    if r.sw >> 8 == 0x6C:
        card.check(r.sw & 0xFF == 4, "READ BINARY", f"answered {r.sw:04X}; 4 bytes are left from offset 12")


@pytest.mark.command("UPDATE BINARY")
def test_update_outside_the_file(files, card):
    card.ok(update_binary(0x01, 0, DATA))
    card.expect(update_binary(0x01, 16, b"\x00"), "6B00", why="offset = file size")
    card.expect(update_binary(0x01, 12, bytes(8)), "6700", "6B00", why="data past the end")
    card.expect(read_binary(0x01, 0, 16), data=DATA)


@pytest.mark.command("READ BINARY")
def test_read_binary_of_a_record_file(files, card):
    card.expect(read_binary(0x03, 0, 4), "6981")


@pytest.mark.command("UPDATE BINARY")
def test_update_binary_of_a_record_file(files, card):
    card.expect(update_binary(0x03, 0, b"\x00"), "6981")


@pytest.mark.command("READ BINARY")
def test_read_binary_no_such_file(files, card):
    card.expect(read_binary(0x1E, 0, 4), "6A82")


@pytest.mark.command("UPDATE BINARY")
def test_update_binary_no_such_file(files, card):
    card.expect(update_binary(0x1E, 0, b"\x00"), "6A82")


@pytest.mark.command("READ BINARY")
def test_read_right(files, card):
    card.expect(read_binary(0x02, 0, 4), "6982")
    files.authenticate(0x00, AUTH)
    card.expect(read_binary(0x02, 0, 4), "9000", "6281")


@pytest.mark.command("UPDATE BINARY")
def test_write_right(files, card):
    card.expect(update_binary(0x02, 0, b"\x00"), "6982")
    files.authenticate(0x00, AUTH)
    card.ok(update_binary(0x02, 0, b"\x00"))


# -- line protection (§2.8) -------------------------------------------------------------------

@pytest.mark.family("line protection")
@pytest.mark.command("UPDATE BINARY")
def test_mac_protected_write(files, card):
    card.ok(protect(card, 0x04, 0xD6, 0x84, 0x00, DATA, LINE), "UPDATE BINARY with a MAC")
    card.expect(read_binary(0x04, 0, 16), data=DATA)


@pytest.mark.family("line protection")
@pytest.mark.command("UPDATE BINARY")
def test_mac_missing(files, card):
    card.expect(update_binary(0x04, 0, DATA), "6987", why="plain write to a MAC-protected file")


@pytest.mark.family("line protection")
@pytest.mark.command("UPDATE BINARY")
def test_mac_wrong(files, card):
    card.ok(protect(card, 0x04, 0xD6, 0x84, 0x00, DATA, LINE))
    bad = protect(card, 0x04, 0xD6, 0x84, 0x00, bytes(16), LINE_OTHER)
    card.expect(bad, "6988", why="MAC with another key")
    card.expect(read_binary(0x04, 0, 16), data=DATA)


@pytest.mark.family("line protection")
@pytest.mark.command("UPDATE BINARY")
def test_mac_needs_a_fresh_challenge(files, card):
    """The MAC's IV is the last challenge, valid for the next command only (§2.5, §2.8)."""
    good = protect(card, 0x04, 0xD6, 0x84, 0x00, DATA, LINE)
    card.ok(good)
    card.expect(good, "6984", "6988", why="the same command again (challenge used up)")
    stale = protect(card, 0x04, 0xD6, 0x84, 0x00, bytes(16), LINE)
    card.ok(select_fid(0x0004, le=None), "another command in between")
    card.expect(stale, "6984", "6988", why="challenge followed by another command")
    card.expect(read_binary(0x04, 0, 16), data=DATA)


@pytest.mark.family("line protection")
@pytest.mark.command("UPDATE BINARY")
def test_mac_on_an_unprotected_file(files, card):
    card.expect(protect(card, 0x04, 0xD6, 0x81, 0x00, DATA, LINE), "6900")


@pytest.mark.family("line protection")
@pytest.mark.command("UPDATE BINARY")
def test_line_key_missing(files, card):
    card.expect(protect(card, 0x04, 0xD6, 0x87, 0x00, DATA, LINE), "6A88")


@pytest.mark.family("line protection")
@pytest.mark.command("UPDATE BINARY")
def test_line_key_try_counter_blocks(files, card):
    """Wrong MACs count against the line key's error counter (§2.3); at 0 the key is blocked (6983)."""
    for _ in range(2):
        card.expect(protect(card, 0x04, 0xD6, 0x88, 0x00, DATA, LINE), "6988")
    card.expect(protect(card, 0x04, 0xD6, 0x88, 0x00, DATA, LINE_OTHER), "6983", why="right MAC, key blocked")


@pytest.mark.family("line protection")
@pytest.mark.command("UPDATE BINARY")
def test_encrypted_write(files, card):
    card.ok(protect(card, 0x04, 0xD6, 0x85, 0x00, DATA[:11], LINE, encrypt=True), "encrypted UPDATE BINARY")
    card.expect(read_binary(0x05, 0, 11), data=DATA[:11])


@pytest.mark.family("line protection")
@pytest.mark.command("READ BINARY")
def test_protected_read(files, card):
    card.ok(protect(card, 0x04, 0xD6, 0x86, 0x00, DATA, LINE))
    card.expect(read_binary(0x06, 0, 16), "6987", why="plain read of a file with protected reads")
    data = card.ok(protect(card, 0x04, 0xB0, 0x86, 0x00, b"", LINE, le=0), "READ BINARY with a MAC")
    card.check(data[:16] == DATA and len(data) == 20, "READ BINARY",
               f"protected read returned {data.hex().upper()}, expected the 16 bytes and a 4-byte MAC")
    card.expect(protect(card, 0x04, 0xB0, 0x86, 0x00, b"", LINE_OTHER, le=0), "6988", why="wrong MAC")
