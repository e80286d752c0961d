"""CREATE FILE (reference §1.3) and ERASE DF (§1.7), the empty-DF rule (§1.1), in the scratch DF."""
import pytest

from cardos.conformance.apdus import (CYCLIC, FIXED, FREE, NEVER, SELECT_MF, TAC_KEY, add_key, apdu, append_record,
                                      counter, create_binary, create_df, create_ef, create_key_file, create_purse,
                                      create_records, create_variable, key_record, read_binary, read_record, select_fid,
                                      select_name, update_binary)
from cardos.conformance.baseline import Scratch
from cardos.conformance.testkeys import AUTH, LINE

pytestmark = pytest.mark.family("file system")
SUB_FID, SUB_NAME = 0x0100, b"\xf0CONFORM.SUB"


@pytest.mark.command("CREATE FILE")
def test_create_every_file_type(scratch, card):
    s = scratch.key_file()
    s.key(TAC_KEY, 0x00, LINE, b3=0x01, b4=0x00)
    s.create(create_binary(0x0005, 8))
    s.create(create_records(0x0006, FIXED, 2, 4))
    s.create(create_variable(0x0007, 16))
    s.create(create_records(0x0018, CYCLIC, 3, 23))
    s.create(create_purse(0x0002, use=FREE, tac_key=0x00, log_sfi=0x18), "EP 0002 (TAC key 00, log 0018)")
    s.create(create_df(SUB_FID, SUB_NAME, 0x0080), "a DF inside the scratch DF")
    s.enter()
    for fid in (0x0005, 0x0006, 0x0007, 0x0018):
        card.expect(select_fid(fid, le=None), "9000", why=f"select the new EF {fid:04X}")
    card.expect(apdu(0x80, 0x5C, 0x00, 0x02, le=4), data=bytes(4), why="GET BALANCE of the new purse")
    card.ok(select_fid(SUB_FID), "select the new DF by FID")
    card.ok(select_name(SUB_NAME), "select the new DF by name")


@pytest.mark.command("CREATE FILE")
def test_created_files_are_not_selected(scratch, card):
    """Reference §1.1: CREATE never selects the new file; a created DF is not the current DF."""
    scratch.key_file()
    card.ok(create_df(SUB_FID, SUB_NAME, 0x0080))
    card.ok(create_binary(0x0011, 8), "create EF 0011 right after the DF")
    card.refused(read_binary(None, 0, 8), "READ BINARY of the current EF: no EF is current after CREATE")
    card.ok(select_fid(0x0011, le=None), "0011 went into the scratch DF, not into the new DF")


@pytest.mark.command("CREATE FILE")
def test_fid_already_exists(scratch, card):
    scratch.key_file().create(create_binary(0x0001, 8))
    card.expect(create_binary(0x0001, 8), "6A86")
    card.expect(create_key_file(0x0040), "6A86", why="a second key file")


@pytest.mark.command("CREATE FILE")
def test_cyclic_file_needs_two_records(scratch, card):
    scratch.key_file()
    card.expect(create_records(0x0002, CYCLIC, 1, 4), "6A80")


@pytest.mark.command("CREATE FILE")
def test_wrong_length(scratch, card):
    scratch.key_file()
    card.expect(apdu(0x80, 0xE0, 0x00, 0x01, bytes.fromhex("280008F0F0FF")), "6700", why="EF data of 6 bytes")


@pytest.mark.command("CREATE FILE")
def test_unknown_file_type(scratch, card):
    scratch.key_file()
    card.expect(create_ef(0x0001, 0x21, b"\x00\x08", FREE, FREE), "6A80")


def _sub_df(scratch, card, create=FREE, erase=FREE, space=0x0100):
    """A DF inside the scratch DF with its own key file and master (39/00, state 1); current, rights enforced."""
    scratch.key_file()
    card.ok(create_df(SUB_FID, SUB_NAME, space, create=create, erase=erase))
    card.ok(select_fid(SUB_FID))
    card.ok(create_key_file(0x0040, add=FREE))
    card.ok(add_key(0x00, key_record(0x39, FREE, FREE, 0x01, counter(3), AUTH)))
    card.ok(SELECT_MF)
    card.ok(select_fid(Scratch.FID))
    card.ok(select_fid(SUB_FID))


@pytest.mark.command("CREATE FILE")
def test_create_right(scratch, card):
    _sub_df(scratch, card, create=0x11)
    card.expect(create_binary(0x0001, 8), "6982")
    scratch.authenticate(0x00, AUTH)
    card.ok(create_binary(0x0001, 8))


@pytest.mark.command("CREATE FILE")
def test_no_space_left(scratch, card):
    _sub_df(scratch, card, space=0x0060)
    card.expect(create_binary(0x0001, 0x0200), "6A84")


@pytest.mark.command("CREATE FILE")
def test_fourth_directory_level(scratch, card):
    """MF + 2 levels at most (§1.1): a DF inside a DF inside the scratch DF is refused."""
    _sub_df(scratch, card)
    card.expect(create_df(0x0200, b"\xf0CONFORM.L4", 0x0020), "6A80")


@pytest.mark.command("CREATE FILE")
def test_empty_df_rule(scratch, card):
    """§1.1: an empty DF ignores access rights until it is left; then they hold."""
    card.ok(create_key_file(0x0080, add=NEVER), "key file with add right EF (never)")
    card.ok(add_key(0x00, key_record(0x39, FREE, FREE, 0x01, counter(3), AUTH)), "add a key: still free")
    card.ok(create_binary(0x0001, 8, write=NEVER), "binary with write right EF")
    card.ok(update_binary(0x01, 0, b"\x01"), "write it: still free")
    scratch.enter()
    card.expect(update_binary(0x01, 0, b"\x02"), "6982", why="after re-entering the DF")
    card.expect(add_key(0x01, key_record(0x39, FREE, FREE, 0x01, counter(3), AUTH)), "6982",
                why="WRITE KEY after re-entering the DF")


@pytest.mark.command("ERASE DF")
def test_erase_removes_everything_below(scratch, card):
    s = scratch.key_file().create(create_binary(0x0001, 8)).create(create_variable(0x0002, 16))
    card.ok(append_record(0x02, bytes.fromhex("0101AA")))
    s.enter()
    card.ok("800E000000")
    card.expect(select_fid(0x0001, le=None), "6A82", why="EF 0001 after ERASE DF")
    card.expect(read_record(0x02, 1), "6A82", why="EF 0002 after ERASE DF")
    card.ok(select_name(Scratch.NAME), "the DF itself stays")
    card.ok(create_key_file(0x0100, 0x01, 0xEF), "the erased DF is empty: free access again")


@pytest.mark.command("ERASE DF")
def test_erase_right(scratch, card):
    _sub_df(scratch, card, erase=0x11)
    card.expect("800E000000", "6982")
    scratch.authenticate(0x00, AUTH)
    card.ok("800E000000")
    card.ok(select_name(SUB_NAME), "the erased DF is still there")
    card.expect(add_key(0x01, key_record(0x39, FREE, FREE, 0x01, counter(3), AUTH)), "6A82",
                why="WRITE KEY: the key file is gone")


@pytest.mark.command("ERASE DF")
def test_erase_bad_p1p2(scratch, card):
    scratch.key_file().create(create_binary(0x0001, 8))
    card.refused("800E010000", "ERASE DF with P1 01")
    card.expect(select_fid(0x0001, le=None), "9000", why="nothing was erased")


@pytest.mark.command("CREATE FILE")
def test_the_key_file_comes_first(scratch, card):
    """§1.1: the KEY file must be the first file created in a DF."""
    card.refused(create_binary(0x0001, 8), "an EF before the key file")


@pytest.mark.command("READ BINARY")
def test_sfi_only_for_fids_up_to_001f(scratch, card):
    """§1.1: the SFI is the low 5 bits of the FID, usable only for FIDs 0001..001F."""
    scratch.key_file().create(create_binary(0x0101, 8))
    card.ok(select_fid(0x0101, le=None))
    card.expect(read_binary(0x01, 0, 1), "6A82", why="SFI 01 with only EF 0101 in the DF")


@pytest.mark.command("READ BINARY")
def test_the_key_file_is_never_readable(scratch, card):
    """§1.1: the KEY file is never readable."""
    scratch.key_file().auth_key(0x00, AUTH, state=1)
    scratch.enter()
    if card.send(select_fid(0x0000, le=None)).sw == 0x9000:
        card.refused(read_binary(None, 0, 8), "READ BINARY of the selected key file")
        card.refused(read_record(0x00, 1, 0), "READ RECORD of the selected key file")


@pytest.mark.command("CREATE FILE")
def test_record_length_limit(scratch, card):
    """§1.3: records are at most 248 bytes long."""
    scratch.key_file()
    card.refused(create_records(0x0002, FIXED, 2, 249), "fixed records of 249 bytes")
