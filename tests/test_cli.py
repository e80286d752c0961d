"""The cardos command line: the subcommands of the core."""
import subprocess
import sys

from cardos import Card
from cardos.cli import main


def test_demo_runs_and_keeps_an_image(tmp_path, capsys):
    image = tmp_path / "demo.card"
    assert main(["demo", "--image", str(image)]) == 0
    out = capsys.readouterr().out
    assert "issued application serial" in out
    card = Card.open(image)
    assert card.transmit(bytes.fromhex("00A4040009A0000000038698070100"))[-2:] == b"\x90\x00"


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "cardos.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "new" in out.stdout and "demo" in out.stdout


def test_usage_error_exit_code(capsys):
    try:
        main(["no-such-command"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "invalid choice" in capsys.readouterr().err
