"""SELECT, CREATE FILE, ERASE DF and the file-system rules, judged through APDUs."""
import pytest

from cardos import Card, CardConfig

from .conftest import Terminal, hx, transport_auth

AID = "A00000000386980701"
ADF_FCI_EMPTY = "6F108409" + AID + "A5039F0C00"


def make_adf(t: Terminal, fid="1001", aid=AID, space="0400", app_id="95"):
    t.ok(f"80E0{fid}{8 + len(aid) // 2:02X}38{space}F0F0{app_id}FFFF{aid}")


def enter_with_key_file(t: Terminal, fid="1001"):
    """Select a new DF and create its key file (it must come first)."""
    t.ok("00A4000002" + fid)
    t.ok("80E0000007 3F 0100 95 F0 FF FF")


# -- SELECT -------------------------------------------------------------------

def test_select_mf_by_fid_and_by_name(term):
    mf_fci = hx("6F15840E315041592E5359532E4444463031A503880101")
    assert term.ok("00A40000023F00 00") == mf_fci
    assert term.ok("00A404000E315041592E5359532E4444463031 00") == mf_fci
    assert term.ok("00A404000531504159 2E 00") == mf_fci  # partial name


def test_select_adf_fci_carries_the_application_file(workbench):
    make_adf(workbench)
    assert workbench.ok("00A4000002100100") == hx(ADF_FCI_EMPTY)
    workbench.ok("80E0000007 3F 0100 95 F0 FF FF")
    workbench.ok("80E0001507 28 001E F0 F0 FF FF")
    workbench.ok("00D6950004 01020304")
    fci = workbench.ok("00A4040009" + AID + "00")
    assert fci == hx("6F2E8409" + AID + "A5219F0C1E 01020304" + "00" * 26)


def test_select_by_partial_aid_and_next_occurrence(workbench):
    make_adf(workbench, "1001", "A000000632010105AA")
    make_adf(workbench, "1002", "A000000632010105BB")
    assert workbench.ok("00A4040008A000000632010105 00")[4:13] == hx("A000000632010105AA")
    assert workbench.ok("00A4040208A000000632010105 00")[4:13] == hx("A000000632010105BB")
    assert workbench.sw("00A4040208A000000632010105 00") == 0x6A82  # no further occurrence


def test_select_ef_returns_no_fci_and_p2_0c(workbench):
    workbench.ok("80E0000507 28 0010 F0 F0 FF FF")
    assert workbench.send("00A40000020005") == (b"", 0x9000)
    assert workbench.send("00A4020002 0005") == (b"", 0x9000)   # ISO P1=02 for EFs
    assert workbench.send("00A4000C023F00") == (b"", 0x9000)    # P2=0C: no FCI


def test_select_errors(workbench):
    make_adf(workbench)
    assert workbench.sw("00A40000024444") == 0x6A82
    assert workbench.sw("00A40400054444444444") == 0x6A82
    assert workbench.sw("00A4000003 3F0000") == 0x6700
    assert workbench.sw("00A4040000") == 0x6700
    assert workbench.sw("00A4020002 1001") == 0x6A82     # P1=02 selects EFs only
    assert workbench.sw("00A4080002 3F00") == 0x6A86     # path selection not supported
    assert workbench.sw("00A4000102 3F00") == 0x6A86


def test_key_file_is_never_selectable(term):
    assert term.sw("00A40000020000") == 0x6A82


def test_df_selection_resets_the_current_register(workbench):
    """After EXTERNAL AUTH in an ADF, leaving and re-entering drops the state."""
    make_adf(workbench)
    workbench.ok("00A40000021001")
    workbench.ok("80E0000007 3F 0100 95 F0 FF FF")
    workbench.ok("80D401000D 39 F0 F0 22 33 1122334455667788")
    workbench.ok("80E0000507 28 0010 F0 22 FF FF")   # write right: exactly state 2
    workbench.ok("00A40000023F00")
    workbench.ok("00A40000021001")                    # re-entered: rights now enforced
    assert workbench.sw("00D6850001 AA") == 0x6982
    from cardos.terminal.secure import external_auth_cryptogram
    challenge = workbench.challenge()
    workbench.ok(b"\x00\x82\x00\x00\x08" + external_auth_cryptogram(hx("1122334455667788"), challenge))
    workbench.ok("00D6850001 AA")
    workbench.ok("00A40000023F00")
    workbench.ok("00A40000021001")
    assert workbench.sw("00D6850001 AA") == 0x6982


# -- CREATE FILE ----------------------------------------------------------------

@pytest.mark.parametrize("create, read", [
    ("80E0000507 28 0010 F0 F0 FF FF", "00B0850000"),
    ("80E0000607 2A 0305 F0 F0 FF FF", "00B2010400"),
    ("80E0000707 2C 0040 F0 F0 FF FF", "00B2010400"),
    ("80E0000807 2E 0305 F0 F0 FF FF", "00B2010400"),
])
def test_create_every_ef_type(workbench, create, read):
    workbench.ok(create)
    fid = create[4:8]
    workbench.ok("00A4000002" + fid)
    assert workbench.sw(read) in (0x6281, 0x6A83)  # unwritten binary / no record yet


def test_create_purse_and_key_file(workbench):
    make_adf(workbench)
    workbench.ok("00A40000021001")
    workbench.ok("80E0000007 3F 0100 95 F0 FF FF")
    workbench.ok("80E0000207 2F 0208 F0 00 FF 18")
    assert workbench.sw("00A40000020002") == 0x9000
    assert workbench.sw("00B0000001") == 0x6981  # a purse is not a binary file
    assert workbench.sw("80E0000107 3F 0100 95 F0 FF FF") == 0x6A86  # one key file per DF


def test_create_errors(workbench):
    workbench.ok("80E0000507 28 0010 F0 F0 FF FF")
    assert workbench.sw("80E0000507 28 0010 F0 F0 FF FF") == 0x6A86   # exists
    assert workbench.sw("80E0000606 28 0010 F0 F0 FF") == 0x6700      # EF data is 7 bytes
    assert workbench.sw("80E0000607 99 0010 F0 F0 FF FF") == 0x6A80   # unknown type
    assert workbench.sw("80E0000607 2E 0117 F0 F0 FF FF") == 0x6A80   # cyclic needs 2 records
    assert workbench.sw("80E0000607 2A 00FF F0 F0 FF FF") == 0x6A80   # no records
    assert workbench.sw("80E0000607 28 0000 F0 F0 FF FF") == 0x6A80   # empty binary
    assert workbench.sw("80E0100109 38 0100 F0 F0 95 FFFF 41") == 0x6700  # DF name too short
    assert workbench.sw("80E00000") == 0x6700


def test_create_needs_the_create_right():
    card = Card.blank()
    t = Terminal(card)
    t.ok("00A40000023F00 00")
    assert t.sw("80E0000507 28 0010 F0 F0 FF FF") == 0x6982  # blank MF: create right AA
    transport_auth(t)
    t.ok("80E0000507 28 0010 F0 F0 FF FF")


def test_three_directory_levels_at_most(workbench):
    make_adf(workbench, "1001", "D1D1D1D1D1", space="0800", app_id="01")
    enter_with_key_file(workbench, "1001")
    make_adf(workbench, "1101", "D2D2D2D2D2", space="0200", app_id="01")
    enter_with_key_file(workbench, "1101")
    assert workbench.sw("80E012010D 38 0100 F0 F0 01 FFFF D3D3D3D3D3") == 0x6A80


def test_space_accounting_gives_6a84():
    card = Card.blank(CardConfig(eeprom_size=1024))
    t = Terminal(card)
    transport_auth(t)
    t.ok("800E000000")
    t.ok("80E0000007 3F 0010 01 F0 FF FF")           # key file: 16 + 8-byte header
    t.ok("80E0000507 28 0300 F0 F0 FF FF")           # 768 + header: 800 used
    assert t.sw("80E0000607 28 0100 F0 F0 FF FF") == 0x6A84
    t.ok("80E0000607 28 00C0 F0 F0 FF FF")           # 1000 of 1024 bytes used
    assert t.sw("80E0100111 38 0100 F0 F0 95 FFFF A00000000386980701") == 0x6A84
    assert t.sw("80E0000707 28 0011 F0 F0 FF FF") == 0x6A84  # 25 bytes do not fit
    t.ok("80E0000707 28 0010 F0 F0 FF FF")           # 24 bytes still fit


def test_df_space_limits_its_files(workbench):
    make_adf(workbench, space="0050")                  # 80 bytes
    workbench.ok("00A40000021001")
    workbench.ok("80E0000007 3F 0008 95 F0 FF FF")     # 16
    workbench.ok("80E0000507 28 0030 F0 F0 FF FF")     # 56
    assert workbench.sw("80E0000607 28 0010 F0 F0 FF FF") == 0x6A84


def test_create_does_not_select(workbench):
    make_adf(workbench)
    workbench.ok("80E0000507 28 0010 F0 F0 FF FF")
    assert workbench.sw("00B0000001") == 0x6A82  # no current EF


# -- ERASE DF --------------------------------------------------------------------

def test_erase_df_needs_the_erase_right():
    card = Card.blank()
    t = Terminal(card)
    t.ok("00A40000023F00 00")
    assert t.sw("800E000000") == 0x6982
    assert t.sw("800E010000") == 0x6A86
    transport_auth(t)
    t.ok("800E000000")
    assert t.sw("00A40000020000") == 0x6A82


def test_erase_df_wipes_children_but_keeps_the_df(workbench):
    make_adf(workbench)
    enter_with_key_file(workbench)
    workbench.ok("80E0000507 28 0010 F0 F0 FF FF")
    workbench.ok("800E000000")
    assert workbench.sw("00A40000020005") == 0x6A82
    workbench.ok("00A40000023F00")
    assert workbench.ok("00A4000002100100")[:4] == hx("6F108409")


def test_empty_df_rule_lasts_until_the_df_is_left(erased):
    """Files may be created with EF rights while the DF was empty on entry."""
    erased.ok("80E0000007 3F 0050 01 EF FF FF")   # key file: add-key right never
    erased.ok("80D401000D 39 F0 F0 AA 33 1122334455667788")  # still free: DF was empty on entry
    erased.ok("80E0000507 28 0010 EF EF FF FF")
    erased.ok("00A40000020005")
    erased.ok("00D6000001 01")
    erased.ok("00A40000023F00")                    # re-enter: rights enforced now
    erased.ok("00A40000020005")
    assert erased.sw("00D6000001 01") == 0x6982
    assert erased.sw("80D401010D 39 F0 F0 AA 33 1122334455667788") == 0x6982


def test_recreate_mf_after_erase(erased):
    erased.ok("80E03F000D 38 FFFF F0 F0 01 FFFF 3F3F3F3F3F")
    assert erased.ok("00A40000023F00 00")[4:9] == hx("3F3F3F3F3F")
    erased.ok("80E0000007 3F 0050 01 F0 FF FF")
    assert erased.sw("80E03F000D 38 FFFF F0 F0 01 FFFF 3F3F3F3F3F") == 0x6A86


def test_reference_sample_apdus_run_unchanged(term):
    """The literal APDUs of reference §1.3 / §5.4 (B-ISSUE, ZM) as a real FMCOS script sends them."""
    transport_auth(term)
    for apdu in (
        "800E000000",
        "80E03F000D38FFFFF0F001FFFFFFFFFFFFFF",            # create MF (after erase)
        "80E00000073F005001F0FFFF",                       # MF key file
        "80D401001539F002AA33" + "11" * 16,               # 39 F0 02 AA 33 <16>
        "80D401001536F002FF33" + "22" * 16,               # 36 F0 02 FF 33 <16>
        "80E03F011138036FF0F095FFFFA00000000386980701",   # ADF (P1P2 = 3F01, as in the sample)
        "00A4040009A00000000386980701",
        "80E00000073F018F95F0FFFF",                       # ADF key file
        "80D40101153EF0020101" + "33" * 16,               # 3E F0 02 01 01 <16>
        "80D401001534F0020101" + "44" * 16,               # 34 F0 02 01 01 <16>
        "80D40100083AF0EF0133123456",                     # 3A F0 EF 01 33 123456 (FF omitted)
        "80E0001507A8001EF0F0FFFF",                       # 0015
        "80E0001607A80027F0F0FFFF",                       # 0016
        "80E00018072E0A17F1EFFFFF",                       # 0018
        "80E00001072F0208F100FF18",                       # ED
        "80E00002072F0208F000FF18",                       # EP
    ):
        data, sw = term.send(apdu)
        assert sw == 0x9000 or sw >> 8 == 0x61, f"{apdu} -> {sw:04X}"
    term.ok("0020000003123456")


def test_the_key_file_comes_first(erased):
    """Reference §1.1: the KEY file must be the first file created in a DF."""
    assert erased.sw("80E0000507 28 0010 F0 F0 FF FF") == 0x6985
    assert erased.sw("80E0100111 38 0400 F0 F0 95 FFFF A00000000386980701") == 0x6985
    erased.ok("80E0000007 3F 0100 01 F0 FF FF")
    erased.ok("80E0000507 28 0010 F0 F0 FF FF")


def test_key_file_first_can_be_relaxed():
    card = Card.blank(CardConfig(key_file_first=False))
    t = Terminal(card)
    transport_auth(t)
    t.ok("800E000000")
    t.ok("80E0000507 28 0010 F0 F0 FF FF")
