"""The terminal side against a personalized card: load host, PSAM, every transaction function,
diversified keys, verification failures and recovery of torn transactions."""
from datetime import datetime

import pytest

from cardos import Card
from cardos.sample import SampleCard, SampleKeys, issue_sample
from cardos.terminal import purse as tx
from cardos.terminal.host import HostError, LoadHost
from cardos.terminal.keys import IssuerKeys
from cardos.terminal.psam import PSAM
from cardos.terminal.records import TransactionRecord
from cardos.terminal.settle import settle

from .conftest import hx

MASTERS = IssuerKeys(load=hx("0F1E2D3C4B5A69788796A5B4C3D2E1F0"), purchase=hx("00112233445566778899AABBCCDDEEFF"),
                     unload=hx("FEDCBA98765432100123456789ABCDEF"), overdraw=hx("13579BDF02468ACE0123456789ABCDEF"),
                     tac=hx("2468ACE013579BDFFEDCBA9876543210"))
SERIAL = hx("3100000000000001")
HOST_TERM = hx("000000000001")
POS_TERM = hx("123456789012")
WHEN = datetime(2026, 5, 5, 7, 45, 12)


def personalized(masters=MASTERS) -> Card:
    """The sample issuance with the card's keys diversified from ``masters`` by the serial."""
    keys = SampleKeys(**{role: masters.card_key(role, 1, SERIAL) for role in ("load", "purchase", "unload",
                                                                              "overdraw", "tac")})
    card = Card.blank()
    issue_sample(card.transmit, SampleCard(serial=SERIAL, keys=keys))
    card.power_on()
    return card


@pytest.fixture
def card():
    card = personalized()
    assert tx.select_application(card) == SERIAL
    return card


def test_diversified_card_keys_differ_from_the_masters():
    assert MASTERS.card_key("tac", None, SERIAL) == MASTERS.algorithm.diversify(MASTERS.master("tac"), SERIAL)
    assert MASTERS.card_key("tac", None, SERIAL) != MASTERS.master("tac")
    assert MASTERS.card_key("tac", None, hx("3100000000000002")) != MASTERS.card_key("tac", None, SERIAL)


def test_load_purchase_and_capp_purchase(card):
    host, psam = LoadHost(MASTERS), PSAM(MASTERS, POS_TERM, tsn=0x100)
    r1 = tx.load(card, host, 10000, terminal=HOST_TERM, when=WHEN)
    assert (r1.type, r1.counter, r1.amount, r1.balance, r1.terminal) == (0x02, 0, 10000, 10000, HOST_TERM)
    assert (r1.serial, r1.date, r1.time) == (SERIAL, hx("20260505"), hx("074512"))
    r2 = tx.purchase(card, psam, 250, when=WHEN)
    assert (r2.type, r2.counter, r2.balance, r2.terminal, r2.tsn) == (0x06, 0, 9750, POS_TERM, hx("00000100"))
    assert card.transmit(hx("00E200D007 AA05 0000000000")) == hx("9000")  # a composite record (tag AA)
    r3 = tx.capp_purchase(card, psam, 150, [tx.CappUpdate(0x1A, 0xAA, hx("AA 05 01 20 26 05 05"))], when=WHEN)
    assert (r3.type, r3.counter, r3.balance, r3.tsn) == (0x09, 1, 9600, hx("00000101"))
    assert tx.get_balance(card) == 9600
    assert card.transmit(hx("00B201D400")) == hx("AA 05 01 20 26 05 05 9000")
    for record in (r1, r2, r3):
        assert host.verify_tac(record) and psam.verify_tac(record)
    assert settle([r1, r2, r3], MASTERS).ok


def test_ed_transactions(card):
    host, psam = LoadHost(MASTERS), PSAM(MASTERS, POS_TERM)
    tx.verify_pin(card, hx("123456"))
    records = [tx.load(card, host, 5000, terminal=HOST_TERM, purse=tx.ED, when=WHEN),
               tx.update_overdraw_limit(card, host, 2000, terminal=HOST_TERM, when=WHEN),
               tx.purchase(card, psam, 6000, purse=tx.ED, when=WHEN),
               tx.cash_withdraw(card, psam, 500, when=WHEN),
               tx.unload(card, host, 300, terminal=HOST_TERM, when=WHEN)]
    assert [(r.type, r.counter, r.balance) for r in records] == [
        (0x01, 0, 5000), (0x07, 1, 7000), (0x05, 0, 1000), (0x04, 1, 500), (0x03, 2, 200)]
    assert records[1].overdraw_limit == 2000 and records[1].amount == 0
    assert tx.get_balance(card, tx.ED) == 200
    report = settle(records, MASTERS)
    assert report.ok and len(report.accepted) == 5


def test_host_refuses_a_card_with_other_keys():
    other = personalized(IssuerKeys(load=hx("99" * 16), purchase=hx("98" * 16), tac=hx("97" * 16),
                                    unload=hx("96" * 16), overdraw=hx("95" * 16)))
    tx.select_application(other)
    with pytest.raises(HostError, match="MAC1"):
        tx.load(other, LoadHost(MASTERS), 100, terminal=HOST_TERM, when=WHEN)
    assert tx.get_balance(other) == 0
    # the PSAM's MAC1 is wrong for this card: the card refuses the debit
    tx.load(other, LoadHost(IssuerKeys(load=hx("99" * 16), tac=hx("97" * 16))), 100, terminal=HOST_TERM, when=WHEN)
    with pytest.raises(tx.TransactionError) as err:
        tx.purchase(other, PSAM(MASTERS, POS_TERM), 10, when=WHEN)
    assert err.value.sw == 0x9302
    assert tx.get_balance(other) == 100


def test_a_tac_that_does_not_verify_is_reported_with_the_record(card):
    wrong_tac = IssuerKeys(load=MASTERS.master("load"), tac=hx("55" * 16))
    with pytest.raises(tx.VerificationError) as err:
        tx.load(card, LoadHost(wrong_tac), 100, terminal=HOST_TERM, when=WHEN)
    assert err.value.record.balance == 100  # the card did load: keep the record
    assert tx.get_balance(card) == 100


def test_errors_carry_the_status_word(card):
    with pytest.raises(tx.TransactionError) as err:
        tx.purchase(card, PSAM(MASTERS, POS_TERM), 1, when=WHEN)
    assert err.value.sw == 0x9401 and "INITIALIZE FOR PURCHASE" in str(err.value)
    with pytest.raises(tx.TransactionError) as err:
        tx.load(card, LoadHost(MASTERS), 1, terminal=HOST_TERM, purse=tx.ED, when=WHEN)
    assert err.value.sw == 0x6982  # ED without the PIN


def test_send_follows_61xx_and_6cxx(card):
    data, sw = tx.send(card, hx("805C000200"[:8]))  # no Le: 6104 then GET RESPONSE
    assert (data, sw) == (bytes(4), 0x9000)
    data, sw = tx.send(card, hx("805C000208"))  # wrong Le: 6C04, resent
    assert (data, sw) == (bytes(4), 0x9000)


class Cutting:
    """A reader whose card loses power at ``point`` during the first command with INS ``ins``."""

    def __init__(self, card: Card, ins: int, point: int | None = None):
        self.card, self.ins, self.point = card, ins, point

    def transmit(self, apdu: bytes) -> bytes:
        if apdu[1] == self.ins and self.point is not None:
            point, self.point = self.point, None
            self.card.arm_power_cut(point)
        return self.card.transmit(apdu)


def _torn_load(point):
    """A card with one load done, and a second load of 300 whose CREDIT loses power at ``point``
    (``None``: no cut). Returns (card, host, pending or None, write points of the CREDIT)."""
    host = LoadHost(MASTERS)
    card = personalized()
    tx.select_application(card)
    tx.load(card, host, 700, terminal=HOST_TERM, when=WHEN)
    try:
        tx.load(Cutting(card, 0x52, point), host, 300, terminal=HOST_TERM, when=WHEN, serial=SERIAL)
    except tx.TornTransaction as err:
        return card, host, err.pending, None
    return card, host, None, card.last_write_points


@pytest.mark.parametrize("where", ["first write", "after commit"])
def test_torn_load_is_recovered_through_the_proof(where):
    points = _torn_load(None)[3]
    card, host, pending, _ = _torn_load(1 if where == "first write" else points)
    assert (pending.type, pending.counter, pending.amount) == (0x02, 1, 300)
    record = tx.recover(card, pending, verifier=host)
    if where == "first write":
        assert record is None and tx.get_balance(card) == 700
        again = tx.load(card, host, 300, terminal=HOST_TERM, when=WHEN)  # the terminal starts over
        assert again.counter == 1 and again.balance == 1000
    else:
        assert (record.counter, record.balance, record.amount) == (1, 1000, 300)
        assert tx.get_balance(card) == 1000
        assert settle([record], MASTERS).ok


def _torn_capp(point):
    psam = PSAM(MASTERS, POS_TERM)
    card = personalized()
    tx.select_application(card)
    tx.load(card, LoadHost(MASTERS), 1000, terminal=HOST_TERM, when=WHEN)
    card.transmit(hx("00E200D003BB0100"))
    update = [tx.CappUpdate(0x1A, 0xBB, hx("BB 01 55"))]
    try:
        tx.capp_purchase(Cutting(card, 0x54, point), psam, 120, update, when=WHEN, serial=SERIAL)
    except tx.TornTransaction as err:
        return card, psam, err.pending, None
    return card, psam, None, card.last_write_points


@pytest.mark.parametrize("where", ["first write", "after commit"])
def test_torn_capp_purchase_is_recovered_through_the_proof(where):
    points = _torn_capp(None)[3]
    card, psam, pending, _ = _torn_capp(1 if where == "first write" else points)
    record = tx.recover(card, pending, verifier=psam)
    if where == "first write":
        assert record is None and tx.get_balance(card) == 1000
        assert card.transmit(hx("00B201D400")) == hx("BB 01 00 9000")
    else:
        assert (record.type, record.balance, record.tsn) == (0x09, 880, hx("00000000"))
        assert card.transmit(hx("00B201D400")) == hx("BB 01 55 9000")
        assert settle([record], MASTERS).ok


def test_a_transport_that_raises_is_a_torn_transaction(card):
    class Pulled:
        def transmit(self, apdu):
            if apdu[1] == 0x52:
                raise ConnectionError("card removed")
            return card.transmit(apdu)

    with pytest.raises(tx.TornTransaction):
        tx.load(Pulled(), LoadHost(MASTERS), 100, terminal=HOST_TERM, when=WHEN, serial=SERIAL)
    assert tx.recover(card, tx.PendingTransaction(SERIAL, 2, 2, 0, 100, 0, HOST_TERM, hx("20260505074512"))) is None


def test_a_transaction_record_round_trips_through_its_dict():
    record = TransactionRecord(SERIAL, 0x06, 3, 250, 9750, POS_TERM, hx("20260505"), hx("074512"), hx("01020304"),
                               tsn=hx("00000100"), mac=hx("0A0B0C0D"))
    assert TransactionRecord.from_dict(record.to_dict()) == record
    assert "EP purchase" in str(record) and "2.50" in str(record)


def test_keyset_files_feed_the_terminal(tmp_path):
    keyset = pytest.importorskip("cardos.keyset")
    ks = keyset.KeySet.generate(test=True)
    keys = SampleKeys(**{role: ks.card_key(role, 1, SERIAL) for role in ("load", "purchase", "unload", "overdraw")},
                      tac=ks.card_key("tac", None, SERIAL))
    card = Card.blank()
    issue_sample(card.transmit, SampleCard(serial=SERIAL, keys=keys))
    tx.select_application(card)
    records = [tx.load(card, LoadHost(ks), 500, terminal=HOST_TERM, when=WHEN),
               tx.purchase(card, PSAM(ks, POS_TERM), 20, when=WHEN)]
    assert settle(records, ks).ok


def test_demo_loads_and_spends():
    import io

    from cardos.demo import run_demo

    out = io.StringIO()
    assert run_demo(out=out) == 0
    text = out.getvalue()
    assert "EP load: card 3100000000000001 counter 0 amount 100.00 balance 100.00" in text
    assert "EP purchase: card 3100000000000001 counter 0 amount 12.50 balance 87.50" in text
    records = [line for line in text.splitlines() if line.startswith(("  EP load:", "  EP purchase:"))]
    assert len(records) == 2 and all(len(line.rsplit(" TAC ", 1)[1]) == 8 for line in records)
    assert text.rstrip().endswith("EP balance 87.50")


def test_through_a_pyscard_connection():
    pytest.importorskip("smartcard")
    from cardos.transports.pyscard_reader import emulated_reader

    card = personalized()
    with emulated_reader(card) as reader:
        connection = reader.createConnection()
        connection.connect()
        assert tx.select_application(connection) == SERIAL
        records = [tx.load(connection, LoadHost(MASTERS), 2000, terminal=HOST_TERM, when=WHEN),
                   tx.purchase(connection, PSAM(MASTERS, POS_TERM), 150, when=WHEN)]
        assert tx.get_balance(connection) == 1850
        connection.disconnect()
    assert settle(records, MASTERS).ok
