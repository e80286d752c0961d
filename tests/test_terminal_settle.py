"""Settlement check: a load, a purchase and a CAPP purchase through cardos.terminal on a
personalized card are accepted; every record with one changed byte is rejected."""
import json

import pytest

from cardos.cli import main
from cardos.terminal import purse as tx
from cardos.terminal.host import LoadHost
from cardos.terminal.keys import IssuerKeys
from cardos.terminal.psam import PSAM
from cardos.terminal.settle import parse_records, settle, write_records

from .conftest import hx
from .test_terminal_transactions import HOST_TERM, MASTERS, POS_TERM, WHEN, personalized

TAC_COVERED = {  # fields whose every byte the TAC covers, per record kind
    "load": ("amount", "balance", "counter", "terminal", "date", "time", "tac", "serial", "type"),
    "debit": ("amount", "terminal", "tsn", "date", "time", "tac", "serial", "type"),
}


@pytest.fixture(scope="module")
def records():
    card = personalized()
    tx.select_application(card)
    card.transmit(hx("00E200D007 AA05 0000000000"))
    psam = PSAM(MASTERS, POS_TERM, tsn=7)
    return [tx.load(card, LoadHost(MASTERS), 10000, terminal=HOST_TERM, when=WHEN),
            tx.purchase(card, psam, 350, when=WHEN),
            tx.capp_purchase(card, psam, 200, [tx.CappUpdate(0x1A, 0xAA, hx("AA05 0120260505"))], when=WHEN)]


def _flip(value):
    """``value`` with one byte changed (hex string or integer field)."""
    if isinstance(value, int):
        return value ^ 0x01
    raw = bytearray(bytes.fromhex(value))
    raw[-1] ^= 0x01
    return raw.hex().upper()


def test_the_batch_is_accepted_as_jsonl_and_csv(records):
    for fmt in ("jsonl", "csv"):
        report = settle(write_records(records, fmt), MASTERS)
        assert report.ok and [line for line, _ in report.accepted] == ([1, 2, 3] if fmt == "jsonl" else [2, 3, 4])
        assert report.total() == 350 + 200 - 10000
        assert report.lines() == ["3 accepted, 0 rejected"]


@pytest.mark.parametrize("index, kind", [(0, "load"), (1, "debit"), (2, "debit")])
def test_one_changed_byte_in_any_covered_field_is_rejected(records, index, kind):
    for name in TAC_COVERED[kind]:
        rows = [r.to_dict() for r in records]
        rows[index][name] = _flip(rows[index][name]) if name != "type" else ("06" if rows[index]["type"] != "06" else "05")
        report = settle(rows, MASTERS)
        assert [r.line for r in report.rejected] == [index + 1], name
        assert "TAC does not match" in report.rejected[0].reason or "malformed" in report.rejected[0].reason
        assert len(report.accepted) == 2


def test_fields_outside_a_debit_tac_are_not_covered(records):
    """Documented limit: a debit's TAC covers neither the card counter nor the balance."""
    rows = [r.to_dict() for r in records]
    rows[1]["counter"] += 1
    rows[1]["balance"] += 1
    assert settle(rows, MASTERS).ok


def test_replayed_and_unreadable_records_are_rejected(records):
    text = write_records(records)
    lines = text.splitlines()
    batch = "\n".join([lines[0], lines[1], lines[1], "{not json", json.dumps({"serial": "31"}), "# comment", ""])
    report = settle(batch, MASTERS)
    assert [r.line for r in report.rejected] == [3, 4, 5]
    assert "duplicate of line 2" in report.rejected[0].reason
    assert "unreadable" in report.rejected[1].reason
    assert "malformed" in report.rejected[2].reason
    assert len(report.accepted) == 2


def test_other_issuer_keys_reject_everything(records):
    other = IssuerKeys(tac=hx("00" * 15 + "01"))
    report = settle(records, other)
    assert not report.accepted and len(report.rejected) == 3
    report = settle(records, IssuerKeys(load=hx("00" * 16)))  # no TAC key at all
    assert all("cannot check the TAC" in r.reason for r in report.rejected)


def test_csv_with_an_unknown_column_is_reported():
    rows = parse_records("serial,type,colour\n31,06,red\n")
    assert rows == [(1, ("CSV header: unknown column(s) colour (columns: serial, type, counter, amount, balance, "
                         "overdraw_limit, terminal, tsn, date, time, tac, mac)"))]


def test_cli_settle(records, tmp_path, capsys):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(MASTERS.to_dict()))
    good = tmp_path / "batch.jsonl"
    good.write_text(write_records(records))
    assert main(["settle", str(good), "--keys", str(keys)]) == 0
    assert capsys.readouterr().out == "3 accepted, 0 rejected\n"
    bad = tmp_path / "batch.csv"
    bad.write_text(write_records(records, "csv").replace(",350,", ",351,"))
    assert main(["settle", str(bad), "--keys", str(keys)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("line 3: REJECTED: TAC does not match") and out[-1] == "2 accepted, 1 rejected"
    assert main(["settle", str(tmp_path / "missing"), "--keys", str(keys)]) == 2
    assert "missing: no such record file" in capsys.readouterr().err
    keys.write_text("{}")
    assert main(["settle", str(good), "--keys", str(keys)]) == 2
    assert "keys" in capsys.readouterr().err


def test_cli_settle_with_a_keyset_file(records, tmp_path, capsys):
    keyset = pytest.importorskip("cardos.keyset")
    ks = keyset.KeySet({role: {1: MASTERS.master(role)} for role in ("load", "purchase", "tac")}, test=True)
    path = tmp_path / "issuer.keys"
    ks.save(path)
    batch = tmp_path / "batch.jsonl"
    batch.write_text(write_records(records))
    assert main(["settle", str(batch), "--keys", str(path)]) == 0
    assert capsys.readouterr().out == "3 accepted, 0 rejected\n"
