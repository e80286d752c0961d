"""Two terminals sharing a served card without SCardBeginTransaction (issue 23, "Shared cards").

The card (the sample issuance, EP loaded with 1.00) sits in a vpcd slot; the test plays
vpcd (the fake peer of test_vpcd_protocol) and sends the command stream pcscd would pass
on from two clients: real INITIALIZE / GET RESPONSE / DEBIT APDUs with real MACs. The card
is unchanged — the interleaved DEBIT's MAC fails and counts — but ``serve`` now says so in
a warning pointing at SCardBeginTransaction; a clean transaction, a CAPP purchase and a
power cycle between INITIALIZE and DEBIT say nothing.
"""
from __future__ import annotations

import logging
import time

import pytest

from cardos.apdu import build
from cardos.sample import SampleKeys
from cardos.transports.vpcd import Slot

from .conftest import hx
from .purse_util import SELECT_ADF, mac, sample_card, session_key
from .test_vpcd_protocol import FakeVpcd

K = SampleKeys()
TERM = "112233445566"
STAMP = "20260501 083000"
WATCH = "cardos.transports.shared_card"
POWER_OFF, POWER_ON, GET_ATR = b"\x00", b"\x01", b"\x04"


@pytest.fixture
def served(caplog):
    """(card, terminal for direct set-up, fake vpcd) with the card served in a slot; EP holds 1.00."""
    card, t, _ = sample_card()
    t.randoms.push("11223344")
    t.ok(f"805000020B0100000064{TERM}10")
    sk = session_key(K.load, "11223344 0000 8000")
    t.ok(f"805200000B{STAMP}{mac(sk, f'00000064 02 {TERM} {STAMP}').hex()}04")
    fake = FakeVpcd()
    slot = Slot(card, "127.0.0.1", fake.port).start()
    fake.accept()
    fake.send(POWER_ON)
    assert ask(fake, SELECT_ADF)[-2:] == b"\x90\x00"
    caplog.set_level(logging.WARNING, logger=WATCH)
    yield card, t, fake
    slot.stop()
    fake.close()


def ask(fake, apdu: str) -> bytes:
    """One command as a T=0 terminal sends it: 61XX fetched with GET RESPONSE."""
    response = fake.ask(hx(apdu))
    if response[-2] == 0x61:
        response = fake.ask(bytes((0x00, 0xC0, 0x00, 0x00, response[-1])))
    return response


def initialize(fake, t, random: str, p1: str = "01", amount: str = "00000010") -> bytes:
    t.randoms.push(random)  # the card's random for this INITIALIZE
    le = "10" if p1 in ("00", "05") else "0F"  # load and unload answer 16 bytes, the others 15
    return ask(fake, f"8050{p1}020B01{amount}{TERM}{le}")


def debit(random: str, counter: str, tx_type: str = "06", amount: str = "00000010", tsn: str = "0000002A") -> str:
    sk = session_key(K.purchase, f"{random}{counter}{tsn[4:]}")
    return f"805401000F{tsn}{STAMP}{mac(sk, f'{amount}{tx_type}{TERM}{STAMP}').hex()}08"


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == WATCH and r.levelno == logging.WARNING]


def test_a_transaction_held_alone_says_nothing(served, caplog):
    _, t, fake = served
    assert initialize(fake, t, "C0FFEE01")[-2:] == b"\x90\x00"
    assert ask(fake, debit("C0FFEE01", "0000"))[-2:] == b"\x90\x00"
    assert warnings(caplog) == []


def test_interleaved_purchases_are_reported_and_point_at_scard_begin_transaction(served, caplog):
    card, t, fake = served
    initialize(fake, t, "AAAAAAAA")                         # terminal A
    initialize(fake, t, "BBBBBBBB")                         # terminal B, in between
    answer_a = ask(fake, debit("AAAAAAAA", "0000"))        # A's MAC meets B's session
    assert answer_a[-2:] == b"\x93\x02"                     # the card counts a MAC failure, as before
    ask(fake, debit("BBBBBBBB", "0000"))                    # B's DEBIT: its session is gone
    first, second = warnings(caplog)
    assert first == ("127.0.0.1:%d: INITIALIZE FOR PURCHASE (EP) came before the INITIALIZE FOR PURCHASE (EP) "
                     "was completed, so the card dropped that transaction; two PC/SC clients sharing the card? "
                     "each terminal must hold SCardBeginTransaction from the INITIALIZE to its completion "
                     "(docs/pcsc.md)" % fake.port)
    assert second.startswith(f"127.0.0.1:{fake.port}: DEBIT FOR PURCHASE without its INITIALIZE just before it; ")
    assert "SCardBeginTransaction" in second


def test_another_command_between_initialize_and_debit_is_named(served, caplog):
    _, t, fake = served
    assert initialize(fake, t, "C0FFEE02", p1="00", amount="00000001")[-2:] == b"\x90\x00"  # FOR LOAD
    ask(fake, "00B0950000")                                         # another client reads the card
    (warning,) = warnings(caplog)
    assert warning.startswith(f"127.0.0.1:{fake.port}: READ BINARY (SFI 15) came before the INITIALIZE FOR LOAD (EP)"
                              " was completed")


def test_capp_update_and_power_cycles_are_not_interruptions(served, caplog):
    _, t, fake = served
    t.ok(build(0x00, 0xE2, 0x00, 0xD0, hx("AA 29 00") + bytes(40)))  # a composite record with tag AA
    initialize(fake, t, "C0FFEE01", p1="03")                            # INITIALIZE FOR CAPP PURCHASE
    new = hx("AA 29 00") + bytes(range(1, 41))
    assert ask(fake, build(0x80, 0xDC, 0xAA, 0xD0, new).hex())[-2:] == b"\x90\x00"  # UPDATE CAPP DATA CACHE
    assert ask(fake, debit("C0FFEE01", "0000", tx_type="09"))[-2:] == b"\x90\x00"
    initialize(fake, t, "C0FFEE03")
    fake.send(POWER_OFF)
    fake.send(POWER_ON)
    assert fake.ask(GET_ATR)                                             # the slot has handled both
    ask(fake, SELECT_ADF)
    assert warnings(caplog) == []


# -- through a real pcscd: two pyscard connections to one served card -------------------------------

def _served_purse(serve_process, pcscd, vpcd, tmp_path):
    from .pcsc_fixtures import FIRST_PORT, purse_image, reader_name

    reader = reader_name(FIRST_PORT)
    served = serve_process(str(purse_image(tmp_path / "purse.card")))
    pcscd.wait_card(reader, present=True)
    a, b = vpcd.connect(reader), vpcd.connect(reader)  # SCARD_SHARE_SHARED, as pyscard connects
    return served, a, b


def test_two_pcsc_clients_interleaving_a_purchase_get_a_warning_in_serve(serve_process, pcscd, vpcd, tmp_path):
    from cardos.terminal import purse as tx
    from cardos.terminal.host import LoadHost
    from cardos.terminal.psam import PSAM
    from cardos.transports.pyscard_reader import transmit_function

    from .pcsc_fixtures import HOST_TERMINAL, POS_TERMINAL, issuer_keys

    served, a, b = _served_purse(serve_process, pcscd, vpcd, tmp_path)
    tx.select_application(a)
    tx.load(a, LoadHost(issuer_keys()), 1000, terminal=HOST_TERMINAL)
    send_a, send_b = transmit_function(a), transmit_function(b)

    def terminal_a(apdu: bytes) -> bytes:
        """Terminal A's channel; once A has its INITIALIZE data, terminal B starts its own purchase."""
        response = send_a(apdu)
        if (apdu[:2] == b"\x80\x50" and response[-2] != 0x61) or apdu[:2] == b"\x00\xC0":
            tx.send(send_b, bytes.fromhex("805001020B0100000001" + "0000000000B2") + b"\x0F")
        return response

    with pytest.raises(tx.TransactionError) as failed:
        tx.purchase(terminal_a, PSAM(issuer_keys(), POS_TERMINAL), 100)
    assert failed.value.sw == 0x9302  # A's MAC met B's session: counted as a MAC failure, as the issue found
    deadline = time.monotonic() + 5
    while "SCardBeginTransaction" not in served.stderr_text():
        assert time.monotonic() < deadline, served.stderr_text()
        time.sleep(0.05)
    assert ("INITIALIZE FOR PURCHASE (EP) came before the INITIALIZE FOR PURCHASE (EP) was completed"
            in served.stderr_text())


def test_clients_holding_scard_transactions_take_turns_without_a_warning(serve_process, pcscd, vpcd, tmp_path):
    """What docs/pcsc.md tells terminal developers: each terminal holds SCardBeginTransaction from
    its INITIALIZE to its DEBIT; the other waits, and both purchases succeed."""
    import threading

    from smartcard.scard import SCARD_LEAVE_CARD, SCARD_S_SUCCESS, SCardBeginTransaction, SCardEndTransaction

    from cardos.terminal import purse as tx
    from cardos.terminal.host import LoadHost
    from cardos.terminal.psam import PSAM

    from .pcsc_fixtures import HOST_TERMINAL, POS_TERMINAL, issuer_keys

    served, a, b = _served_purse(serve_process, pcscd, vpcd, tmp_path)
    tx.select_application(a)
    tx.load(a, LoadHost(issuer_keys()), 1000, terminal=HOST_TERMINAL)
    records, started = {}, threading.Event()

    def terminal(name: str, connection, terminal_id: bytes) -> None:
        hcard = connection.component.hcard
        assert SCardBeginTransaction(hcard) == SCARD_S_SUCCESS  # waits while the other holds the card
        started.set()
        try:
            tx.select_application(connection)
            records[name] = [tx.purchase(connection, PSAM(issuer_keys(), terminal_id), 100) for _ in range(3)]
        finally:
            SCardEndTransaction(hcard, SCARD_LEAVE_CARD)

    first = threading.Thread(target=terminal, args=("a", a, POS_TERMINAL))
    first.start()
    started.wait(10)
    second = threading.Thread(target=terminal, args=("b", b, bytes.fromhex("0000000000B2")))
    second.start()
    first.join(30)
    second.join(30)
    assert [r.balance for r in records["a"] + records["b"]] == [900, 800, 700, 600, 500, 400]
    assert "SCardBeginTransaction" not in served.stderr_text()
