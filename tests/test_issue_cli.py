"""``cardos issue``: images are never left half-issued; saved scripts re-issue a card; errors are one line."""
from __future__ import annotations

import json
import re

import pytest

from cardos import Card
from cardos.cli import main
from cardos.keyset import KeySet, load
from cardos.terminal import purse as T
from cardos.terminal.host import LoadHost
from cardos.terminal.psam import PSAM

from .conftest import Terminal, hx

CITY_AID = hx("A00000000386980701")


@pytest.fixture
def keys(tmp_path):
    path = tmp_path / "issuer.json"
    KeySet.generate().save(path)
    return path


def test_issue_out_then_add_app_card(tmp_path, keys, capsys):
    out = tmp_path / "c.card"
    assert main(["issue", "--profile", "city", "--keys", str(keys), "--serial", "77", "--out", str(out),
                 "--param", "holder_name=王五"]) == 0
    text = capsys.readouterr().out
    assert "issued city" in text and "3100000000000077" in text
    card = Card.open(out)
    t = Terminal(card)
    assert t.ok(b"\x00\xA4\x04\x00\x09" + CITY_AID + b"\x00")
    assert t.ok("00B0960000")[2:6] == "王五".encode("gbk")
    card.close()
    assert main(["issue", "--add-app", "campus", "--keys", str(keys), "--card", str(out), "-v"]) == 0
    text = capsys.readouterr().out
    assert "external authentication with key 39/01" in text and "added campus" in text
    card = Card.open(out)
    ks = load(keys)
    T.select_application(card, hx("F0434152444F5343414D505553"))
    T.load(card, LoadHost(ks), 100, terminal=hx("000000000001"))
    T.purchase(card, PSAM(ks, hx("000000000001")), 10)


def test_out_refuses_an_existing_file_and_a_failed_card_image_is_unchanged(tmp_path, keys, capsys):
    out = tmp_path / "c.card"
    out.write_text("precious")
    assert main(["issue", "--profile", "city", "--keys", str(keys), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "precious"
    issued = tmp_path / "issued.card"
    assert main(["issue", "--profile", "city", "--keys", str(keys), "--out", str(issued)]) == 0
    before = issued.read_bytes()
    # issuing again onto it is refused before the transport key is tried (the card is not blank) ...
    assert main(["issue", "--profile", "city", "--keys", str(keys), "--card", str(issued)]) == 1
    err = capsys.readouterr().err
    assert "is not blank" in err and "--yes" in err
    # ... and with --yes fails at the transport key: the image stays as it was
    assert main(["issue", "--profile", "city", "--keys", str(keys), "--card", str(issued), "--yes"]) == 1
    err = capsys.readouterr().err
    assert "63C2" in err and "2 tries left" in err and "unchanged" in err
    assert issued.read_bytes() == before
    # --reissue: the card's MF master opens ERASE DF; the same serial, another profile
    assert main(["issue", "--profile", "interconnect", "--keys", str(keys), "--card", str(issued), "--reissue"]) == 0
    assert Terminal(Card.open(issued)).sw("00A4040009A0000000038698070100") == 0x6A82
    # a blank image from `cardos new` is issued in place
    blank = tmp_path / "blank.card"
    assert main(["new", str(blank)]) == 0
    assert main(["issue", "--profile", "interconnect", "--keys", str(keys), "--card", str(blank)]) == 0
    assert Terminal(Card.open(blank)).ok("00A4040008A00000063201010500")


@pytest.mark.parametrize("argv, code, message", [
    (["--profile", "nope"], 2, "no such profile file"),
    (["--profile", "campus"], 2, 'is "application"; use --add-app'),
    (["--add-app", "city", "--card", "x.card"], 2, 'is "card"; use --profile'),
    (["--add-app", "campus"], 2, "--add-app needs the issued card"),
    (["--profile", "city", "--serial", "x1"], 2, "parameters.serial: given value: expected a decimal integer"),
    (["--profile", "city", "--param", "colour"], 2, "write NAME=VALUE"),
    (["--profile", "city", "--param", "colour=red"], 2, "parameters.colour: no such parameter"),
    (["--profile", "city", "--reader", "no such reader 42"], 3, ""),
])
def test_usage_errors(tmp_path, keys, capsys, monkeypatch, argv, code, message):
    monkeypatch.chdir(tmp_path)
    assert main(["issue", "--keys", str(keys)] + argv) == code
    err = capsys.readouterr().err
    assert err.startswith("cardos: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_bad_key_set_file(tmp_path, capsys):
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"format": "cardos-keyset", "version": 1, "algorithm": "3DES",
                                "keys": {"load": {"1": "zz"}}}))
    path.chmod(0o600)
    assert main(["issue", "--profile", "city", "--keys", str(path)]) == 2
    assert f"{path}: keys.load.1: not valid hex" in capsys.readouterr().err


class _Quiet:
    def __init__(self):
        self.failures = []

    def check(self, event):
        if not event.ok:
            self.failures.append(event)

    def error(self, exc):
        self.failures.append(exc)

    def __getattr__(self, name):
        return lambda *a, **k: None


@pytest.mark.parametrize("profile", ["city", "multi"])
def test_saved_script_recomputes_macs_and_reissues_a_card(tmp_path, keys, capsys, profile):
    runner = pytest.importorskip("cardos.scripting.runner")
    from cardos.scripting.keysource import open_keys
    from cardos.scripting.parser import check, parse_file
    from cardos.scripting.transport import EmulatorTransport

    script = tmp_path / "issue.apdu"
    issued = tmp_path / "issued.card"
    assert main(["issue", "--profile", profile, "--keys", str(keys), "--serial", "5", "--out", str(issued),
                 "--save-script", str(script)]) == 0
    text = script.read_text()
    # no key value is in the script: masters, card keys and MACs are computed when it runs
    ks = load(keys)
    for by_index in ks.keys.values():
        for master in by_index.values():
            assert master.hex().upper() not in text
            assert ks.algorithm.diversify(master, hx("3100000000000005")).hex().upper() not in text
    assert re.search(r"^keys issuer\.json$", text, re.M)
    assert "protect encrypt card_key(@app_master.1, $serial_city) 84 D4 01" in text
    # run it on a fresh blank card: same card as `cardos issue` made
    parsed = parse_file(script)
    source = open_keys(parsed.keys[0], parsed.keys[2])
    check(parsed, source)
    card = Card.blank()
    reporter = _Quiet()
    result = runner.Runner(EmulatorTransport(card, "blank"), reporter).run_script(parsed, source)
    assert result.status == "passed", reporter.failures
    direct = Terminal(Card.open(issued))
    again = Terminal(card)
    for apdu in ("00A40000023F0000", "00B0850000", "00B2010C00", "00A4040009A0000000038698070100",
                 "00B0950000", "00B0960000", "00B201D400"):
        assert again.send(apdu) == direct.send(apdu), apdu
    T.select_application(card, CITY_AID)
    T.load(card, LoadHost(ks), 100, terminal=hx("000000000001"))


def test_issue_and_add_app_through_a_pyscard_reader(keys, capsys):
    """--reader goes through pyscard (here its in-process reader holding an emulated card)."""
    pyscard_reader = pytest.importorskip("cardos.transports.pyscard_reader")
    card = Card.blank()
    with pyscard_reader.emulated_reader(card, "cardos issue test reader"):
        assert main(["issue", "--profile", "multi", "--keys", str(keys), "--serial", "9",
                     "--reader", "issue test"]) == 0
        assert main(["issue", "--add-app", "campus", "--keys", str(keys), "--reader", "issue test"]) == 0
    out = capsys.readouterr().out
    assert "issued multi" in out and "the card in cardos issue test reader" in out and "added campus" in out
    ks = load(keys)
    for aid in (CITY_AID, hx("A000000632010105"), hx("F0434152444F5343414D505553")):
        assert T.select_application(card, aid) == hx("3100000000000009")
        T.load(card, LoadHost(ks), 100, terminal=hx("000000000001"))
