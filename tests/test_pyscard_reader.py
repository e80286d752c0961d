"""The in-process pyscard reader: unchanged pyscard code against an emulated card, no pcscd."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("smartcard")

from smartcard import scard
from smartcard.CardConnection import CardConnection
from smartcard.CardConnectionDecorator import CardConnectionDecorator
from smartcard.CardConnectionObserver import ConsoleCardConnectionObserver
from smartcard.Exceptions import (
    CardConnectionException,
    NoCardException,
    SmartcardException,
)
from smartcard.reader.ReaderFactory import ReaderFactory
from smartcard.sw.ErrorCheckingChain import ErrorCheckingChain
from smartcard.sw.ISO7816_4ErrorChecker import ISO7816_4ErrorChecker
from smartcard.sw.SWExceptions import CheckingErrorException
from smartcard.System import readers

from cardos import Card
from cardos.sample import issue_sample
from cardos.terminal import purse as tx
from cardos.terminal.host import LoadHost
from cardos.terminal.psam import PSAM
from cardos.transports.pyscard_reader import (
    EmulatedReader,
    emulated_reader,
    register,
    transmit_function,
    unregister,
)

from .pcsc_fixtures import (
    HOST_TERMINAL,
    POS_TERMINAL,
    PURSE_SERIAL,
    ROOT,
    issuer_keys,
    purse_sample,
)

SELECT_MF = [0x00, 0xA4, 0x00, 0x00, 0x02, 0x3F, 0x00]
CHALLENGE = [0x00, 0x84, 0x00, 0x00, 0x04]


@pytest.fixture
def no_pcsc(monkeypatch):
    """Fail the test if anything reaches PC/SC (pcscd or libpcsclite)."""
    import smartcard.pcsc.PCSCCardConnection as pcsc_connection
    import smartcard.pcsc.PCSCReader as pcsc_reader

    def forbidden(*args):
        raise AssertionError("PC/SC was called")
    for module in (scard, pcsc_reader, pcsc_connection):
        monkeypatch.setattr(module, "SCardEstablishContext", forbidden)


@pytest.fixture
def reader(no_pcsc):
    with emulated_reader(Card.blank()) as r:
        yield r


def connect(name="cardos Emulated Reader 0"):
    (r,) = [r for r in readers() if str(r) == name]
    connection = r.createConnection()
    connection.connect()
    return connection


def test_load_purchase_and_capp_purchase_through_the_in_process_reader(no_pcsc):
    """The same transactions as through pcscd (tests/test_vpcd.py), with no pcscd at all."""
    card = Card.blank()
    with emulated_reader(card):
        connection = connect()
        transmit = transmit_function(connection)
        issue_sample(transmit, purse_sample())
        assert tx.select_application(connection) == PURSE_SERIAL
        assert transmit(bytes.fromhex("00E200D007AA050000000000")) == b"\x90\x00"
        host, psam = LoadHost(issuer_keys()), PSAM(issuer_keys(), POS_TERMINAL)
        r1 = tx.load(connection, host, 10000, terminal=HOST_TERMINAL)
        r2 = tx.purchase(connection, psam, 250)
        r3 = tx.capp_purchase(connection, psam, 150, [tx.CappUpdate(0x1A, 0xAA, bytes.fromhex("AA0501202605 05"))])
        assert [(r.type, r.counter, r.balance) for r in (r1, r2, r3)] == [(0x02, 0, 10000), (0x06, 0, 9750),
                                                                          (0x09, 1, 9600)]
        assert all(host.verify_tac(r) for r in (r1, r2, r3))
        assert tx.get_balance(connection) == 9600
        connection.disconnect()
    assert not card.powered


def test_replace_mode_lists_only_emulated_readers_and_restores_the_factories(no_pcsc):
    before = list(ReaderFactory.factorymethods)
    a = register(Card.blank())
    b = register(Card.blank(), "second")
    assert [str(r) for r in readers()] == ["cardos Emulated Reader 0", "second"]
    assert register(Card.blank()).name == "cardos Emulated Reader 1"
    unregister(a)
    assert "cardos Emulated Reader 0" not in [str(r) for r in readers()]
    unregister()
    assert ReaderFactory.factorymethods == before
    with pytest.raises(ValueError):
        register(b, mode="prepend")


def test_append_mode_without_pcscd_lists_just_the_emulated_reader(tmp_path):
    """A fresh interpreter where pcscd cannot be reached (its socket does not exist)."""
    code = textwrap.dedent("""
        from smartcard.System import readers
        from smartcard.pcsc.PCSCExceptions import EstablishContextException
        from cardos import Card
        from cardos.transports.pyscard_reader import register
        try:
            readers()
            raise SystemExit("pcscd reachable")
        except EstablishContextException:
            pass
        register(Card.blank(), mode="append")
        print([str(r) for r in readers()])
        connection = readers()[0].createConnection()
        connection.connect()
        print(connection.transmit([0x00, 0x84, 0x00, 0x00, 0x04])[1:])
    """)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
                         env={**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "none.comm")})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines() == ["['cardos Emulated Reader 0']", "(144, 0)"]


def test_observers_see_every_apdu(reader, capsys):
    connection = reader.createConnection()
    connection.addObserver(ConsoleCardConnectionObserver())
    connection.connect()
    connection.transmit(SELECT_MF)
    connection.disconnect()
    assert capsys.readouterr().out.splitlines() == [
        "connecting to cardos Emulated Reader 0", "> 00 A4 00 00 02 3F 00", "<  [] 61 17",
        "disconnecting from cardos Emulated Reader 0"]


def test_error_checking_chain(reader):
    connection = connect()
    chain: list = []
    chain = [ErrorCheckingChain(chain, ISO7816_4ErrorChecker())]
    connection.setErrorCheckingChain(chain)
    with pytest.raises(CheckingErrorException, match="File not found"):
        connection.transmit([0x00, 0xA4, 0x00, 0x00, 0x02, 0x12, 0x34])


def test_a_decorator_subclass_runs_unchanged(reader):
    class AutoGetResponse(CardConnectionDecorator):
        def transmit(self, command, protocol=None):
            data, sw1, sw2 = CardConnectionDecorator.transmit(self, command, protocol)
            if sw1 == 0x61:
                return CardConnectionDecorator.transmit(self, [0x00, 0xC0, 0x00, 0x00, sw2], protocol)
            return data, sw1, sw2

    connection = AutoGetResponse(reader.createConnection())
    connection.connect()
    data, sw1, sw2 = connection.transmit(SELECT_MF)
    assert (sw1, sw2) == (0x90, 0x00) and data[:2] == [0x6F, 0x15]


def test_session_and_context_manager(reader):
    from smartcard.Session import Session

    session = Session("cardos Emulated Reader 0")
    assert session.sendCommandAPDU(CHALLENGE)[1:] == (0x90, 0x00)
    session.close()
    with reader.createConnection() as connection:
        connection.connect()
        assert connection.getATR() == list(reader.card.atr)
    assert not reader.card.powered


def test_protocol_atr_attributes_and_control(reader):
    connection = reader.createConnection()
    connection.connect()
    assert connection.getProtocol() == CardConnection.T1_protocol
    assert connection.getReader() == "cardos Emulated Reader 0"
    assert connection.getAttrib(scard.SCARD_ATTR_ATR_STRING) == list(reader.card.atr)
    with pytest.raises(SmartcardException):
        connection.control(0x42000001)
    t0 = reader.createConnection()
    t0.connect(CardConnection.T0_protocol)
    assert t0.getProtocol() == CardConnection.T0_protocol
    with pytest.raises(CardConnectionException):
        reader.createConnection().connect(CardConnection.RAW_protocol)


def test_dispositions(reader):
    card = reader.card
    connection = reader.createConnection()
    connection.connect(disposition=scard.SCARD_LEAVE_CARD)
    connection.transmit(CHALLENGE)
    connection.disconnect()
    assert card.powered                                   # left powered
    connection.connect()
    connection.transmit(SELECT_MF)
    connection.reconnect(disposition=scard.SCARD_LEAVE_CARD)
    assert connection.transmit([0x00, 0xC0, 0x00, 0x00, 0x17])[1:] == (0x90, 0x00)  # state kept
    connection.reconnect()                                # default: reset
    assert connection.transmit([0x00, 0xC0, 0x00, 0x00, 0x17])[1:] == (0x69, 0x85)
    connection.disconnect()                               # the disposition of the last (re)connect: reset
    assert card.powered
    connection.connect()
    connection.disconnect()                               # default: unpower
    assert not card.powered


def test_card_removed_and_reinserted(reader):
    connection = connect()
    reader.remove()
    assert not reader.card.powered
    with pytest.raises(CardConnectionException) as error:
        connection.transmit(CHALLENGE)
    assert error.value.hresult == scard.SCARD_W_REMOVED_CARD
    with pytest.raises(NoCardException):
        reader.createConnection().connect()
    with pytest.raises(NoCardException):
        connection.reconnect()
    reader.insert()
    connection.reconnect()
    assert connection.transmit(CHALLENGE)[1:] == (0x90, 0x00)
    other = Card.blank()
    reader.insert(other)
    with pytest.raises(CardConnectionException):
        connection.transmit(CHALLENGE)
    connection.reconnect()
    assert connection.component.card is other


def test_a_mute_card_fails_the_transmit(reader):
    from cardos.sample import issue_sample as issue

    connection = connect()
    issue(transmit_function(connection))
    connection.transmit(list(bytes.fromhex("00A4040009A0000000038698070100")))
    reader.card.arm_power_cut(1)
    with pytest.raises(CardConnectionException) as error:
        connection.transmit(list(bytes.fromhex("0020000003999999")))
    assert error.value.hresult == scard.SCARD_E_NOT_TRANSACTED


def test_reader_factory_create_reader(reader):
    assert ReaderFactory.createReader("cardos.transports.pyscard_reader.EmulatedReader",
                                      "cardos Emulated Reader 0") is reader
    assert isinstance(EmulatedReader.Factory.create("unknown"), EmulatedReader)


def test_an_empty_reader():
    with emulated_reader(None, "empty") as empty:
        assert [str(r) for r in readers()] == ["empty"]
        with pytest.raises(NoCardException):
            empty.createConnection().connect()
        with pytest.raises(ValueError):
            empty.insert()
