"""``cardos inspect IMAGE``: tree, rights in words, keys without values, purses, history — read-only."""
from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime

import pytest

from cardos import Card
from cardos.cli import main
from cardos.inspect import describe_card, load_card, right_words
from cardos.keyset import load as load_keyset
from cardos.terminal import purse as tx
from cardos.terminal.host import LoadHost
from cardos.terminal.psam import PSAM

WHEN = datetime(2026, 5, 1, 9, 30, 0)


@pytest.fixture
def used_card(tmp_path):
    """A city card issued with the shipped TEST key set, loaded 100.00 and used for 2.50 and 1.00."""
    path = tmp_path / "city.card"
    assert main(["issue", "--profile", "city", "--keys", "test", "--serial", "42", "--out", str(path)]) == 0
    card = Card.open(path)
    card.power_on()
    keys = load_keyset("test")
    tx.select_application(card)
    tx.load(card, LoadHost(keys), 10000, terminal=bytes.fromhex("000000000001"), when=WHEN)
    psam = PSAM(keys, bytes.fromhex("112233445566"))
    tx.purchase(card, psam, 250, when=WHEN)
    tx.purchase(card, psam, 100, when=WHEN)
    card.power_off()
    return path


def digest(path) -> tuple:
    return hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns


def test_text_shows_tree_keys_purses_history(used_card, capsys):
    before = digest(used_card)
    assert main(["inspect", str(used_card)]) == 0
    out = capsys.readouterr().out
    assert digest(used_card) == before, "inspect must not write the image"
    assert "\033[" not in out  # not a terminal: no colour
    # tree: FIDs, names, kinds, sizes, rights in words with the keys that grant them
    assert "3F00" in out and "1PAY.SYS.DDF01" in out and "A00000000386980701" in out
    assert "0015" in out and "binary" in out and "30 bytes" in out
    assert "cyclic records" in out and "3 of 10 × 23 bytes" in out
    assert "read F0 free" in out and "write EF never" in out
    assert "use F1 state ≥ 1 (ext-auth 00, PIN 00)" in out
    # keys: type, id, version, algorithm, counters
    assert "purchase (DPK)" in out and "version 01, alg id 00" in out and "tries 3/3, then state 1" in out
    # purses and the history table
    assert "96.50" in out and "EP" in out
    lines = [line for line in out.splitlines() if "EP purchase" in line]
    assert len(lines) == 2 and "1.00" in lines[0] and "2026-05-01" in lines[0] and "09:30:00" in lines[0]
    assert any("EP load" in line and "100.00" in line for line in out.splitlines())


def test_key_values_are_never_shown(used_card, capsys):
    card = load_card(str(used_card))
    from cardos.filesystem import KeyFile, walk

    values = [k.value.hex().upper() for node in walk(card.mf) if isinstance(node, KeyFile)
              for k in node.keys.values()]
    assert values
    assert main(["inspect", str(used_card)]) == 0
    assert main(["inspect", str(used_card), "--json"]) == 0
    out = capsys.readouterr().out
    for value in values:
        assert value not in out and value.lower() not in out


def test_json(used_card, capsys):
    assert main(["inspect", str(used_card), "--json"]) == 0
    model = json.loads(capsys.readouterr().out)
    ep = next(p for p in model["purses"] if p["purse"] == "EP")
    assert ep["balance"] == 9650 and ep["offline_counter"] == 2 and ep["online_counter"] == 1
    history = model["history"][0]
    assert history["sfi"] == "18" and [r["type"] for r in history["records"]] == ["06", "06", "02"]
    assert history["records"][0]["amount"] == 100
    adf = next(c for c in model["files"]["children"] if c["kind"] == "DF")
    assert adf["name"] == "A00000000386980701"
    assert {k["type_words"] for k in model["keys"]} >= {"PIN", "TAC (DTK)", "load (DLK)"}
    assert all("value" not in k for k in model["keys"])


def test_blank_card(tmp_path, capsys):
    path = tmp_path / "blank.card"
    assert main(["new", str(path)]) == 0
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3F00" in out and "Purses\n  none" in out


def test_bad_image_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "x.card"
    path.write_text("{}")
    assert main(["inspect", str(path)]) == 2
    assert "x.card" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.card")]) == 2


def test_works_on_a_card_being_served(used_card, capsys):
    """The image lock of `cardos serve` (any writer) does not stop inspect (it only reads)."""
    with Card.open(used_card):
        assert main(["inspect", str(used_card)]) == 0
    assert "96.50" in capsys.readouterr().out


def test_right_words():
    assert [right_words(r) for r in (0x00, 0xF0, 0xEF, 0xF1, 0x11, 0x31, 0x02, 0x1F)] == [
        "free", "free", "never", "state ≥ 1", "state 1", "state 1–3", "MF state ≥ 2", "never"]


def test_describe_card_of_an_in_memory_card():
    from cardos.sample import issue_sample

    card = Card.blank()
    issue_sample(card.transmit)
    model = describe_card(card)
    assert {p["purse"] for p in model["purses"]} == {"ED", "EP"}
