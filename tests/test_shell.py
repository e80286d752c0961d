"""``cardos shell``: scripted from stdin (emulated card, a served card through pyscard and through
scriptor) and interactive on a pseudo-terminal (readline completion and history)."""
from __future__ import annotations

import io
import os
import pty
import select
import shutil
import subprocess
import time
from types import SimpleNamespace

import pytest

from cardos.cli import main
from cardos.inspect import describe_card, load_card
from cardos.shell import parse_amount, run

from .pcsc_fixtures import ROOT, cardos_command


@pytest.fixture(scope="module")
def issued_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("shell") / "city.card"
    assert main(["issue", "--profile", "city", "--keys", "test", "--serial", "42", "--out", str(path)]) == 0
    return path


@pytest.fixture
def image(issued_image, tmp_path):
    path = tmp_path / "city.card"
    shutil.copy(issued_image, path)
    return path


def shell(commands: str, **options) -> tuple:
    args = SimpleNamespace(card=None, reader=None, via="pyscard", keys=None, terminal="010203040506",
                           aid="A00000000386980701", lang="en", trace="full", no_color=True)
    for key, value in options.items():
        setattr(args, key, value)
    out = io.StringIO()
    code = run(args, stdin=io.StringIO(commands), out=out)
    return code, out.getvalue()


def test_purse_session_on_an_image(image):
    code, out = shell("balance\nload 100.00\npurchase 2.50\npurchase 100\nbalance\nhistory\n",
                      card=str(image), keys="test")
    assert code == 0, out
    assert "cardos 3F00> balance" in out  # commands are echoed when read from stdin
    assert "(entering the purse application aid:A00000000386980701)" in out
    assert "EP balance 0.00" in out and "EP balance 96.50" in out
    assert "EP load: card 3100000000000042 counter 0 amount 100.00 balance 100.00" in out
    assert "EP purchase: card 3100000000000042 counter 1 amount 1.00 balance 96.50" in out
    # every APDU decoded: name, split fields, status word meaning
    assert "INITIALIZE FOR PURCHASE (EP)" in out and "DEBIT FOR PURCHASE" in out
    assert "key_id=01 amount=000000FA (2.50) terminal=010203040506" in out
    assert "90 00  success" in out
    rows = [line for line in out.splitlines() if line.startswith((" 1 ", " 2 ", " 3 "))]
    assert [("EP purchase" in r, "EP load" in r) for r in rows] == [(True, False), (True, False), (False, True)]
    model = describe_card(load_card(str(image)))  # changes are saved to the image
    assert next(p for p in model["purses"] if p["purse"] == "EP")["balance"] == 9650


def test_files_and_raw_commands(image):
    code, out = shell("info\nls\ncd 1001\ncat 0015\ncat sfi:18\nchallenge 8\napdu 00 84 00 00 04\n"
                      "cd ..\ncd aid:A00000000386980701\ncd /\ncd 1PAY.SYS.DDF01\n", card=str(image))
    assert code == 0, out
    assert "DF name    \"1PAY.SYS.DDF01\"" in out and "88 SFI of the DIR file" in out
    assert "1001  DF" in out and "0005  EF binary" in out and "aid:A00000000386980701  \"PBOC\"" in out
    assert "0015: binary, 30 bytes" in out and "0000  00 00 31 00" in out
    assert "SFI 18: 0 record(s)" in out
    assert out.count("Success!") == 1
    assert "cardos 3F00/1001> cat 0015" in out and "cardos 3F00/1001> cd .." in out


def test_verify_and_ed(image):
    code, out = shell("cd 1001\nload 5 ed\nverify 123456\nload 5 ed\nbalance ed\n", card=str(image), keys="test")
    assert code == 1  # the first ED load fails: the ED's use right needs the PIN
    assert "Failure: INITIALIZE FOR LOAD: card answered 6982" in out
    assert "PIN verified" in out and "ED balance 0.05" in out


def test_failures_and_usage(image):
    code, out = shell("cat 0099\nload 1\npurchase\nverify 12x\nnonsense\napdu 00\n# a comment\n", card=str(image))
    assert code == 1
    assert "Failure: SELECT 0099: 6A82 file not found" in out
    assert "usage: load needs keys" in out
    assert "usage: purchase AMOUNT" in out
    assert "usage: a PIN is 2 to 12 decimal digits (got 3 characters; not echoed)" in out
    assert "usage: unknown command 'nonsense'" in out
    assert "usage: an APDU has at least 4 bytes" in out
    assert "# a comment" in out


def test_blank_in_memory_card_and_trace_modes():
    code, out = shell("trace short\nchallenge\ntrace off\nchallenge\nreset\n")
    assert code == 0, out
    assert "· 00 84 00 00 04  GET CHALLENGE  →" in out
    assert out.count("random ") == 2 and "ATR 3B 8C" in out


def test_amounts():
    assert [parse_amount(t) for t in ("0", "1", "0.01", "12.3", "100.00")] == [0, 1, 1, 1230, 10000]


def test_through_the_cli_with_a_pipe(image):
    """`cardos shell` as a program: commands on stdin (not a terminal), exit status."""
    proc = subprocess.run(cardos_command("shell", "--card", str(image), "--keys", "test"),
                          input="balance\nquit\n", capture_output=True, text=True, timeout=60, cwd=ROOT,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "EP balance 0.00" in proc.stdout and "\033[" not in proc.stdout
    proc = subprocess.run(cardos_command("shell", "--card", str(image.parent / "nope.card")),
                          input="", capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == 2 and "no such card image" in proc.stderr


def _pty_session(args, keystrokes, env) -> str:
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env, close_fds=True)
    os.close(slave)
    output = b""

    def read_until(marker: bytes, timeout: float = 20.0) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output:
            left = deadline - time.monotonic()
            assert left > 0, output.decode(errors="replace")
            ready, _, _ = select.select([master], [], [], left)
            if ready:
                try:
                    output += os.read(master, 4096)
                except OSError:
                    break
    try:
        read_until(b"cardos 3F00> ")
        for keys, marker in keystrokes:
            os.write(master, keys)
            read_until(marker)
        os.write(master, b"quit\r")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return output.decode(errors="replace")


def test_interactive_completion_and_history(image, tmp_path):
    history = tmp_path / "history"
    env = dict(os.environ, CARDOS_HISTORY=str(history), NO_COLOR="1", TERM="dumb")
    out = _pty_session(cardos_command("shell", "--card", str(image), "--keys", "test"),
                       [(b"bal\t\r", b"EP balance 0.00"), (b"cd /\r", b"cardos 3F00> "),
                        (b"ls\r", b"applications listed"), (b"cd 10\t\r", b"cardos 3F00/1001> ")], env)
    assert "EP balance 0.00" in out and "cardos 3F00/1001> " in out
    assert "balance" in history.read_text() and "cd 1001" in history.read_text()


# -- through pcscd ---------------------------------------------------------------------------------

def test_served_card_through_pyscard(vpcd, issued_image, capsys):
    card = load_card(str(issued_image))
    vpcd.serve(card, port=35964)
    code, out = shell("load 10.00\npurchase 0.50\nbalance\nhistory\n", reader="PCD 00 01", keys="test")
    assert code == 0, out
    assert "EP balance 9.50" in out and "EP purchase" in out


@pytest.mark.skipif(shutil.which("scriptor") is None, reason="pcsc-tools (scriptor) is not installed")
def test_served_card_through_scriptor(vpcd, issued_image):
    """Every APDU of a load and a purchase goes through a scriptor process; cardos makes the MACs."""
    card = load_card(str(issued_image))
    vpcd.serve(card, port=35963)
    code, out = shell("load 10.00\npurchase 0.50\nbalance\n", reader="0", via="scriptor", keys="test")
    assert code == 0, out
    assert "scriptor| > 80 50 01 02 0B" in out and "scriptor| < " in out and ": Normal processing." in out
    assert "EP balance 9.50" in out
    card.transmit(bytes.fromhex("00A4040009A00000000386980701"))
    assert card.transmit(bytes.fromhex("805C000204")) == bytes.fromhex("000003B69000")


def test_via_scriptor_needs_a_reader(image):
    with pytest.raises(Exception) as info:
        shell("balance\n", card=str(image), via="scriptor")
    assert "--via scriptor needs --reader" in str(info.value)
