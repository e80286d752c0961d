"""SELECT (reference §1.4): by FID and by DF name, FCI, errors."""
import pytest

from cardos.conformance.apdus import SELECT_MF, apdu, read_binary, select_fid, select_name, tlv_find
from cardos.conformance.baseline import SCRATCH_FID, SCRATCH_NAME

from .conftest import CITY_AID

pytestmark = pytest.mark.family("file system")
CITY_FID = 0x1001


@pytest.mark.command("SELECT")
def test_select_mf_by_fid_and_by_name(card):
    fci = card.send(SELECT_MF).data
    name = tlv_find(fci, 0x84)
    card.check(name is not None, "SELECT", "the MF's FCI has no DF name")
    again = card.ok(select_name(name), "select the MF by its DF name")
    card.check(tlv_find(again, 0x84) == name, "SELECT", "selecting the MF by name returned another DF")


@pytest.mark.command("SELECT")
def test_mf_fci_points_to_the_dir_or_an_ef(card):
    """MF / DDF FCI: ``A5`` holds ``88`` (SFI of the DIR) or ``9F0C`` (reference §1.4)."""
    fci = card.send(SELECT_MF).data
    card.check(tlv_find(fci, 0x88) is not None or tlv_find(fci, 0x9F0C) is not None, "SELECT",
               f"MF FCI {fci.hex().upper()} has neither 88 nor 9F0C")


@pytest.mark.command("SELECT")
def test_unknown_fid(card):
    card.ok(SELECT_MF)
    card.expect(select_fid(0xFEDC), "6A82")


@pytest.mark.command("SELECT")
def test_unknown_name(card):
    card.expect(select_name(b"\xf0NO SUCH DF"), "6A82")


@pytest.mark.command("SELECT")
def test_bad_p1(card):
    card.expect(apdu(0x00, 0xA4, 0x40, 0x00, b"\x3f\x00"), "6A86")


@pytest.mark.command("SELECT")
def test_fid_of_the_wrong_length(card):
    card.expect(apdu(0x00, 0xA4, 0x00, 0x00, b"\x3f"), "6700")


@pytest.mark.command("SELECT")
def test_applications_listed_in_the_dir_are_selectable(card):
    """Each DIR record ``61 … 4F <AID> …`` names an application that SELECT by name finds."""
    fci = card.send(SELECT_MF).data
    dir_sfi = tlv_find(fci, 0x88)
    if not dir_sfi:
        pytest.skip("the MF's FCI names no DIR file")
    aids = []
    for number in range(1, 17):
        r = card.send(apdu(0x00, 0xB2, number, (dir_sfi[0] << 3) | 4, le=0))
        if r.sw != 0x9000:
            break
        aid = tlv_find(r.data[2:] if r.data[:1] == b"\x61" else r.data, 0x4F)
        if aid:
            aids.append(aid)
    if not aids:
        pytest.skip("the DIR lists no application (blank card?)")
    for aid in aids:
        card.ok(SELECT_MF)
        fci = card.expect(select_name(aid), "9000", "6283", why=f"select {aid.hex().upper()}").data
        card.check(tlv_find(fci, 0x84) == aid, "SELECT", f"selecting {aid.hex().upper()} returned another DF")


@pytest.mark.command("SELECT")
def test_application_fci_carries_ef_0015(city, card):
    """ADF FCI: ``9F0C`` holds the content of the EF its app-file-ID names (0015)."""
    fci = card.ok(select_name(CITY_AID))
    card.check(tlv_find(fci, 0x84) == CITY_AID, "SELECT", "the FCI names another DF")
    content = tlv_find(fci, 0x9F0C)
    card.check(content is not None, "SELECT", "the city application's FCI has no 9F0C")
    card.check(content == card.ok(read_binary(0x15, 0, 30)), "SELECT", "9F0C differs from EF 0015")


@pytest.mark.command("SELECT")
def test_df_by_fid_from_its_parent_only(city, card):
    card.ok(SELECT_MF)
    fci = card.ok(select_fid(CITY_FID), "select the city ADF by FID from the MF")
    card.check(tlv_find(fci, 0x84) == CITY_AID, "SELECT", "FID 1001 selected another DF")
    card.expect(select_fid(SCRATCH_FID), "6A82", why="a DF that is no child of the current DF")


@pytest.mark.command("SELECT")
def test_mf_from_anywhere(city, card):
    card.ok(select_fid(0x3F00), "select 3F00 from inside an application")
    card.ok(read_binary(0x05, 0, 8), "read MF EF 0005 after selecting the MF")


@pytest.mark.command("SELECT")
def test_sibling_and_current_df_by_name(city, card):
    card.ok(select_name(CITY_AID), "select the current DF by name")
    fci = card.ok(select_name(SCRATCH_NAME), "select a sibling DF by name")
    card.check(tlv_find(fci, 0x84) == SCRATCH_NAME, "SELECT", "selected another DF")


@pytest.mark.command("SELECT")
def test_ddf_fci_names_the_dir_sfi(scratch, card):
    """A DF created with application file ID ``01`` answers ``A5 … 88 01 01`` (reference §1.3, §1.4)."""
    fci = card.ok(select_name(SCRATCH_NAME))
    card.check(tlv_find(fci, 0x88) == b"\x01", "SELECT", f"FCI {fci.hex().upper()}: expected 88 01 01")


@pytest.mark.command("SELECT")
def test_ef_selection_makes_it_current(city, card):
    card.expect(select_fid(0x0015, le=None), "9000", "61XX", why="select EF 0015")
    card.ok(read_binary(None, 0, 4), "READ BINARY of the current EF")
    card.check(card.ok(read_binary(None, 0, 4)) == card.ok(read_binary(0x15, 0, 4)), "SELECT",
               "the current EF is not 0015")
