"""The live APDU trace: ``cardos serve --trace FILE`` / ``-v`` through a real pcscd, and the
in-process pyscard reader's ``trace=``; ``cardos decode`` reads both back."""
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess

import pytest

from cardos import Card

from .pcsc_fixtures import FIRST_PORT, ROOT, cardos_command, reader_name

READER0 = reader_name(FIRST_PORT)
SELECT_MF = [0x00, 0xA4, 0x00, 0x00, 0x02, 0x3F, 0x00]
CHALLENGE = [0x00, 0x84, 0x00, 0x00, 0x04]
WRITE_KEY = [0x80, 0xD4, 0x01, 0x00, 0x0D, 0x39, 0xF0, 0xF0, 0xAA, 0x33] + [0x5A] * 8
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}"


def decode(path) -> subprocess.CompletedProcess:
    return subprocess.run(cardos_command("decode", str(path)), cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=30)


def exchanges(text: str) -> list[tuple[str, str]]:
    """(command line, answer line) pairs of a trace, timestamps checked and cut off."""
    lines = [line for line in text.splitlines() if re.match(rf"{STAMP}  [<>] ", line)]
    bodies = [line.split("  ", 1)[1] for line in lines]
    assert [b[0] for b in bodies] == [">", "<"] * (len(bodies) // 2)
    return list(zip(bodies[0::2], bodies[1::2]))


def test_serve_trace_file_and_verbose_show_decoded_exchanges_without_polls(serve_process, vpcd, pcscd, tmp_path):
    image = tmp_path / "card.json"
    Card.blank().save_as(image)
    trace = tmp_path / "trace.log"
    served = serve_process(str(image), "--trace", str(trace), "-v")
    pcscd.wait_card(READER0, present=True)
    connection = vpcd.connect(READER0)
    assert connection.transmit(SELECT_MF)[1:] == (0x61, 0x17)
    assert connection.transmit(CHALLENGE)[1] == 0x90
    assert connection.transmit(WRITE_KEY)[1:] == (0x69, 0x82)
    connection.disconnect()
    served.signal(signal.SIGTERM)
    assert served.wait() == 0

    assert stat.S_IMODE(os.stat(trace).st_mode) == 0o600
    text = trace.read_text()
    pairs = exchanges(text)
    assert pairs[0] == ("> 00 A4 00 00 | 02 | 3F 00  SELECT (FID)", pairs[0][1])
    assert re.fullmatch(r"< 61 17  23 more bytes available  \d+\.\d ms", pairs[0][1])
    assert pairs[1][0] == "> 00 84 00 00 | 04  GET CHALLENGE"
    assert re.fullmatch(r"< [0-9A-F]{2}( [0-9A-F]{2}){3} \| 90 00  success  \d+\.\d ms", pairs[1][1])
    assert pairs[2][0] == "> 80 D4 01 00 | 0D | 39 F0 F0 AA 33 ****************  WRITE KEY"  # key masked
    assert "5A5A" not in text
    assert len(pairs) == 3
    assert re.search(rf"^{STAMP}  card inserted$", text, re.M)
    assert re.search(rf"^{STAMP}  power on$", text, re.M)
    assert "control" not in text and "ATR" not in text  # no vpcd polls

    # -v shows the same decoded lines on stderr, and no poll chatter
    stderr = served.stderr_text()
    assert "control 04" not in stderr and "control" not in stderr
    assert [pair for pair in exchanges(stderr)] == pairs

    decoded = decode(trace)
    assert decoded.returncode == 0, decoded.stderr
    out = decoded.stdout
    assert "SELECT (FID)" in out and "GET CHALLENGE" in out and "WRITE KEY" in out
    assert "> 00 A4 00 00 | 02 | 3F 00" in out and "< 61 17  23 more bytes available" in out
    assert "< 69 82  security status not satisfied" in out
    assert "# power on" in out and "# card inserted" in out


def test_serve_trace_with_two_cards_names_the_slot(serve_process, vpcd, pcscd, tmp_path):
    images = []
    for name in ("a.json", "b.json"):
        Card.blank().save_as(tmp_path / name)
        images.append(str(tmp_path / name))
    trace = tmp_path / "trace.log"
    served = serve_process(*images, "--trace", str(trace), ready_lines=2)
    reader1 = reader_name(FIRST_PORT + 1)
    pcscd.wait_card(reader1, present=True)
    assert vpcd.connect(reader1).transmit(CHALLENGE)[1] == 0x90
    served.signal(signal.SIGTERM)
    assert served.wait() == 0
    text = trace.read_text()
    assert re.search(rf"^{STAMP}  \[localhost:{FIRST_PORT + 1}\]  > 00 84 00 00 \| 04  GET CHALLENGE$", text, re.M)
    assert "GET CHALLENGE" in decode(trace).stdout


def test_an_uncreatable_trace_file_is_one_line_and_exit_2(tmp_path):
    image = tmp_path / "card.json"
    Card.blank().save_as(image)
    run = subprocess.run(cardos_command("serve", str(image), "--trace", str(tmp_path / "nodir" / "t.log")),
                         cwd=ROOT, capture_output=True, text=True, check=False, timeout=30)
    assert run.returncode == 2
    assert run.stderr == f"cardos serve: error: --trace {tmp_path / 'nodir' / 't.log'}: No such file or directory\n"


def test_the_in_process_pyscard_reader_writes_the_same_trace(tmp_path):
    pytest.importorskip("smartcard")
    from smartcard.System import readers

    from cardos.transports.pyscard_reader import emulated_reader

    trace = tmp_path / "reader.log"
    with emulated_reader(Card.blank(), trace=trace) as reader:
        connection = readers()[0].createConnection()
        connection.connect()
        assert connection.transmit(SELECT_MF)[1:] == (0x61, 0x17)
        assert connection.transmit([0x00, 0xC0, 0x00, 0x00, 0x17])[1:] == (0x90, 0x00)
        connection.reconnect()  # a warm reset
        reader.remove()
        reader.insert()
        connection.reconnect()
        connection.disconnect()
    assert stat.S_IMODE(os.stat(trace).st_mode) == 0o600
    text = trace.read_text()
    events = [line.split("  ", 1)[1] for line in text.splitlines()[1:] if not re.match(rf"{STAMP}  [<>]", line)]
    # the last reconnect() leaves the RESET disposition, so disconnect() resets rather than unpowers
    assert events == ["power on", "reset", "card removed", "card inserted", "power on", "reset"]
    pairs = exchanges(text)
    assert pairs[1][0] == "> 00 C0 00 00 | 17  GET RESPONSE"
    assert pairs[1][1].startswith("< 6F 15 84 0E 31 50 41 59 2E 53 59 53 2E 44 44 46 30 31 A5 03 88 01 01 | 90 00  "
                                  "success  ")
    out = decode(trace).stdout
    assert "GET RESPONSE" in out and "6F 15 84 0E" in out and "# card removed" in out
