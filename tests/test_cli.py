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


def test_demo_goes_through_the_embedded_pyscard_reader(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("reader 'cardos Emulated Reader 0': card present, ATR 3B8C")
    assert "EP balance 87.50" in out


def test_demo_through_a_served_card_in_pcscd(vpcd, capsys):
    """`cardos demo --reader` drives a blank card served into a real pcscd vpcd slot."""
    from .pcsc_fixtures import reader_name

    card = Card.blank()
    vpcd.serve(card, port=35964)
    assert main(["demo", "--reader", reader_name(35964)]) == 0
    out = capsys.readouterr().out
    assert "Virtual PCD 00 01" in out and "EP balance 87.50" in out
    card.transmit(bytes.fromhex("00A4040009A00000000386980701"))
    assert card.transmit(bytes.fromhex("805C000204")) == bytes.fromhex("0000222E9000")  # 87.50


def test_demo_with_an_unknown_reader_fails_cleanly(capsys):
    """Exit 3 with one line: the reader is unknown, or (no pcscd) the readers can't be listed."""
    assert main(["demo", "--reader", "no such reader"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("cardos: error: ") and err.count("\n") == 1
    assert "no such reader" in err or "pcscd" in err
