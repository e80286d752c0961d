"""The software PSAM keeps its terminal transaction serial (TSN) beside the key set: separate
processes and PSAM objects never reuse one, so `cardos settle` accepts two purchases made in
the same second (before, the second was rejected as a replayed upload)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from cardos.cli import main
from cardos.keyset import load as load_keyset
from cardos.terminal.psam import PSAM, PSAMError
from cardos.terminal.tsn import TsnStore, default_state_path

from .pcsc_fixtures import ROOT, cardos_command
from .test_shell import shell

TERMINAL = bytes.fromhex("010203040506")

# One purchase of 1.00 in a process of its own, at a fixed date and time: prints the record as JSON.
PURCHASE = textwrap.dedent("""
    import json, sys
    from datetime import datetime
    from cardos import Card
    from cardos.keyset import load
    from cardos.terminal import purse as tx
    from cardos.terminal.psam import PSAM

    card = Card.open(sys.argv[1])
    card.power_on()
    tx.select_application(card)
    psam = PSAM(load(sys.argv[2]), bytes.fromhex("010203040506"){state})
    record = tx.purchase(card, psam, 100, when=datetime(2026, 12, 3, 8, 30, 0))
    card.power_off()
    print(json.dumps(record.to_dict()))
""")


@pytest.fixture
def issued(tmp_path):
    """A key-set file of the user's and a card issued with it, loaded with 10.00."""
    keys, image = tmp_path / "issuer.json", tmp_path / "city.card"
    assert main(["keys", "new", str(keys)]) == 0
    assert main(["issue", "--profile", "city", "--keys", str(keys), "--serial", "7", "--out", str(image)]) == 0
    code, out = shell("load 10.00\n", card=str(image), keys=str(keys), trace="off")
    assert code == 0, out
    return keys, image


def purchase_in_a_process(image, keys, state: str = "") -> dict:
    proc = subprocess.run([sys.executable, "-c", PURCHASE.format(state=state), str(image), str(keys)], cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=60)
    return json.loads(proc.stdout)


def settle(records, keys, tmp_path) -> subprocess.CompletedProcess:
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in records))
    return subprocess.run(cardos_command("settle", str(batch), "--keys", str(keys)), cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=60)


def test_two_processes_get_distinct_tsns_and_settle_accepts_both(issued, tmp_path):
    keys, image = issued
    records = [purchase_in_a_process(image, keys), purchase_in_a_process(image, keys)]
    assert [r["tsn"] for r in records] == ["00000000", "00000001"]
    assert records[0]["date"] == records[1]["date"] and records[0]["time"] == records[1]["time"]
    state = tmp_path / "issuer.tsn.json"
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    assert json.loads(state.read_text()) == {"format": "cardos-psam-tsn", "version": 1,
                                             "next": {"010203040506": 2}}
    result = settle(records, keys, tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1] == "2 accepted, 0 rejected"


def test_without_the_state_file_the_second_purchase_is_a_replay(issued, tmp_path):
    """What the state file prevents: two PSAMs each starting at TSN 0 in the same second."""
    keys, image = issued
    records = [purchase_in_a_process(image, keys, ", state=False") for _ in range(2)]
    assert [r["tsn"] for r in records] == ["00000000", "00000000"]
    result = settle(records, keys, tmp_path)
    assert result.returncode == 1 and "duplicate of line 1 (replayed upload)" in result.stdout


def test_shell_sessions_continue_the_tsn_and_an_explicit_file_is_used(issued, tmp_path):
    keys, image = issued
    outputs = [shell("purchase 0.10\n", card=str(image), keys=str(keys), trace="off")[1] for _ in range(2)]
    assert "tsn 00000000" in outputs[0] and "tsn 00000001" in outputs[1]
    explicit = tmp_path / "pos" / "tsn.json"
    explicit.parent.mkdir()
    code, out = shell("purchase 0.10\npurchase 0.10\n", card=str(image), keys=str(keys), trace="off",
                      tsn_file=str(explicit))
    assert code == 0 and "tsn 00000000" in out and "tsn 00000001" in out
    assert TsnStore(explicit).peek(TERMINAL) == 2
    assert TsnStore(tmp_path / "issuer.tsn.json").peek(TERMINAL) == 2  # untouched by the explicit file


def test_objects_in_one_process_share_the_file_and_never_go_back(tmp_path):
    keys_path = tmp_path / "k.json"
    assert main(["keys", "new", str(keys_path)]) == 0
    keys = load_keyset(str(keys_path))
    assert default_state_path(keys) == tmp_path / "k.tsn.json"
    assert default_state_path(load_keyset("test")) is None  # shipped key sets: memory only
    first, second = PSAM(keys, TERMINAL), PSAM(keys, TERMINAL)
    taken = [psam._next_tsn() for psam in (first, second, first, second)]
    assert taken == [0, 1, 2, 3]
    assert PSAM(keys, TERMINAL, tsn=9).store is None  # an explicit TSN: this object only
    assert PSAM(keys, TERMINAL, tsn=9, state=tmp_path / "k.tsn.json")._next_tsn() == 9  # never below tsn
    assert PSAM(keys, TERMINAL)._next_tsn() == 10
    assert PSAM(keys, bytes(6))._next_tsn() == 0  # each terminal its own serial


def test_a_broken_state_file_is_a_psam_error_naming_it(tmp_path):
    state = tmp_path / "bad.tsn.json"
    state.write_text('{"format": "something else"}')
    psam = PSAM(load_keyset("test"), TERMINAL, state=state)
    with pytest.raises(PSAMError, match=r"bad.tsn.json: not a PSAM TSN state file"):
        psam._next_tsn()
    state.write_text("{")
    with pytest.raises(PSAMError, match=r"bad.tsn.json: not valid JSON: line 1"):
        psam._next_tsn()
