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
from cardos.terminal import purse as tx
from cardos.terminal.host import LoadHost
from cardos.terminal.psam import PSAM
from cardos.transports.pyscard_reader import transmit_function

from .pcsc_fixtures import (
    FIRST_PORT,
    HOST_TERMINAL,
    POS_TERMINAL,
    PURSE_SERIAL,
    issuer_keys,
    purse_image,
    purse_sample,
    reader_name,
)

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


def test_pyscard_personalizes_loads_purchases_and_capp_purchases_through_pcscd(vpcd, tmp_path):
    card = Card.blank().save_as(tmp_path / "card.json")
    vpcd.serve(card)
    connection = vpcd.connect(READER0)
    assert connection.getATR() == list(card.atr)
    transmit = transmit_function(connection)
    sample = issue_sample(transmit, purse_sample())            # personalization, APDU by APDU
    assert tx.select_application(connection) == PURSE_SERIAL
    assert transmit(bytes.fromhex("00B095001E"))[:-2] == sample.ef0015
    assert transmit(bytes.fromhex("00E200D007AA050000000000")) == b"\x90\x00"  # a CAPP record
    host, psam = LoadHost(issuer_keys()), PSAM(issuer_keys(), POS_TERMINAL)
    r1 = tx.load(connection, host, 10000, terminal=HOST_TERMINAL)
    r2 = tx.purchase(connection, psam, 250)
    r3 = tx.capp_purchase(connection, psam, 150, [tx.CappUpdate(0x1A, 0xAA, bytes.fromhex("AA0501202605 05"))])
    assert [(r.type, r.counter, r.balance) for r in (r1, r2, r3)] == [(0x02, 0, 10000), (0x06, 0, 9750),
                                                                      (0x09, 1, 9600)]
    assert all(host.verify_tac(r) for r in (r1, r2, r3))
    assert tx.get_balance(connection) == 9600
    assert transmit(bytes.fromhex("00B201D400")) == bytes.fromhex("AA05012026050590 00")
    connection.disconnect()
    card.close()                                               # the server stops
    # every step was committed to the image
    reopened = Card.open(tmp_path / "card.json")
    tx.select_application(reopened)
    assert tx.get_balance(reopened) == 9600


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
    run = subprocess.run(["scriptor", "-r", READER0, str(script)], capture_output=True, text=True, check=False, timeout=30)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "> 00 A4 00 00 02 3F 00" in out and "< 61 17 : 0x17 bytes of response still available." in out
    assert "< 6F 15 84 0E 31 50 41 59 2E 53 59 53 2E 44 44 46" in out    # the MF's FCI (1PAY.SYS.DDF01)
    assert out.count(": Normal processing.") == 2                       # FCI and challenge: 90 00


@pytest.mark.skipif(shutil.which("opensc-tool") is None, reason="opensc not installed")
def test_opensc_tool_talks_to_the_served_card(vpcd):
    card = Card.blank()
    vpcd.serve(card)
    atr = subprocess.run(["opensc-tool", "-r", "0", "-a"], capture_output=True, text=True, check=False, timeout=30)
    assert atr.returncode == 0, atr.stderr
    assert atr.stdout.strip().upper() == ":".join(f"{b:02X}" for b in card.atr)
    sent = subprocess.run(["opensc-tool", "-r", "0", "-c", "default", "-s", "00:84:00:00:04"],
                          capture_output=True, text=True, check=False, timeout=30)
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


class PullCard:
    """A pyscard observer that pulls the card (``action``) right after the
    card answered INITIALIZE FOR PURCHASE — i.e. between INITIALIZE and DEBIT."""

    def __init__(self, action):
        from smartcard.CardConnectionObserver import CardConnectionObserver

        observer = self

        class Observer(CardConnectionObserver):
            def update(self, observable, event):
                observer.update(event)

        self.observer = Observer()
        self.action = action
        self.command = None

    def update(self, event):
        if event.type == "command":
            self.command = list(event.args[0])
        elif event.type == "response" and self.action and self.command[:3] == [0x80, 0x50, 0x01]:
            action, self.action = self.action, None
            action()


@pytest.mark.parametrize("when", ["before DEBIT", "during DEBIT"])
def test_card_removed_between_initialize_and_debit_is_recovered_with_the_proof(vpcd, pcscd, tmp_path, when):
    slot = vpcd.serve(Card.open(purse_image(tmp_path / "card.json"))).slots[0]
    connection = vpcd.connect(READER0)
    tx.select_application(connection)
    tx.load(connection, LoadHost(issuer_keys()), 1000, terminal=HOST_TERMINAL)
    psam = PSAM(issuer_keys(), POS_TERMINAL)
    if when == "before DEBIT":  # pulled out: DEBIT never reaches the card
        pull = PullCard(lambda: (slot.remove(), pcscd.wait_card(READER0, present=False)))
    else:                       # pulled while answering DEBIT: executed, but the answer is lost
        pull = PullCard(slot.tear)
    connection.addObserver(pull.observer)
    with pytest.raises(tx.TornTransaction) as torn:
        tx.purchase(connection, psam, 300)
    connection.deleteObserver(pull.observer)
    pending = torn.value.pending
    assert (pending.type, pending.counter, pending.amount, pending.balance_before) == (0x06, 0, 300, 1000)

    pcscd.wait_card(READER0, present=False)
    slot.insert()
    pcscd.wait_card(READER0, present=True)
    connection.reconnect()
    record = tx.recover(connection, pending, verifier=psam)  # GET TRANSACTION PROOF
    if when == "before DEBIT":
        assert record is None and tx.get_balance(connection) == 1000
        again = tx.purchase(connection, psam, 300)           # the terminal starts over
        assert (again.counter, again.balance) == (0, 700)
    else:
        assert (record.counter, record.amount, record.balance) == (0, 300, 700)
        assert psam.verify_tac(record)
        assert tx.get_balance(connection) == 700


def test_card_comes_back_after_pcscd_restarts(vpcd, pcscd):
    server = vpcd.serve(Card.blank())
    pcscd.restart()
    pcscd.wait_card(READER0, present=True, timeout=10)
    connection = vpcd.connect(READER0)
    assert connection.transmit([0x00, 0x84, 0x00, 0x00, 0x04])[1:] == (0x90, 0x00)
    connection.disconnect()
    assert server.slots[0].insertions >= 2
