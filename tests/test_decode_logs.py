"""``cardos decode`` annotates the logs people paste: scriptor, opensc-tool, pyscard's console
observer, and cardos's own traces (``cardos run``, ``cardos run --json``, ``cardos shell``)."""
from __future__ import annotations

import io
import re
import shutil
import subprocess

import pytest

from cardos.cli import main
from cardos.scripting.decode_log import decode_log

# captured from pcsc-tools 1.6 scriptor and OpenSC 0.23 opensc-tool against `cardos serve city.card`
SCRIPTOR = """\
Using T=1 protocol
> 00 A4 04 00 09 A0 00 00 00 03 86 98 07 01 
< 61 30 : 0x30 bytes of response still available.
> 00 C0 00 00 30 
< 6F 2E 84 09 A0 00 00 00 03 86 98 07 01 A5 21 9F 
0C 1E 00 00 31 00 00 00 00 00 01 01 00 00 31 00 
00 00 00 00 00 42 20 26 11 21 20 36 11 21 01 00 
90 00 : Normal processing.
> 00 B0 95 00 00 
< 00 00 31 00 00 00 00 00 01 01 00 00 31 00 00 00 
00 00 00 42 20 26 11 21 20 36 11 21 01 00 90 00 : Normal processing.
> 80 5C 00 02 04 
< 00 00 27 10 90 00 : Normal processing.
> 00 B2 01 C4 17 
< 6A 83 : Wrong parameter(s) P1-P2. Record not found.
"""

OPENSC = """\
Sending: 00 A4 04 00 09 A0 00 00 00 03 86 98 07 01 00 
Received (SW1=0x90, SW2=0x00):
6F 2E 84 09 A0 00 00 00 03 86 98 07 01 A5 21 9F o.............!.
0C 1E 00 00 31 00 00 00 00 00 01 01 00 00 31 00 ....1.........1.
00 00 00 00 00 42 20 26 11 21 20 36 11 21 01 00 .....B &.! 6.!..
Sending: 00 B0 95 00 00 
Received (SW1=0x90, SW2=0x00):
00 00 31 00 00 00 00 00 01 01 00 00 31 00 00 00 ..1.........1...
00 00 00 42 20 26 11 21 20 36 11 21 01 00       ...B &.! 6.!..
Sending: 80 5C 00 02 04 
Received (SW1=0x90, SW2=0x00):
00 00 27 10 ..'.
Sending: 00 B2 01 C4 17 
Received (SW1=0x6A, SW2=0x83)
"""

PYSCARD = """\
connecting to Virtual PCD 00 00
> 80 5C 00 02 04
< 00 00 27 10 90 00
> 00 B2 01 C4 17
<  [] 6A 83
"""


def decode(text: str) -> str:
    out = io.StringIO()
    decode_log(text, out, show_keys=True)  # exact round trips, WRITE KEY values included
    return out.getvalue()


def apdus(decoded: str) -> list:
    """(command line, response line) pairs of a decoded trace, without timings."""
    lines = decoded.splitlines()
    pairs = []
    for i, line in enumerate(lines):
        if line.startswith("  > "):
            j = i + 1
            while not lines[j].startswith("  < "):
                j += 1
            pairs.append((line[4:].split("  ")[0], lines[j][4:].split("  ")[0]))
    return pairs


def test_scriptor_wrapped_answers():
    out = decode(SCRIPTOR)
    assert "# Using T=1 protocol" in out
    assert "READ BINARY (SFI 15)" in out and "GET BALANCE (EP)" in out and "balance=00002710 (100.00)" in out
    assert "READ RECORD (SFI 18)" in out and "6A 83  record not found" in out
    # the 48 bytes of the GET RESPONSE arrive whole, then the status word
    assert "    00 00 00 00 00 42 20 26 11 21 20 36 11 21 01 00\n    90 00  success" in out
    assert len(apdus(out)) == 5


def test_opensc_tool_output():
    out = decode(OPENSC)
    assert [c for c, _ in apdus(out)] == ["00 A4 04 00 | 09 | A0 00 00 00 03 86 98 07 01 | 00", "00 B0 95 00 | 00",
                                          "80 5C 00 02 | 04", "00 B2 01 C4 | 17"]
    assert "SELECT (name)" in out and "balance=00002710 (100.00)" in out and "6A 83  record not found" in out
    assert "42 20 26 11 21 20 36 11 21 01 00\n    90 00  success" in out  # ASCII gutter not taken for hex
    assert "..1." not in out


def test_scriptor_with_a_script_file_echoes_each_line():
    """`scriptor FILE` prints the script's own line, then "> ..." and "< ...": one APDU, not two."""
    out = decode("Using T=1 protocol\n# balance\n80 5C 00 02 04\n> 80 5C 00 02 04 \n"
                 "< 00 00 27 10 90 00 : Normal processing.\n")
    assert out.count("GET BALANCE (EP)") == 1 and "balance=00002710 (100.00)" in out


def test_pyscard_console_observer():
    out = decode(PYSCARD)
    assert "GET BALANCE (EP)" in out and "6A 83  record not found" in out and "# connecting to" in out


def test_same_apdus_from_scriptor_and_opensc():
    assert [r for _c, r in apdus(decode(SCRIPTOR))][2:] == [r for _c, r in apdus(decode(OPENSC))][1:]


@pytest.fixture(scope="module")
def run_outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("decode")
    # --show-keys: a round trip needs the exact bytes, WRITE KEY values included
    trace = subprocess.run([*_cardos(), "run", "--no-color", "--show-keys", "--keys", "test", "--now", "2026-05-01T09:00:00",
                            "--json", str(tmp / "run.jsonl"), "apdu_scripts/purse/purchase.apdu"],
                           capture_output=True, text=True, cwd=_root(), check=False)
    assert trace.returncode == 0, trace.stderr
    return trace.stdout, (tmp / "run.jsonl").read_text()


def _root():
    from .pcsc_fixtures import ROOT

    return ROOT


def _cardos():
    from .pcsc_fixtures import cardos_command

    return cardos_command()


def test_cardos_run_trace_round_trip(run_outputs):
    """Decoding our own trace gives back every APDU with the same bytes, fields and status words."""
    trace, _ = run_outputs
    strip = re.compile(r"  (?:[0-9.]+ ms)?$")
    original = [(c, strip.sub("", r)) for c, r in apdus(trace)]
    again = [(c, strip.sub("", r)) for c, r in apdus(decode(trace))]
    assert len(original) > 50 and again == original


def test_cardos_run_json_lines(run_outputs):
    trace, jsonl = run_outputs
    assert apdus(decode(jsonl)) == [(c, re.sub(r"  [0-9.]+ ms$", "", r)) for c, r in apdus(trace)]


def test_cardos_shell_output(tmp_path, capsys):
    image = tmp_path / "c.card"
    assert main(["issue", "--profile", "city", "--keys", "test", "--out", str(image)]) == 0
    capsys.readouterr()
    proc = subprocess.run([*_cardos(), "shell", "--card", str(image), "--keys", "test"], cwd=_root(),
                          input="load 5.00\nbalance\n", capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    out = decode(proc.stdout)
    assert "CREDIT FOR LOAD" in out and "# cardos 3F00> load 5.00" in out
    assert apdus(out) == [(c, re.sub(r"  [0-9.]+ ms$", "", r)) for c, r in apdus(proc.stdout)]


def test_stdin_and_lang(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(SCRIPTOR))
    assert main(["decode", "-", "--lang", "zh", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "读余额" in out and "未找到记录" in out


# -- live: the real tools against a served card -----------------------------------------------------

@pytest.mark.skipif(not (shutil.which("scriptor") and shutil.which("opensc-tool")),
                    reason="pcsc-tools / opensc not installed")
def test_real_scriptor_and_opensc_output(vpcd):
    from cardos import Card
    from cardos.sample import issue_sample

    from .pcsc_fixtures import reader_name

    card = Card.blank()
    issue_sample(card.transmit)
    vpcd.serve(card, port=35963)
    reader = reader_name(35963)
    script = "00A404000E315041592E5359532E444446303100\n00B0950000\n0084000008\n"
    scriptor = subprocess.run(["scriptor", "-r", reader], input=script, capture_output=True, text=True, timeout=60,
                              check=False)
    assert scriptor.returncode == 0, scriptor.stderr
    select = "00:A4:04:00:0E:31:50:41:59:2E:53:59:53:2E:44:44:46:30:31:00"  # 1PAY.SYS.DDF01
    opensc = subprocess.run(["opensc-tool", "-r", "0", "-c", "default", "-s", select, "-s", "00:B0:95:00:00",
                             "-s", "00:84:00:00:08"], capture_output=True, text=True, timeout=60, check=False)
    assert opensc.returncode == 0, opensc.stderr
    a, b = apdus(decode(scriptor.stdout)), apdus(decode(opensc.stdout))
    assert len(a) >= 3 and len(b) == 3
    assert a[-2] == b[-2]  # READ BINARY 0015: same bytes either way
    assert "READ BINARY (SFI 15)" in decode(opensc.stdout)
