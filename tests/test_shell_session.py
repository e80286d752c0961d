"""``cardos shell``: a removed card does not end the session (``reset``/``connect`` bring it back,
through a real pcscd and ``cardos serve --control``), and the small messages a new user meets:
``help`` without ``EOF``, negative amounts, odd hex, fen in the help texts."""
from __future__ import annotations

import os
import queue
import subprocess
import threading
import time

import pytest

from cardos.shell import UsageError, parse_amount, parse_hex
from cardos.transports import control

from .pcsc_fixtures import FIRST_PORT, ROOT, cardos_command, reader_name
from .test_shell import issued_image, shell  # noqa: F401 (issued_image is a fixture)

READER0 = reader_name(FIRST_PORT)


class ShellProcess:
    """``cardos shell`` as a child process fed line by line through a pipe."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(cardos_command("shell", *args), cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
        self.lines: queue.Queue = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def send(self, command: str, until: str, timeout: float = 20.0) -> list[str]:
        """Type ``command``; the output lines up to the first that contains ``until``."""
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {until!r} after {command!r}: {got}") from None
            got.append(line)
            self.output.append(line)
            if until in line:
                return got

    def close(self) -> int:
        self.proc.stdin.close()
        try:
            return self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def test_a_removed_card_is_reconnected_with_reset_and_with_connect(serve_process, pcscd, issued_image, tmp_path):
    ctl = str(tmp_path / "serve.ctl")
    serve_process(str(issued_image), "--control", ctl)
    pcscd.wait_card(READER0, present=True)
    session = ShellProcess("-r", READER0, "--keys", "test", "--trace", "off")
    try:
        session.send("balance", "EP balance 0.00")

        assert control.send(ctl, "remove") == ["ok"]
        pcscd.wait_card(READER0, present=False)
        out = session.send("balance", "card removed: insert it and type `connect`")
        assert any(line.startswith("error: ") for line in out)
        assert session.proc.poll() is None  # still there

        assert control.send(ctl, "insert") == ["ok"]
        pcscd.wait_card(READER0, present=True)
        session.send("reset", "ATR 3B 8C")  # the card is back: reset powers it up through the same connection
        session.send("load 1.00", "EP load: card 3100000000000042")

        assert control.send(ctl, "remove") == ["ok"]
        pcscd.wait_card(READER0, present=False)
        session.send("connect", "card removed: insert it and type `connect`")  # still out: said so, no exit
        assert control.send(ctl, "insert") == ["ok"]
        pcscd.wait_card(READER0, present=True)
        session.send("connect", f"connected to {READER0}")
        session.send("balance", "EP balance 1.00")
        session.send("connect 0", f"connected to {READER0}")  # a reader by number, as -r
        session.send("echo done", "done")
    finally:
        code = session.close()
    assert code == 1  # the commands that met no card failed; the session ended connected
    assert not any("Traceback" in line for line in session.output)


def test_connect_on_an_image_powers_up_again_and_refuses_a_reader(issued_image, tmp_path):
    code, out = shell("verify 123456\nconnect\napdu 00 84 00 00 04\nconnect 1\n", card=str(issued_image))
    assert code == 1
    assert "connected to card image" in out and "Success!" in out
    assert "usage: connect READER needs a shell on a PC/SC reader (cardos shell -r READER)" in out


def test_help_does_not_list_eof_and_says_amounts_are_fen():
    code, out = shell("help\nhelp load\nhelp purchase\nhelp balance\nhelp connect\n")
    assert code == 0, out
    assert "EOF" not in out and "Undocumented" not in out
    assert "connect" in out and "reset" in out
    assert out.count("fen (分, 1/100 yuan") == 2
    assert "shown in yuan (the card counts fen, 分)" in out


def test_negative_and_huge_amounts_say_what_an_amount_is():
    with pytest.raises(UsageError, match=r"amount '-5': amount must be a positive number of fen \(分\)"):
        parse_amount("-5")
    with pytest.raises(UsageError, match="amount must be a positive number of fen"):
        parse_amount("-0.50")
    with pytest.raises(UsageError, match=r"at most 4294967295 fen \(分\) = 42949672.95 yuan"):
        parse_amount("4294967296")
    code, out = shell("load -5\n", keys="test")
    assert code == 1 and "usage: amount '-5': amount must be a positive number of fen (分)" in out
    assert "does not fit" not in out


def test_odd_hex_names_the_digit_count():
    with pytest.raises(UsageError, match=r"odd number of hex digits \(7\) in '00 84 00 0'"):
        parse_hex("00 84 00 0")
    with pytest.raises(UsageError, match=r"not hex: 'G' in '00 G4'"):
        parse_hex("00 G4")
    code, out = shell("apdu 0084000\n")
    assert code == 1 and "usage: odd number of hex digits (7) in '0084000'" in out


def test_decode_reads_alternating_command_and_answer_lines(tmp_path):
    paste = tmp_path / "paste.txt"
    paste.write_text("00A4040009A00000000386980701\n6F318409A00000000386980701A5249F0801029F0C1E0000310000"
                     "0000000000423100000000000042202601012031123100000000 9000\n"
                     "805C000204\n000003E8 9000\n"
                     "0084000004\n11223344 90 00\n"
                     "00B0950000\n6A82\n")
    proc = subprocess.run(cardos_command("decode", str(paste)), cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count("  > ") == 4 and out.count("  < ") == 4  # every command has its answer
    assert "< 00 00 03 E8 | 90 00  success" in out and "balance=000003E8 (10.00)" in out
    assert "< 11 22 33 44 | 90 00  success" in out
    assert "< 6A 82  file not found" in out
    assert "# " not in out  # no answer line was taken for a remark or a command
