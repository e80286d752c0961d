"""READ/UPDATE BINARY and READ/UPDATE/APPEND RECORD: success and every error status word."""
import pytest

from .conftest import hx


@pytest.fixture
def files(workbench):
    t = workbench
    t.ok("80E0000507 28 0010 F0 F0 FF FF")      # binary 16
    t.ok("80E0000607 2A 0304 F0 F0 FF FF")      # fixed 3 × 4
    t.ok("80E0000707 2C 0010 F0 F0 FF FF")      # variable, 16 bytes
    t.ok("80E0000807 2E 0304 F0 F0 FF FF")      # cyclic 3 × 4
    t.ok("80E0000907 28 0010 F0 EF FF FF")      # binary, never writable
    t.ok("80E0000A07 28 0010 EF F0 FF FF")      # binary, never readable
    t.ok("00A40000023F00")                        # re-enter the MF: its rights apply now
    return t


# -- binary ---------------------------------------------------------------------

def test_update_and_read_binary_by_sfi_and_offset(files):
    files.ok("00D6850004 01020304")
    assert files.ok("00B0850004") == hx("01020304")
    files.ok("00D6000202 AABB")                   # current EF (selected by SFI above), offset 2
    assert files.ok("00B0850000") == hx("0102AABB") + bytes(12)
    assert files.ok("00B0000302") == hx("BB00")


def test_never_written_binary_answers_6281(files):
    assert files.send("00B0850004") == (bytes(4), 0x6281)
    files.ok("00D6850001 00")
    assert files.send("00B0850004") == (bytes(4), 0x9000)


def test_binary_offset_and_length_errors(files):
    files.ok("00D6850001 00")
    assert files.sw("00B0851000") == 0x6B00      # offset 16 = end
    assert files.sw("00B0850F02") == 0x6C01      # only one byte left
    assert files.sw("00D6851001 00") == 0x6B00
    assert files.sw("00D6850F02 0000") == 0x6700
    assert files.sw("00D68500") == 0x6700
    assert files.sw("00B0A50001") == 0x6A86      # P1 = 101sssss is not an SFI


def test_binary_file_and_type_errors(files):
    assert files.sw("00B0910001") == 0x6A82      # SFI 17 does not exist
    assert files.sw("00B0860001") == 0x6981      # SFI 6 is a record file
    assert files.sw("00D6890001 00") == 0x6982   # write right EF
    assert files.sw("00B08A0001") == 0x6982     # read right EF
    erased_card = files.card
    erased_card.power_on()
    assert files.sw("00B0000001") == 0x6A82      # no current EF after reset


# -- records -----------------------------------------------------------------------

def test_fixed_records(files):
    files.ok("00E2003004 11111111")
    files.ok("00E2003004 22222222")
    files.ok("00E2003004 33333333")
    assert files.sw("00E2003004 44444444") == 0x6A84          # file full
    assert files.ok("00B2023404") == hx("22222222")
    assert files.ok("00B2033400") == hx("33333333")           # Le 00: whole record
    assert files.sw("00B2013402") == 0x6C04                   # wrong Le
    files.ok("00DC023404 AAAAAAAA")
    assert files.ok("00B2023404") == hx("AAAAAAAA")
    assert files.sw("00DC023403 AAAAAA") == 0x6700            # record length is 4
    assert files.sw("00E2003003 AAAAAA") == 0x6700
    assert files.sw("00B2043404") == 0x6A83
    assert files.sw("00B2003404") == 0x6A83
    assert files.sw("00DC043404 AAAAAAAA") == 0x6A83
    assert files.sw("00B2013504") == 0x6A86                   # mode 101
    assert files.sw("00E2013004 11111111") == 0x6A86          # APPEND needs P1 = 00


def test_cyclic_records_newest_first(files):
    for value in ("01010101", "02020202", "03030303", "04040404"):
        files.ok("00E2004004" + value)
    assert files.ok("00B2014404") == hx("04040404")
    assert files.ok("00B2024404") == hx("03030303")
    assert files.ok("00B2034404") == hx("02020202")           # the oldest was overwritten
    assert files.sw("00B2044404") == 0x6A83
    assert files.sw("00DC014404 05050505") == 0x6981          # no overwrite of cyclic records
    files.ok("00DC004304 05050505")                           # UM: P1=00 mode 011 appends
    assert files.ok("00B2014404") == hx("05050505")


def test_variable_records_by_tag(files):
    files.ok("00E2003803 A1 01 11")
    files.ok("00E2003804 B2 02 2222")
    files.ok("00E2003803 A1 01 33")
    assert files.ok("00B2A13800") == hx("A10111")             # first record with tag A1
    assert files.ok("00B2023C00") == hx("B2022222")           # by number
    files.ok("00DCA13903 A1 01 44")                           # last record with tag A1
    assert files.ok("00B2033C00") == hx("A10144")
    files.ok("00DCA13803 A1 01 55")                           # first with tag A1
    assert files.ok("00B2013C00") == hx("A10155")
    files.ok("00DCA13A03 A1 01 66")                           # next A1 after the current (1)
    assert files.ok("00B2033C00") == hx("A10166")
    files.ok("00DCA13B03 A1 01 77")                           # previous A1 before the current (3)
    assert files.ok("00B2013C00") == hx("A10177")
    assert files.sw("00B2C13800") == 0x6A83                   # no record with tag C1
    assert files.sw("00DC023C03 B2 01 22") == 0x6700          # length must stay the same
    assert files.sw("00E2003803 A1 05 11") == 0x6A80          # TLV length mismatch
    assert files.sw("00E2003808 C1 06 000000000000") == 0x6A84  # 16-byte budget exhausted


def test_record_file_and_type_errors(files):
    assert files.sw("00B2018C04") == 0x6A82                   # SFI 17
    assert files.sw("00B2012C04") == 0x6981                   # SFI 5 is binary
    assert files.sw("00E2002804 00000000") == 0x6981
    files.card.power_on()
    assert files.sw("00B2010404") == 0x6A82                   # no current EF


def test_record_rights(erased):
    erased.ok("80E0000007 3F 0100 01 F0 FF FF")
    erased.ok("80E0000607 2A 0304 EF EF FF FF")
    erased.ok("00A40000023F00")                              # no longer empty on entry
    assert erased.sw("00E2003004 11111111") == 0x6982
    assert erased.sw("00B2013404") == 0x6982                  # rights before record lookup
    assert erased.sw("00DC013404 11111111") == 0x6982


def test_append_record_with_cla_80(files):
    files.ok("80E2003004 11111111")
    assert files.ok("00B2013404") == hx("11111111")
