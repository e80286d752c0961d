"""Cards inside a real pcscd through vpcd, used by unchanged PC/SC clients
(pyscard, scriptor, opensc-tool). Needs root and ``./dev.sh setup``; the
session starts its own pcscd (see tests/pcsc_fixtures.py)."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from cardos import Card
from cardos.sample import SampleCard, issue_sample
from cardos.transports.pyscard_reader import transmit_function

from .pcsc_fixtures import FIRST_PORT, reader_name

READER0 = reader_name(FIRST_PORT)
READER1 = reader_name(FIRST_PORT + 1)
SELECT_APP = bytes.fromhex("00A4040009A0000000038698070100")


def hexs(b) -> str:
    return bytes(b).hex().upper()


@pytest.fixture
def issued_image(tmp_path):
    """A personalized card image (issued in process: fast)."""
    def make(name="card.json", serial="3100000000000001"):
        card = Card.blank().save_as(tmp_path / name)
        issue_sample(card.transmit, SampleCard(serial=bytes.fromhex(serial)))
        card.power_off()
        return tmp_path / name
    return make


def test_pyscard_personalizes_a_blank_card_through_pcscd(vpcd, tmp_path):
    card = Card.blank().save_as(tmp_path / "blank.json")
    vpcd.serve(card)
    connection = vpcd.connect(READER0)
    assert connection.getATR() == list(card.atr)
    transmit = transmit_function(connection)
    sample = issue_sample(transmit)
    assert transmit(SELECT_APP)[-2:-1] in (b"\x90", b"\x61")
    data = transmit(bytes.fromhex("00B095001E"))
    assert data[-2:] == b"\x90\x00" and data[:-2] == sample.ef0015
    connection.disconnect()
    # every step was committed to the image
    reopened = Card.open(tmp_path / "blank.json")
    reopened.power_on()
    reopened.transmit(SELECT_APP)
    assert reopened.transmit(bytes.fromhex("00B095001E"))[:-2] == sample.ef0015


def test_pyscard_observers_and_error_checking_over_pcscd(vpcd, capsys):
    from smartcard.CardConnectionObserver import ConsoleCardConnectionObserver
    from smartcard.sw.ErrorCheckingChain import ErrorCheckingChain
    from smartcard.sw.ISO7816_4ErrorChecker import ISO7816_4ErrorChecker
    from smartcard.sw.SWExceptions import CheckingErrorException

    vpcd.serve(Card.blank())
    connection = vpcd.connect(READER0)
    connection.addObserver(ConsoleCardConnectionObserver())
    chain: list = []
    chain = [ErrorCheckingChain(chain, ISO7816_4ErrorChecker())]
    connection.setErrorCheckingChain(chain)
    with pytest.raises(CheckingErrorException, match="File not found"):
        connection.transmit([0x00, 0xA4, 0x00, 0x00, 0x02, 0x12, 0x34])
    out = capsys.readouterr().out
    assert "> 00 A4 00 00 02 12 34" in out and "6A 82" in out
    connection.disconnect()


def test_apdus_do_not_stall_on_delayed_acks(vpcd):
    """With TCP_QUICKACK re-armed after every read an APDU takes well under a
    millisecond locally; without it bookworm's vpcd needs ~44 ms per APDU."""
    vpcd.serve(Card.blank())
    connection = vpcd.connect(READER0)
    command = [0x00, 0x84, 0x00, 0x00, 0x04]
    connection.transmit(command)
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        _, sw1, _ = connection.transmit(command)
    per_apdu = (time.perf_counter() - start) / n
    connection.disconnect()
    assert sw1 == 0x90
    assert per_apdu < 0.010, f"{per_apdu * 1000:.1f} ms per APDU: delayed-ACK stall (TCP_QUICKACK)?"


@pytest.mark.skipif(shutil.which("scriptor") is None, reason="pcsc-tools not installed")
def test_scriptor_talks_to_the_served_card(vpcd, tmp_path):
    vpcd.serve(Card.blank())
    script = tmp_path / "select.apdu"
    script.write_text("# select the MF, then fetch its FCI and a challenge\n"
                      "00 A4 00 00 02 3F 00\n00 C0 00 00 17\n00 84 00 00 04\n")
    run = subprocess.run(["scriptor", "-r", READER0, str(script)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "> 00 A4 00 00 02 3F 00" in out and "< 61 17 : 0x17 bytes of response still available." in out
    assert "< 6F 15 84 0E 31 50 41 59 2E 53 59 53 2E 44 44 46" in out    # the MF's FCI (1PAY.SYS.DDF01)
    assert out.count(": Normal processing.") == 2                       # FCI and challenge: 90 00


@pytest.mark.skipif(shutil.which("opensc-tool") is None, reason="opensc not installed")
def test_opensc_tool_talks_to_the_served_card(vpcd):
    card = Card.blank()
    vpcd.serve(card)
    atr = subprocess.run(["opensc-tool", "-r", "0", "-a"], capture_output=True, text=True, timeout=30)
    assert atr.returncode == 0, atr.stderr
    assert atr.stdout.strip().upper() == ":".join(f"{b:02X}" for b in card.atr)
    sent = subprocess.run(["opensc-tool", "-r", "0", "-c", "default", "-s", "00:84:00:00:04"],
                          capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    assert "Sending: 00 84 00 00 04" in sent.stdout
    assert "Received (SW1=0x90, SW2=0x00)" in sent.stdout


def test_two_cards_in_two_slots_at_once(vpcd, issued_image):
    a = Card.open(issued_image("a.json", "3100000000000001"))
    b = Card.open(issued_image("b.json", "3100000000000002"))
    vpcd.serve(a, b)
    ca, cb = vpcd.connect(READER0), vpcd.connect(READER1)
    ta, tb = transmit_function(ca), transmit_function(cb)
    ta(SELECT_APP)
    tb(SELECT_APP)
    for _ in range(3):  # interleaved: each reader reaches its own card
        ra, rb = ta(bytes.fromhex("00B095001E")), tb(bytes.fromhex("00B095001E"))
        assert ra[12:20].hex() == "3100000000000001" and rb[12:20].hex() == "3100000000000002"
    ca.disconnect()
    cb.disconnect()


def test_two_servers_in_two_slots(vpcd):
    """One server (one process, in real life) per slot works as well."""
    vpcd.serve(Card.blank(), port=FIRST_PORT)
    vpcd.serve(Card.blank(), port=FIRST_PORT + 1)
    for reader in (READER0, READER1):
        connection = vpcd.connect(reader)
        assert connection.transmit([0x00, 0x84, 0x00, 0x00, 0x04])[1:] == (0x90, 0x00)
        connection.disconnect()


def test_removal_and_reinsertion_seen_by_pyscard(vpcd, pcscd):
    from smartcard.Exceptions import CardConnectionException, NoCardException

    server = vpcd.serve(Card.blank())
    slot = server.slots[0]
    connection = vpcd.connect(READER0)
    slot.remove()
    pcscd.wait_card(READER0, present=False)
    with pytest.raises(CardConnectionException):
        connection.transmit([0x00, 0x84, 0x00, 0x00, 0x04])
    with pytest.raises(NoCardException):
        vpcd.connect(READER0)
    slot.insert()
    pcscd.wait_card(READER0, present=True)
    connection.reconnect()
    assert connection.transmit([0x00, 0x84, 0x00, 0x00, 0x04])[1:] == (0x90, 0x00)
    connection.disconnect()


def test_power_cut_fails_the_command_and_the_card_comes_back(vpcd, tmp_path):
    """A card that answers nothing (power cut in the middle of a write) drops
    its connection; vpcd fails the command and takes the card straight back.
    The torn command left no trace."""
    from smartcard.Exceptions import CardConnectionException

    card = Card.blank().save_as(tmp_path / "c.json")
    issue_sample(card.transmit)
    slot = vpcd.serve(card).slots[0]
    wrong_pin = bytes.fromhex("0020000003999999")
    connection = vpcd.connect(READER0)
    t = transmit_function(connection)
    t(SELECT_APP)
    first = t(wrong_pin)
    assert first[0] == 0x63
    card.arm_power_cut(1)  # the try-counter write of the next VERIFY
    with pytest.raises(CardConnectionException):
        t(wrong_pin)
    assert slot.wait_inserted(2, timeout=5)
    connection.reconnect()  # what a terminal does after a failed command: reset the card
    t(SELECT_APP)
    assert t(wrong_pin)[1] == first[1] - 1  # the torn VERIFY did not count


def test_card_comes_back_after_pcscd_restarts(vpcd, pcscd):
    server = vpcd.serve(Card.blank())
    pcscd.restart()
    pcscd.wait_card(READER0, present=True, timeout=10)
    connection = vpcd.connect(READER0)
    assert connection.transmit([0x00, 0x84, 0x00, 0x00, 0x04])[1:] == (0x90, 0x00)
    connection.disconnect()
    assert server.slots[0].insertions >= 2
