"""Hostile scripts and files stop at a limit (issue 23, "Bounded inputs").

Each test is one attack from the issue, run through the real CLI (a subprocess) where a
user would meet it: the answer is one line naming the file, the line and the limit, exit
status 2, no traceback, within seconds, and nothing is sent to the card. The limits and
their defaults are in docs/scripts.md; the table of attacks in docs/robustness.md.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cardos import Card, ImageError
from cardos.boundedfile import MIB, FileRefused, read_bounded
from cardos.config import MAX_EEPROM_SIZE, CardConfig
from cardos.crypto import DES
from cardos.jsonfile import JSON_FILE_LIMIT
from cardos.scripting import ScriptError, parse_text
from cardos.scripting.limits import ScriptLimits


def cardos(*args: str, cwd, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cardos.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "NO_COLOR": "1"})


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def card_image(tmp_path) -> Path:
    path = tmp_path / "card.json"
    Card.blank().save_as(path).power_off()
    return path


def refused(result: subprocess.CompletedProcess, message: str) -> None:
    """Exit 2, the message on stderr, one error line, no traceback."""
    output = result.stderr + result.stdout
    assert result.returncode == 2, output
    assert message in result.stderr, output
    assert "Traceback" not in output
    assert sum("error: " in line for line in result.stderr.splitlines()) == 1, result.stderr


def run_refused(tmp_path, card_image, script: str, message: str, *options: str) -> float:
    """`cardos run --card` refuses ``script`` with ``message`` and the image is untouched; returns the seconds."""
    before = digest(card_image)
    started = time.monotonic()
    result = cardos("run", "--card", card_image.name, *options, script, cwd=tmp_path)
    seconds = time.monotonic() - started
    refused(result, message)
    assert digest(card_image) == before
    return seconds


# -- scripts ---------------------------------------------------------------------------------

def test_include_fan_out_stops_at_the_expanded_statement_limit(tmp_path, card_image):
    # nine tiny files, each including the next ten times: 10^8 statements (the issue: ~70 GB)
    for i in range(1, 9):
        (tmp_path / f"f{i}.apdu").write_text(f"include f{i + 1}.apdu\n" * 10)
    (tmp_path / "f9.apdu").write_text("00 84 00 00 04\n")
    seconds = run_refused(tmp_path, card_image, "f1.apdu", ".apdu:3:1: error: includes expand to more than "
                                                            f"{ScriptLimits().expanded_statements} statements")
    assert seconds < 30


def test_include_nesting_stops_at_the_depth_limit(tmp_path, card_image):
    for i in range(1, 21):
        (tmp_path / f"d{i}.apdu").write_text(f"00 84 00 00 04\ninclude d{i + 1}.apdu\n")
    (tmp_path / "d21.apdu").write_text("00 84 00 00 04\n")
    run_refused(tmp_path, card_image, "d1.apdu", "d17.apdu:2:1: error: include nesting deeper than 16")
    (tmp_path / "d16.apdu").write_text("00 84 00 00 04\n")  # 16 deep is allowed
    assert cardos("run", "-q", "d1.apdu", cwd=tmp_path).returncode == 0


def test_included_text_is_bounded_in_total(tmp_path, card_image):
    (tmp_path / "comments.apdu").write_text(("#" * 99 + "\n") * 10_000)  # 1 000 000 bytes, no statement
    (tmp_path / "many.apdu").write_text("include comments.apdu\n" * 20)
    run_refused(tmp_path, card_image, "many.apdu", "many.apdu:17:1: error: includes expand to more than 16 MiB "
                                                   "of script text")


@pytest.mark.parametrize("target, problem", [
    ("/dev/zero", "not a regular file (a character device)"),
    ("fifo", "not a regular file (a FIFO)"),
    ("sub", "not a regular file (a directory)"),
    ("big.apdu", "too large for a script (2097152 bytes; at most 1 MiB)"),
])
def test_include_of_a_special_or_huge_file_is_refused_unopened(tmp_path, card_image, target, problem):
    (tmp_path / "sub").mkdir()
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would wait for a writer forever
    with open(tmp_path / "big.apdu", "wb") as f:
        f.truncate(2 * MIB)
    (tmp_path / "x.apdu").write_text(f"00 84 00 00 04\ninclude {target}\n")
    run_refused(tmp_path, card_image, "x.apdu", f"x.apdu:2:1: error: include: '{target}': {problem}")


def test_a_script_that_is_a_fifo_or_too_large_is_refused(tmp_path, card_image):
    os.mkfifo(tmp_path / "fifo.apdu")
    run_refused(tmp_path, card_image, "fifo.apdu", "fifo.apdu: not a regular file (a FIFO)")
    with open(tmp_path / "big.apdu", "wb") as f:
        f.truncate(3 * MIB)
    run_refused(tmp_path, card_image, "big.apdu", "big.apdu: too large for a script (3145728 bytes; at most 1 MiB)")


def test_three_nested_repeats_are_refused_before_anything_is_sent(tmp_path, card_image):
    (tmp_path / "loop.apdu").write_text("00 84 00 00 04\nrepeat 10000: repeat 10000: repeat 10000: echo x\n")
    seconds = run_refused(tmp_path, card_image, "loop.apdu",
                          "loop.apdu:2:1: error: the script would run more than 1000000 statements here")
    assert seconds < 10


def test_max_statements_sets_the_limit(tmp_path, card_image):
    (tmp_path / "inner.apdu").write_text("echo in\n00 84 00 00 04 => 9000\n")
    # the repeat, and 100 times the include and its two lines: 301 statements run
    (tmp_path / "loop.apdu").write_text("repeat 100: include inner.apdu\n")
    run_refused(tmp_path, card_image, "loop.apdu", "loop.apdu:1:1: error: the script would run more than 300 "
                                                   "statements here", "--max-statements", "300")
    result = cardos("run", "-q", "--max-statements", "301", "loop.apdu", cwd=tmp_path)
    assert result.returncode == 0 and "100 APDUs" in result.stdout, result.stdout + result.stderr
    refused(cardos("run", "--max-statements", "0", "loop.apdu", cwd=tmp_path), "--max-statements")


def test_the_limit_points_into_the_include_where_it_is_passed(tmp_path):
    (tmp_path / "lib.apdu").write_text("echo a\nrepeat 9: echo b\n")
    (tmp_path / "top.apdu").write_text("echo top\ninclude lib.apdu\n")
    with pytest.raises(ScriptError) as exc:  # 1 + (1 + 1 + (1 + 9)) = 13 > 12: the repeat passes it
        parse_text((tmp_path / "top.apdu").read_text(), "top.apdu", tmp_path, ScriptLimits(statements=12))
    assert exc.value.pos.file.endswith("lib.apdu") and exc.value.pos.line == 2


def test_convert_writes_out_repeats_within_the_limit(tmp_path):
    (tmp_path / "loop.apdu").write_text("repeat 10000: repeat 10000: 00 84 00 00 04\n")
    refused(cardos("convert", "--to", "scriptor", "loop.apdu", cwd=tmp_path),
            "loop.apdu:1:1: error: the script would run more than 1000000 statements here")


def test_a_self_doubling_variable_stops_at_the_value_limit(tmp_path, card_image):
    (tmp_path / "double.apdu").write_text("set a = 00\nrepeat 100: set a = $a $a\n00 84 00 00 04\n")
    result = cardos("run", "--card", card_image.name, "double.apdu", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "double.apdu:2:21: error: a value longer than 1 MiB (the limit for one value)" in result.stderr


@pytest.mark.parametrize("line, message", [
    ("set a = rpad(00, 4000000000)", "rpad(): length 4000000000 is more than the limit for one value"),
    ("set a = hex(1, 4000000000)", "hex(): width 4000000000 is more than the limit for one value"),
    ("set a = hex(" + "1" * 5000 + ", 2)", "a number of 5000 digits is too large"),
    ("repeat " + "9" * 40 + ": echo x", "repeat count 999999999999... is too large"),
    ("echo " + "$a " * 2000, "a value longer than 1 MiB"),
    ("00 A4 00 00 " + "$a " * 2000, "a value longer than 1 MiB"),
])
def test_functions_and_lines_cannot_build_huge_values(tmp_path, line, message):
    (tmp_path / "x.apdu").write_text("set a = rpad(00, 1000)\n" + line + "\n")
    result = cardos("run", "x.apdu", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "x.apdu:2:" in result.stdout + result.stderr and message in result.stdout + result.stderr


def test_all_variables_together_are_bounded(tmp_path):
    lines = ["set a = rpad(00, 1000000)"] + [f"set v{i} = $a" for i in range(20)]
    (tmp_path / "vars.apdu").write_text("\n".join(lines) + "\n")
    result = cardos("run", "vars.apdu", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "vars.apdu:17:1: error: the variables would hold more than 16 MiB" in result.stderr, result.stderr


def test_repeat_and_if_can_include(tmp_path):
    (tmp_path / "x.apdu").write_text("00 84 00 00 04 => 9000\n")
    (tmp_path / "r.apdu").write_text("repeat 3: include x.apdu\nif $sw == 9000: include x.apdu\n")
    result = cardos("run", "-q", "r.apdu", cwd=tmp_path)
    assert result.returncode == 0 and "4 APDUs" in result.stdout, result.stdout + result.stderr


# -- card images, key sets, profiles ---------------------------------------------------------------

@pytest.mark.parametrize("command", [["inspect"], ["serve", "--timeout", "0.5"], ["run", "x.apdu", "--card"]])
def test_a_fifo_as_an_image_is_refused_without_hanging(tmp_path, command):
    os.mkfifo(tmp_path / "fifo.card")
    (tmp_path / "x.apdu").write_text("00 84 00 00 04\n")
    result = cardos(*command, "fifo.card", cwd=tmp_path, timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "fifo.card: not a regular file" in output and "Traceback" not in output


def test_a_3_gb_image_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.card"
    with open(path, "wb") as f:
        f.truncate(3 << 30)  # sparse: costs no disk
    started = time.monotonic()
    result = cardos("inspect", "huge.card", cwd=tmp_path)
    refused(result, "huge.card: too large for a card image (3221225472 bytes; at most 4 MiB)")
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("args", [["run", "--keys", "/dev/zero", "x.apdu"],
                                  ["issue", "--profile", "/dev/zero", "--keys", "test", "--card", "c.card"]])
def test_devices_as_key_sets_and_profiles_are_refused(tmp_path, args):
    (tmp_path / "x.apdu").write_text("00 84 00 00 04\n")
    Card.blank().save_as(tmp_path / "c.card").power_off()
    result = cardos(*args, cwd=tmp_path, timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "/dev/zero" in output and "not a regular file (a character device)" in output
    assert "Traceback" not in output


def test_the_fullest_image_the_config_allows_is_under_the_cap(tmp_path):
    """The cap is derived from the largest EEPROM: a card of MAX_EEPROM_SIZE filled with the
    smallest files (the most JSON per EEPROM byte) still loads, with room to spare."""
    card = Card.blank(CardConfig(eeprom_size=MAX_EEPROM_SIZE))

    def send(apdu: bytes) -> bytes:
        response = card.transmit(apdu)
        if response[-2] == 0x61:
            response = card.transmit(bytes((0, 0xC0, 0, 0, response[-1])))
        return response

    send(bytes.fromhex("00A40000023F00"))
    challenge = send(bytes.fromhex("0084000004"))[:4]
    assert send(b"\x00\x82\x00\x00\x08" + DES.encrypt(b"\xff" * 8, challenge + bytes(4)))[-2:] == b"\x90\x00"
    files = 0
    for fid in range(0x0100, 0xFFFF):  # one-byte binary files until the EEPROM is full
        if send(bytes.fromhex(f"80E0{fid:04X}07280001F0F0FFFF"))[-2:] != b"\x90\x00":
            break
        files += 1
    assert files > 7000
    path = tmp_path / "full.card"
    card.save_as(path).close()
    assert path.stat().st_size * 3 < JSON_FILE_LIMIT
    assert len(Card.open(path).mf.children) == files + 1


def test_read_bounded_reads_at_most_the_limit(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    assert read_bounded(path, 1000, "a test file") == b"x" * 1000
    with pytest.raises(FileRefused, match=r"too large for a test file \(1000 bytes; at most 999 bytes\)"):
        read_bounded(path, 999, "a test file")
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "missing", 10, "a test file")
    with pytest.raises(ImageError, match="not a regular file"):
        Card.open("/dev/null")


@pytest.mark.parametrize("source, problem", [("/dev/zero", "not a regular file (a character device)"),
                                             ("fifo.json", "not a regular file (a FIFO)")])
def test_a_profile_taking_an_application_from_a_device_or_fifo_is_refused(tmp_path, source, problem):
    import json

    from cardos import profiles as P

    os.mkfifo(tmp_path / "fifo.json")
    multi = json.loads((P.SHIPPED_DIR / "multi.json").read_text())
    multi["applications"][0]["from"] = source
    (tmp_path / "p.json").write_text(json.dumps(multi))
    with pytest.raises(P.ProfileError, match=re.escape(f"applications[0].from: cannot read profile '{source}': "
                                                       f"{problem}")):
        P.load(tmp_path / "p.json")
