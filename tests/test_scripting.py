"""The script language and `cardos run`: parsing, positions, expectations, variables, functions,
steps, exit codes, reports (trace, JSON, JUnit), converters, decode."""
from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cardos import Card
from cardos.cli import main
from cardos.scripting import ScriptError, check, parse_text, run_text
from cardos.scripting.convert import (
    from_apdutool,
    from_scriptor,
    to_apdutool,
    to_scriptor,
)
from cardos.scripting.keysource import open_keys
from cardos.scripting.lexer import logical_lines
from cardos.scripting.report import HumanReporter, use_color
from cardos.scripting.runner import Exchange

ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path, text: str, *args: str, name: str = "t.apdu", capsys=None):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    code = main(["run", str(path), "--no-color", *args])
    return code, path


def cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def error_of(text: str, keys=None, path="t.apdu") -> str:
    with pytest.raises(ScriptError) as info:
        script = parse_text(text, path, ROOT)
        check(script, keys)
    return str(info.value)


# -- lexing and parsing ----------------------------------------------------------------------

def test_comments_continuation_and_positions():
    lines = logical_lines("# c\n00 A4 \\\n  00 00 // trailing\n\n  reset # x\n", "f")
    assert [[t.text for t in line.tokens] for line in lines] == [["00", "A4", "00", "00"], ["reset"]]
    assert lines[0].tokens[2].pos.line == 3 and lines[0].tokens[2].pos.col == 3
    assert lines[1].pos.line == 5


@pytest.mark.parametrize("text, message", [
    ("00 A4 00 00 02 3G00", "t.apdu:1:17: error: bad hex digit 'G' in '3G00'"),
    ("00 A4 00 00 02 3F0", "t.apdu:1:16: error: odd number of hex digits in '3F0'"),
    ("00 A4\n00 B0 ${nope} 00 00", "t.apdu:2:7: error: unknown variable ${nope}: not set before this line"),
    ("set abc = 01\n00 B0 ${abd} 00 00", "t.apdu:2:7: error: unknown variable ${abd}: not set before this line "
                                        "(did you mean ${abc}?)"),
    ("00 84 00 00 04 => 9000 -> x=data\n  00 B0 00 00 des_mak(${x})",
     "t.apdu:2:15: error: unknown function des_mak() (did you mean des_mac?)"),
    ("00 00 des_mac(01, 02)", "t.apdu:1:7: error: des_mac(key, iv, data) takes 3 argument(s), got 2"),
    ("00 A4 00 00 => 90", "t.apdu:1:16: error: bad status word '90' (four hex digits, X or ? for any nibble: 9000, 63CX)"),
    ("00 A4 00 00 => 9000 6283", "t.apdu:1:21: error: expected '|' between status words, got '6283'"),
    ("00 A4 00 00 => [6F XX", "t.apdu:1:16: error: expected data is missing its closing ']'"),
    ("purse.lod amount=1", "t.apdu:1:1: error: unknown step purse.lod (did you mean purse.load?)"),
    ("purse.load", "t.apdu:1:1: error: purse.load needs amount="),
    ("purse.load amount=1 colour=red", "t.apdu:1:21: error: purse.load has no argument 'colour' "
                                       "(arguments: amount, purse, kid, terminal, serial, key, tac, mac2)"),
    ("purse.load amount=1 purse=xx", "t.apdu:1:27: error: purse is one of ep, ed"),
    ("include nowhere.apdu", "t.apdu:1:1: error: include: no such file 'nowhere.apdu'"),
    ("00 A4 {lc} 01 {lc} 02", "t.apdu:1:15: error: only one {lc} per APDU"),
    ("00 A4 {le}", "t.apdu:1:7: error: unknown placeholder {le} (only {lc})"),
    ('echo "unterminated', "t.apdu:1:6: error: unterminated string"),
    ("reset now", "t.apdu:1:7: error: reset takes 'cold' or 'warm'"),
    ("00 A4 00 00 -> =data", "t.apdu:1:16: error: expected a variable name, got '='"),
    ("set sw = 01", "t.apdu:1:5: error: $sw is set by the runner after each APDU"),
    ("00 B0 00 00 @load", "t.apdu:1:13: error: @load: this script needs keys (give --keys FILE, or a `keys NAME` line)"),
    ("if 01 == 01 echo x", "t.apdu:1:19: error: write: if ...: STATEMENT (a ':' is missing)"),
])
def test_script_errors_name_file_line_column(text, message):
    assert error_of(text).startswith(message)


def test_unknown_key_is_reported_with_suggestions():
    message = error_of("00 00 00 00 {lc} @lod", open_keys("sample"))
    assert message.startswith("t.apdu:1:18: error: @lod: no such key in the sample TEST keys; did you mean @load")
    message = error_of("00 00 00 00 {lc} @load.7", open_keys("test"))
    assert "t.apdu:1:18: error: @load.7" in message and "no key with this index" in message


def test_keys_and_include_take_names_with_dashes_and_paths(tmp_path):
    (tmp_path / "sub dir").mkdir()
    (tmp_path / "sub dir" / "my-lib.apdu").write_text("set from_lib = 01\n")
    script = parse_text('keys test-sm4\ninclude sub dir/my-lib.apdu\ninclude "sub dir/my-lib.apdu"\n', "k.apdu",
                        tmp_path)
    assert script.keys[0] == "test-sm4"
    assert [s.path for s in script.statements] == ["sub dir/my-lib.apdu"] * 2
    assert open_keys(script.keys[0]).algorithm.name == "SM4"


def test_include_cycle_and_errors_in_included_files(tmp_path):
    (tmp_path / "a.apdu").write_text("include b.apdu\n")
    (tmp_path / "b.apdu").write_text("00 A4\ninclude a.apdu\n")
    (tmp_path / "c.apdu").write_text("\n\n  00 ZZ\n")
    (tmp_path / "d.apdu").write_text("00 A4 00 00\ninclude c.apdu\n")
    with pytest.raises(ScriptError, match="include cycle"):
        parse_text((tmp_path / "a.apdu").read_text(), str(tmp_path / "a.apdu"), tmp_path)
    with pytest.raises(ScriptError) as info:
        parse_text((tmp_path / "d.apdu").read_text(), "d.apdu", tmp_path)
    assert info.value.pos.line == 3 and info.value.pos.col == 6 and info.value.pos.file.endswith("c.apdu")


def test_script_error_sends_nothing(tmp_path, capsys):
    """A bad line 3 stops the run before line 1 reaches the card (the card image stays as it was)."""
    image = tmp_path / "card.img"
    Card.blank().save_as(image)
    before = image.read_bytes()
    code, path = run(tmp_path, "00 A4 00 00 02 3F 00\n80 0E 00 00 00\n00 B0 ${missing} 00 00\n",
                     "--card", str(image), "--json")
    out, err = capsys.readouterr()
    assert code == 2
    assert f"{path}:3:7: error: unknown variable ${{missing}}" in err
    assert "nothing was sent" in err
    assert image.read_bytes() == before
    assert '"exchange"' not in out


def test_errors_in_several_scripts_are_all_reported(tmp_path, capsys):
    (tmp_path / "one.apdu").write_text("00 A4 00 00 => 9OOO\n")
    (tmp_path / "two.apdu").write_text("\nmid(01)\n")
    code = main(["run", str(tmp_path / "one.apdu"), str(tmp_path / "two.apdu")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{tmp_path / 'one.apdu'}:1:16: error: bad status word" in err
    assert f"{tmp_path / 'two.apdu'}:2:1: error: mid(data, offset, [length]) takes 2 to 3 argument(s), got 1" in err


# -- running: expectations, exit codes, the report ------------------------------------------

def test_plain_scriptor_script_runs_unchanged(tmp_path, capsys):
    text = ("#!/usr/bin/env scriptor\n"
            "# comments start with a hash\n"
            "reset\n"
            "00 A4 00 00 02 3F 00\n"
            "00 C0 00 00 17\n"
            "0084000004\n"
            "00 B2 01 0C \\\n"
            "   00\n"
            "exit\n"
            "00 A4 00 00 02 3F 01\n")
    code, path = run(tmp_path, text, "--json")
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    sent = [e["command"] for e in events if e["event"] == "exchange"]
    assert code == 0
    # exactly the script's APDUs: no automatic GET RESPONSE (the script fetches it), nothing after exit
    assert sent == ["00A40000023F00", "00C0000017", "0084000004", "00B2010C00"]
    responses = [e["sw"] for e in events if e["event"] == "exchange"]
    assert responses == ["6117", "9000", "9000", "6A82"]


def test_wrong_expectation_exits_1_with_a_clear_report(tmp_path, capsys):
    code, path = run(tmp_path, "00 A4 00 00 02 3F 00 => 9000\n00 A4 00 00 02 3F 01 => 9000\n00 84 00 00 04 => 9000\n")
    out = capsys.readouterr().out
    assert code == 1
    assert f"FAIL {path}:2: status word 6A82 (file not found), expected 9000" in out
    assert "failed:\n" in out and out.rstrip().endswith(f"{path}:2: status word 6A82 (file not found), expected 9000")
    assert "GET CHALLENGE" not in out  # the script stopped at the failure


def test_keep_going_and_fail_fast(tmp_path, capsys):
    text = "00 A4 00 00 02 3F 01 => 9000\n00 A4 00 00 02 3F 02 => 9000\n"
    code, _ = run(tmp_path, text, "--keep-going", "-q")
    out = capsys.readouterr().out
    assert code == 1 and "2 failed" in out
    (tmp_path / "ok.apdu").write_text("00 84 00 00 04 => 9000\n")
    code = main(["run", str(tmp_path / "t.apdu"), str(tmp_path / "ok.apdu"), "-q", "--fail-fast"])
    out = capsys.readouterr().out
    assert code == 1 and "1 script(s)" not in out and "1 failed" in out and "passed" not in out


@pytest.mark.parametrize("pattern, sw, ok", [
    ("9000", 0x9000, True), ("9000", 0x9001, False), ("63CX", 0x63C2, True), ("63CX", 0x63D2, False),
    ("63C?", 0x63CF, True), ("9000|6283", 0x6283, True), ("9000|6283", 0x6A82, False), ("61XX", 0x6110, True),
    ("ok", 0x9000, True), ("ok", 0x6105, True), ("ok", 0x6A82, False), ("6XXX", 0x6D00, True),
])
def test_status_word_patterns(pattern, sw, ok):
    script = parse_text(f"00 84 00 00 04 => {pattern}", "p")
    assert script.statements[0].expect.sw.matches(sw, None) is ok


@pytest.mark.parametrize("pattern, data, ok", [
    ("[6F XX ..]", "6F1584", True), ("[6F XX ..]", "6F", False), ("[..]", "", True), ("[]", "", True),
    ("[]", "00", False), ("[.. 90]", "0102 90", True), ("[6X 1?]", "6A1F", True), ("[6X 1?]", "7A1F", False),
    ("[01 .. 05 .. 09]", "0102030405060708 09", True), ("[01 .. 05 .. 09]", "01020304060809", False),
    ('["PBOC" ..]', "50424F43 01", True), ("[6FXX..84]", "6F0084", True),
])
def test_data_patterns(pattern, data, ok):
    script = parse_text(f"00 84 00 00 04 => {pattern} 9000", "p")
    why = script.statements[0].expect.data.match(bytes.fromhex(data.replace(" ", "")), None)
    assert (why is None) is ok, why


def test_data_mismatch_says_where():
    script = parse_text("00 84 00 00 04 => [6F 15 84 08] 9000", "p")
    assert script.statements[0].expect.data.match(bytes.fromhex("6F15840E"), None) == "byte 3 is 0E, expected 08"
    assert script.statements[0].expect.data.match(bytes.fromhex("6F15"), None) == "2 bytes, expected 4"


def test_bare_arrow_and_data_only_expect_9000():
    script = parse_text("00 84 00 00 04 =>\n00 84 00 00 04 => [XX ..]", "p")
    for stmt in script.statements:
        assert stmt.expect.sw.matches(0x9000, None) and not stmt.expect.sw.matches(0x6283, None)


def test_variables_captures_and_fields():
    result = run_text("""
        00 84 00 00 08        => 9000 -> c=data head=data[0:2] tail=random[-2:] one=data[3] s=sw s1=sw1
        expect ${c[0:2]} == ${head}
        expect ${tail} == ${c[6:8]}
        expect ${one} == ${c[3:4]}
        expect ${s} == 9000
        expect ${s1} == 90
        expect $sw == 9000
        expect $data == ${c}
        set both = ${head} "AB" ${tail}
        expect len(${both}) == 06
        counter = 0001
        expect ${counter} == 00 01
        cafe = 0102          # a name that looks like hex is still a name before '='
        expect ${cafe} == 0102
        00 A4 00 00 02 3F 00 => [6F ${x_unused_is_fine_in_data} ..] 9000
    """.replace("${x_unused_is_fine_in_data} ", ""))
    assert result.status == "passed", result.cases


def test_capture_of_an_unknown_field_is_an_error():
    result = run_text("00 84 00 00 04 => 9000 -> b=balance")
    assert result.status == "error" and "nothing called 'balance' in this response (have: data, random, response, sw, sw1, sw2)" in result.error


def test_slice_out_of_range_is_an_error_at_its_position():
    result = run_text("00 84 00 00 04 -> c=data\nset d = ${c[2:9]}")
    assert result.status == "error" and result.error.startswith("<script>:2:9: error: ${c}[2:9] is outside its 4 bytes")


def test_lc_and_le_placeholders():
    result = run_text("""
        set aid = A00000000386980701
        00 A4 04 00 {lc} ${aid} / 00 => 6A82
        00 A4 00 00 {lc} 3F00        => 9000
        expect $data == 6F ..
    """)
    assert result.status == "passed", result.cases


def test_automatic_get_response_and_manual_option():
    exchanges = []

    class R:
        def exchange(self, ev):
            exchanges.append(ev)

        def __getattr__(self, name):
            return lambda *a: None

    result = run_text("00 A4 00 00 02 3F 00 => [6F 15 ..] 9000\n00 A4 00 00 02 3F 00 01 => [6F 15 ..] 9000\n"
                      "option get_response=manual\n00 A4 00 00 02 3F 00 => 6117", reporter=R())
    assert result.status == "passed", result.cases
    assert [e.command.hex().upper() for e in exchanges] == [
        "00A40000023F00", "00C0000017", "00A40000023F0001", "00A40000023F0017", "00A40000023F00"]
    assert exchanges[1].note == "automatic GET RESPONSE" and exchanges[3].note == "resent with Le=17"


def test_if_repeat_fail_require_exit():
    result = run_text("""
        00 84 00 00 04 => 9000 -> r=data
        if ${r} == XX XX XX XX: set seen = 01
        expect ${seen} == 01
        repeat 3: 00 84 00 00 04 => 9000
        if $sw != 9000: fail "never"
        require emulator
        exit
        fail "not reached"
    """)
    assert result.status == "passed" and result.apdus == 4
    result = run_text('00 84 00 00 04\nif $sw == 9000: fail "sw was ${sw}"')
    assert result.status == "failed" and result.cases[-1].message == "sw was 9000"
    result = run_text("require card\nfail x")
    assert result.status == "skipped" and result.exit_code == 0


def test_reset_sets_atr_and_clears_security():
    result = run_text("""
        keys sample
        include apdu_scripts/sample/personalize.apdu
        00 A4 04 00 {lc} A00000000386980701 / 00 => 9000
        00 20 00 00 {lc} @pin => 9000
        00 B2 01 C4 17 => 6A83
        reset
        expect $atr == 3B ..
        00 A4 04 00 {lc} A00000000386980701 / 00 => 9000
        00 B2 01 C4 17 => 6982
    """)
    assert result.status == "passed", result.cases


# -- functions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, value", [
    ("des_ecb(1122334455667788, 0102030405060708)", "178F59F8578E0D3F"),
    ("des_ecb_dec(1122334455667788, 178F59F8578E0D3F)", "0102030405060708"),
    ("tdes_ecb(00112233445566778899AABBCCDDEEFF, 1122334455667788)", "496BD7A351364453"),
    ("3des_decode_ecb(00112233445566778899AABBCCDDEEFF, 496BD7A351364453)", "1122334455667788"),
    ("des_mac(1122334455667788, 00, 0102030405060708)", "A82A8CEB"),
    ("des_des_mac(1122334455667788, 0000000000000000, 0102030405060708)", "A82A8CEB"),
    ("ext_auth(0102030405060708, BB83BFF3)", "74B0047DD681D96C"),
    ("session_key(11223344556677888877665544332211, 11223344 0000 8000)", "9B1D924E05595603"),
    ("3des_encode_ecb(11223344556677888877665544332211, 11223344 0000 8000)", "9B1D924E05595603"),
    ("des_mac(9B1D924E05595603, 00, 00000000 00001000 01 001122334455)", "2988AE5A"),
    ("des_3des_mac(9B1D924E05595603, 00, 00001000 01 001122334455 20111221 214822)", "3A845BF0"),
    # B-ROBUR: TAC key from the 16-byte DTK, TAC over the load
    ("tac_key(34343434343434341122334455667788)", "25160770615243BC"),
    ("diversify(00112233445566778899AABBCCDDEEFF, 1122334455667788)", "496BD7A3513644533100B54E71196528"),
    ("sm4_ecb(0123456789ABCDEFFEDCBA9876543210, 0123456789ABCDEFFEDCBA9876543210)",
     "681EDF34D206965E86B3E94F536E4246"),
    # B-WK line protection: the MAC of a WRITE KEY with challenge 4C45BAB9
    ("tdes_mac(FFFFFFFFFFFFFFFF, 4C45BAB9, 84D4010214 7C87BC23140021B3AFEA67E6359DDCFE)", "D7C943F6"),
    ("sm_encrypt(FFFFFFFFFFFFFFFF, F9F0F0AAFF1122334455667788)", "7C87BC23140021B3AFEA67E6359DDCFE"),
    ("fixed80(11223344)", "1122334480000000"),
    ("pad80(1122334455667788)", "11223344556677888000000000000000"),
    ("fixed80(11, 16)", "11800000000000000000000000000000"),
    ("unpad80(1122800000)", "1122"),
    ("xor(F0F0, 0FF0)", "FF00"),
    ("not(F00F)", "0FF0"),
    ("mid(A0000000038698, 2, 3)", "000003"),
    ("mid(A0000000038698, 5)", "8698"),
    ("midc(A0000000038698, 4, 6)", "000003"),
    ("left(010203, 2) right(010203, 1)", "010203"),
    ("rpad(\"AB\", 4)", "41420000"),
    ("lpad(01, 3, FF)", "FFFF01"),
    ("len(010203)", "03"),
    ("len(010203, 2)", "0003"),
    ("hex(1000, 4)", "000003E8"),
    ("hex(0x10)", "10"),
    ("bcd(2026, 2)", "2026"),
    ("bcd(7, 2)", "0007"),
    ("amount(10.00)", "000003E8"),
    ("amount(1000)", "000003E8"),
    ("amount(0.5)", "00000032"),
    ("pin(12345)", "12345F"),
    ("pin(\"123456\")", "123456"),
    ("crc32(\"123456789\")", "CBF43926"),
    ("\"PBOC\"", "50424F43"),
])
def test_functions(expr, value):
    result = run_text(f"expect {expr} == {value}")
    assert result.status == "passed", result.cases


def test_now_functions_follow_the_fixed_clock():
    from datetime import datetime

    result = run_text("expect now_date() == 20260301\nexpect time() == 093000\nexpect datetime() == 20260301093000",
                      now=datetime(2026, 3, 1, 9, 30, 0))
    assert result.status == "passed", result.cases


@pytest.mark.parametrize("expr, message", [
    ("des_ecb(11, 0102030405060708)", "des_ecb(): key must be 8 bytes (got 1)"),
    ("tdes_ecb(00112233445566778899AABBCCDDEEFF, 0102)", "data must be a non-empty multiple of 8 bytes (got 2"),
    ("xor(01, 0102)", "xor(): xor of 1 and 2 bytes"),
    ("mid(0102, 1, 5)", "mid(): mid(1, 5) outside 2 bytes"),
    ("midc(0102, 1, 2)", "midc must cut whole bytes"),
    ("hex(256)", "hex(): 256 does not fit 1 byte(s)"),
    ("amount(1.234)", "1.234: at most two decimals"),
    ("pin(12a)", "'12a': a PIN is decimal digits"),
])
def test_function_errors_are_script_errors_with_position(expr, message):
    result = run_text(f"\nset x = {expr}")
    assert result.status == "error" and result.exit_code == 2
    assert result.error.startswith("<script>:2:") and message in result.error


# -- steps and protect ---------------------------------------------------------------------------------

def test_purse_steps_expose_their_values():
    result = run_text("""
        include apdu_scripts/sample/personalize.apdu
        00 A4 04 00 {lc} A00000000386980701 / 00 => 9000
        purse.load amount=10.00 terminal=112233445566 => [${purse.tac}] 9000
        expect ${purse.balance} == 000003E8
        expect ${purse.balance_before} == 00000000
        expect ${purse.amount} == 000003E8
        expect ${purse.terminal} == 112233445566
        expect ${purse.serial} == 3100000000000001
        set sk = session_key(@load, ${purse.random} ${purse.counter} 8000)
        expect ${purse.sk} == ${sk}
        expect des_mac(${sk}, 00, 00000000 000003E8 02 112233445566) == ${purse.mac1}
        expect des_mac(${sk}, 00, 000003E8 02 112233445566 ${purse.date} ${purse.time}) == ${purse.mac2}
        purse.purchase amount=1.00 key=@purchase tac=@tac tsn=7 => 9000 -> t=tac m=mac2
        expect ${purse.tsn} == 00000007
        expect ${t} == ${purse.tac}
        expect ${m} == ${purse.mac2}
    """)
    assert result.status == "passed", result.cases


def test_purse_step_without_keys_is_a_script_error_before_sending(tmp_path, capsys):
    code, path = run(tmp_path, "00 A4 00 00 02 3F 00\npurse.load amount=1\n", "--json")
    out, err = capsys.readouterr()
    assert code == 2 and '"exchange"' not in out
    assert f"{path}:2:1: error: purse.load needs keys: give --keys FILE" in err
    assert run_text("purse.balance => 6A82|6985|6D00|6A86").status == "passed"  # GET BALANCE needs no keys


def test_a_tampered_tac_key_fails_the_step():
    result = run_text("""
        include apdu_scripts/sample/personalize.apdu
        00 A4 04 00 {lc} A00000000386980701 / 00 => 9000
        purse.load amount=1.00 key=@load tac=@purchase
    """)
    assert result.status == "failed"
    assert "TAC does not verify" in result.cases[-1].message


def test_protect_builds_the_fmcos_mac():
    exchanges = []

    class R:
        def exchange(self, ev):
            exchanges.append(ev)

        def __getattr__(self, name):
            return lambda *a: None

    result = run_text("""
        include apdu_scripts/sample/personalize.apdu
        00 A4 04 00 {lc} A00000000386980701 / 00 => 9000
        protect @app_line 04 D6 95 1C {lc} 02 01 => 9000
    """, keys="sample", reporter=R())
    assert result.status == "passed", result.cases
    challenge, command = exchanges[-2], exchanges[-1]
    assert challenge.command == bytes.fromhex("0084000004") and challenge.note == "challenge for the MAC"
    from cardos.crypto import DES
    from cardos.sample import SampleKeys

    mac = DES.mac(SampleKeys().app_line, bytes.fromhex("04D6951C06 0201"), challenge.data + bytes(4))
    assert command.command == bytes.fromhex("04D6951C060201") + mac
    assert command.title == "UPDATE BINARY (SFI 15) + MAC"


def test_auth_external_with_a_wrong_key_counts_down():
    result = run_text("auth.external key=0000000000000000 => 63CX\nauth.external key=@transport => 9000",
                      keys="sample")
    assert result.status == "passed", result.cases


# -- exit codes 2 and 3 ----------------------------------------------------------------------------------

def test_missing_or_bad_images_exit_2(tmp_path, capsys):
    """A missing or corrupt image is an input error (2) in every subcommand, not a transport one (3)."""
    (tmp_path / "t.apdu").write_text("00 84 00 00 04\n")
    assert main(["run", str(tmp_path / "t.apdu"), "--card", str(tmp_path / "missing.img")]) == 2
    assert "missing.img: no such card image" in capsys.readouterr().err
    (tmp_path / "bad.img").write_text("{}")
    assert main(["run", str(tmp_path / "t.apdu"), "--card", str(tmp_path / "bad.img")]) == 2
    capsys.readouterr()


def test_reader_selection():
    from cardos.scripting.transport import TransportError, pick_reader

    readers = ["Virtual PCD 00 00", "Virtual PCD 00 01", "Gemalto USB"]
    assert pick_reader("1", readers) == "Virtual PCD 00 01"
    assert pick_reader("gemalto", readers) == "Gemalto USB"
    assert pick_reader("Virtual PCD 00 00", readers) == "Virtual PCD 00 00"
    with pytest.raises(TransportError, match="matches several readers"):
        pick_reader("virtual", readers)
    with pytest.raises(TransportError, match="no reader matches 'acs'"):
        pick_reader("acs", readers)
    with pytest.raises(TransportError, match="no reader number 5"):
        pick_reader("5", readers)


def test_unknown_reader_exits_3(tmp_path, capsys):
    (tmp_path / "t.apdu").write_text("00 84 00 00 04\n")
    code = main(["run", str(tmp_path / "t.apdu"), "--reader", "no such reader anywhere"])
    err = capsys.readouterr().err
    assert code == 3 and "cardos run: error:" in err


def test_usage_errors_exit_2(tmp_path, capsys):
    (tmp_path / "t.apdu").write_text("00 84 00 00 04\n")
    assert main(["run", str(tmp_path / "t.apdu"), "--keys", str(tmp_path / "none.json")]) == 2
    assert "--keys" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "t.apdu"), "--now", "yesterday"]) == 2
    assert main(["run", str(tmp_path / "nothere.apdu")]) == 2
    assert "no such script" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["run", str(tmp_path / "t.apdu"), "--card", "x", "--reader", "y"])
    assert info.value.code == 2


# -- reports ---------------------------------------------------------------------------------------------

def test_junit_xml_structure(tmp_path, capsys):
    (tmp_path / "good.apdu").write_text("00 A4 00 00 02 3F 00 => 9000\nexpect 01 == 01\n")
    (tmp_path / "bad.apdu").write_text("00 A4 00 00 02 3F 00 => 9000\n00 B0 85 00 00 => 9000\n")
    (tmp_path / "skip.apdu").write_text("require card\n00 84 00 00 04 => 9000\n")
    report = tmp_path / "out" / "junit.xml"
    code = main(["run", *(str(tmp_path / n) for n in ("good.apdu", "bad.apdu", "skip.apdu")),
                 "--junit-xml", str(report), "-q"])
    capsys.readouterr()
    assert code == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("5", "1", "0", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [str(tmp_path / n) for n in ("good.apdu", "bad.apdu", "skip.apdu")]
    good, bad, skip = suites
    assert [c.get("name") for c in good.findall("testcase")] == ["line 1: SELECT (FID) => 9000",
                                                                  "line 2: expect 01 == 01"]
    failure = bad.findall("testcase")[1].find("failure")
    assert failure is not None and failure.get("type") == "expectation"
    assert failure.get("message") == "status word 6A82 (file not found), expected 9000"
    assert "READ BINARY (SFI 05)" in bad.find("system-out").text
    assert skip.find("testcase/skipped").get("message") == "needs card, running on emulator"
    for suite in suites:
        assert float(suite.get("time")) >= 0 and suite.get("classname") is None
        for case in suite.findall("testcase"):
            assert case.get("classname") and case.get("time") is not None


def test_junit_xml_for_script_errors(tmp_path, capsys):
    (tmp_path / "bad.apdu").write_text("00 A4 00 00 => 9O00\n")
    report = tmp_path / "junit.xml"
    assert main(["run", str(tmp_path / "bad.apdu"), "--junit-xml", str(report)]) == 2
    capsys.readouterr()
    root = ET.parse(report).getroot()
    error = root.find("testsuite/testcase/error")
    assert root.get("errors") == "1" and error.get("message").startswith(f"{tmp_path / 'bad.apdu'}:1:16: error")


def test_json_lines(tmp_path, capsys):
    code, path = run(tmp_path, "00 A4 00 00 02 3F 00 => [6F ..] 9000\necho hello\n", "--json")
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]
    assert code == 0
    assert [e["event"] for e in events] == ["run", "script", "exchange", "exchange", "check", "message", "end",
                                            "summary"]
    select, get_response = events[2], events[3]
    assert select["name"] == "SELECT (FID)" and select["sw"] == "6117" and select["command_fields"] == {"fid": "3F00"}
    assert get_response["note"] == "automatic GET RESPONSE" and get_response["response_fields"]["fci"].startswith("6F")
    assert events[4]["ok"] is True and events[4]["expected"] == "[6F ..] 9000"
    assert events[-1]["exit"] == 0 and events[-1]["apdus"] == 2


def test_trace_in_chinese(tmp_path, capsys):
    code, _ = run(tmp_path, "00 A4 00 00 02 3F 01 => 6A82\n", "--lang", "zh")
    out = capsys.readouterr().out
    assert code == 0 and "未找到文件" in out and "选择文件" in out


def test_colour_only_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Tty()) and not use_color(io.StringIO()) and not use_color(Tty(), False)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())
    out = Tty()
    reporter = HumanReporter(out, out, color=True)
    reporter.start_script("x")
    reporter.exchange(Exchange(parse_text("00", "x").statements[0].pos, bytes.fromhex("0084000004"),
                               bytes.fromhex("01020304") + b"\x90\x00", 0.001))
    assert "\033[" in out.getvalue()


def test_trace_splits_fields():
    out = io.StringIO()
    reporter = HumanReporter(out, out)
    pos = parse_text("00", "x.apdu").statements[0].pos
    reporter.exchange(Exchange(pos, bytes.fromhex("805000020B0100002710112233445566" "10"),
                               bytes.fromhex("00000000000001006E0E5A9D1D1B2F6C9000"), 0.0002))
    text = out.getvalue()
    assert "x.apdu:1  INITIALIZE FOR LOAD (EP)" in text
    assert "> 80 50 00 02 | 0B | 01 00002710 112233445566 | 10" in text
    assert "key_id=01 amount=00002710 (100.00) terminal=112233445566" in text
    assert "< 00000000 0000 01 00 6E0E5A9D 1D1B2F6C | 90 00  success  0.2 ms" in text
    assert "random=6E0E5A9D mac1=1D1B2F6C" in text


# -- converters and decode ------------------------------------------------------------------------------

def test_scriptor_conversion():
    text = "# a scriptor file\n00A4000002 3F00\n00 C0 00 00 \\\n 17\nRESET the card\nexit now\n0 1\n"
    assert from_scriptor(text, "x") == ("# converted from scriptor: x\n# a scriptor file\n00 A4 00 00 02 3F 00\n"
                                        "00 C0 00 00 17\nreset\nexit\n00 01\n")
    with pytest.raises(ScriptError) as info:
        from_scriptor("00 A4\n00 ZZ\n", "x")
    assert str(info.value).startswith("x:2:4: error: not hex: 'ZZ'")


def test_to_scriptor_computes_what_it_can():
    script = parse_text("set k = 0102030405060708\n00 82 00 00 {lc} ext_auth(${k}, 00000000) => 9000\n"
                        "repeat 2: 00 84 00 00 04\nreset\n", "x.apdu")
    out = to_scriptor(script)
    lines = [line for line in out.splitlines() if not line.startswith("# x.apdu") and "scriptor does not" not in line]
    crypt = run_text("expect ext_auth(0102030405060708, 00000000) == XX ..").status
    assert crypt == "passed"
    assert lines[0].startswith("00 82 00 00 08 ") and lines[1] == "# => 9000"
    assert lines[2:] == ["00 84 00 00 04", "00 84 00 00 04", "reset"]


def test_to_scriptor_refuses_lines_that_need_the_card():
    script = parse_text("00 84 00 00 04 -> c=data\n00 82 00 00 {lc} ext_auth(0102030405060708, ${c})\n", "x.apdu")
    with pytest.raises(ScriptError) as info:
        to_scriptor(script)
    assert str(info.value).startswith("x.apdu:2:45: error: ${c} is set from a card response at x.apdu:1")
    with pytest.raises(ScriptError, match="x.apdu:1:1: error: a step needs the card's answers"):
        to_scriptor(parse_text("purse.balance", "x.apdu"))


def test_apdutool_round_trip():
    source = ("// an apdutool script\npowerup;\n"
              "0x00 0xA4 0x04 0x00 0x09 0xA0 0x00 0x00 0x00 0x03 0x86 0x98 0x07 0x01 0x7F;\n"
              "/* a block\n comment */ 0x80 0x5C 0x00 0x02 0x00 0x04;\n"
              "0x80 0xE0 0x00 0x15 0x07 0x28 0x00 0x1E 0xF0 0xF0 0xFF 0xFF;\n"
              "0 132 0 0 0 4;\n"
              "powerdown;\npowerup;\necho \"hi\";\n")
    converted = from_apdutool(source, "s.scr")
    assert converted.splitlines()[1:] == ["00 A4 04 00 09 A0 00 00 00 03 86 98 07 01 7F", "80 5C 00 02 04",
                                          "80 E0 00 15 07 28 00 1E F0 F0 FF FF", "00 84 00 00 04", "# powerdown",
                                          "reset", '# apdutool directive not converted: echo "hi"']
    back = to_apdutool(parse_text(converted, "c.apdu"))
    assert "0x00 0xA4 0x04 0x00 0x09 0xA0 0x00 0x00 0x00 0x03 0x86 0x98 0x07 0x01 0x7F;" in back
    assert "0x80 0x5C 0x00 0x02 0x00 0x04;" in back
    assert "0x80 0xE0 0x00 0x15 0x07 0x28 0x00 0x1E 0xF0 0xF0 0xFF 0xFF 0x7F;" in back
    assert back.splitlines()[2] == "powerup;" and back.splitlines()[-1] == "powerdown;"
    assert "powerdown;\npowerup;" in back
    with pytest.raises(ScriptError, match=r"s.scr:1:1: error: LC 0x05 does not match"):
        from_apdutool("0x00 0xA4 0x00 0x00 0x05 0x3F;", "s.scr")


def test_converted_apdutool_script_runs(tmp_path, capsys):
    (tmp_path / "s.scr").write_text("powerup;\n0x00 0xA4 0x00 0x00 0x02 0x3F 0x00 0x7F;\n0x00 0x84 0x00 0x00 0x00 0x04;\n"
                                    "powerdown;\n")
    assert main(["convert", str(tmp_path / "s.scr"), "--to", "cardos", "-o", str(tmp_path / "s.apdu")]) == 0
    assert main(["run", str(tmp_path / "s.apdu"), "-q"]) == 0
    capsys.readouterr()
    assert main(["convert", str(ROOT / "apdu_scripts" / "scriptor" / "blank_card.apdu"), "--to", "apdutool"]) == 0
    assert "0x00 0xA4 0x00 0x00 0x02 0x3F 0x00 0x7F;" in capsys.readouterr().out
    assert main(["convert", str(ROOT / "apdu_scripts" / "purse" / "load.apdu"), "--to", "scriptor"]) == 2
    assert "this line cannot be written without a card" in capsys.readouterr().err


def test_convert_with_keys_writes_the_values(tmp_path, capsys):
    (tmp_path / "k.apdu").write_text("keys sample\n80 D4 01 00 {lc} 3E F0 02 01 00 @purchase => 9000\n")
    assert main(["convert", str(tmp_path / "k.apdu"), "--to", "scriptor", "--keys", "sample"]) == 0
    assert "80 D4 01 00 15 3E F0 02 01 00 50 55 52 43" in capsys.readouterr().out


def test_decode_logs(tmp_path, capsys):
    log = tmp_path / "log.txt"
    log.write_text("Using T=1 protocol\n> 00 A4 00 00 02 3F 00\n< 61 17 : Normal processing.\n"
                   "A>> T=1 (4+0011) 805000020B 0100002710112233445566 10\n"
                   "A<< (0016+2) (1ms) 00000000000001006E0E5A9D1D1B2F6C 9000\n"
                   "00B095000A 00003100000000000101 9000\n")
    code, out, _ = cli(capsys, "decode", str(log), "--no-color")
    assert code == 0
    assert "SELECT (FID)" in out and "23 more bytes available" in out
    assert "INITIALIZE FOR LOAD (EP)" in out and "mac1=1D1B2F6C" in out
    assert "READ BINARY (SFI 15)" in out and "00 00 31 00 00 00 00 00 01 01 | 90 00  success" in out
    assert "# Using T=1 protocol" in out
