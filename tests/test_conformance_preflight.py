"""``cardos conformance`` says what stops a run up front: one line naming the problem and the fix,
exit 2 (what the user named is wrong) or 3 (no pcscd / reader / card, another card), never a
card failure, a pytest ``Exit`` banner or a traceback. Real runs: ``cardos conformance`` as a
subprocess on card images, and in this process on a card in the in-process pyscard reader."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from cardos import Card
from cardos.cli import main as cardos_main

from .test_conformance import ROOT, Recording, run_conformance, run_in_process

NOISE = ("_pytest.outcomes.Exit", "Traceback", "no tests ran", "deselected", "non-conforming")


def cardos(*args, cwd=ROOT, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cardos.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, check=False, timeout=120, env=env)


def assert_one_line(r: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    """Exit ``code``, nothing on stdout, one line on stderr holding every fragment, no noise."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    everything = r.stdout + r.stderr
    assert r.returncode == code, everything
    assert r.stdout.strip() == "" and len(lines) == 1, everything
    assert lines[0].startswith("cardos conformance: "), everything
    for fragment in fragments:
        assert fragment in lines[0], everything
    for noise in NOISE:
        assert noise not in everything, everything
    return lines[0]


@pytest.fixture(scope="module")
def other_keys_card(tmp_path_factory):
    """A city card issued with a generated key set (``cardos keys new``), as a new user makes one."""
    where = tmp_path_factory.mktemp("issued")
    keys, image = where / "k.json", where / "c.card"
    assert cardos("keys", "new", keys).returncode == 0
    issued = cardos("issue", "--profile", "city", "--keys", keys, "--out", image)
    assert issued.returncode == 0, issued.stderr
    return keys, image


# -- the key set is not the card's -------------------------------------------------------------------

def test_a_card_issued_with_other_keys_is_named_up_front(other_keys_card):
    keys, image = other_keys_card
    before = image.read_bytes()
    r = run_conformance("--card", image)
    line = assert_one_line(r, 2, f"{image}: the card's keys are not those of key set test", "63C2",
                           "pass --keys FILE, the key set the card was issued with")
    assert "on a copy" in line
    assert image.read_bytes() == before
    # with its own key set the same card runs (and passes)
    r = run_conformance("--card", image, "--keys", keys, "-k", "check_select or test_load_ep")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "non-conforming: none" in r.stdout


def test_a_selection_without_the_card_needs_no_pre_flight(other_keys_card):
    """The suite's self-check talks to no card: the wrong key set does not stop it."""
    _keys, image = other_keys_card
    r = run_conformance("--card", image, "-k", "check_crypto")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "non-conforming: none" in r.stdout


# -- what the user named, what the transport lacks ------------------------------------------------------

def test_input_problems_are_one_line_exit_2(tmp_path, other_keys_card):
    _keys, image = other_keys_card
    assert_one_line(run_conformance("--card", tmp_path / "missing.card"), 2,
                    "missing.card: no such card image", "cardos new")
    broken = tmp_path / "broken.card"
    broken.write_text("{not json", encoding="utf-8")
    assert_one_line(run_conformance("--card", broken), 2, "broken.card")
    assert_one_line(run_conformance("--keys", tmp_path / "nokeys.json"), 2, "nokeys.json: no such key set")
    assert_one_line(run_conformance("--card", image, "--serial", "12"), 2, "--serial '12'", "16 hex digits")
    assert_one_line(run_conformance("--factory", "tests.conformance_doubles:nothing"), 2,
                    "card factory", "has no 'nothing'")


def test_another_cards_serial_is_one_line_exit_3(other_keys_card):
    keys, image = other_keys_card
    assert_one_line(run_conformance("--card", image, "--keys", keys, "--serial", "3100000000000002"), 3,
                    "card serial does not match", "the card's serial is 3100000000000001",
                    "--serial says 3100000000000002", "nothing was changed")


@pytest.fixture
def no_pcscd(tmp_path):
    """The environment of a machine without pcscd: pcsc-lite's socket points at nothing."""
    return {**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm"), "PYTHONPATH": str(ROOT)}


def test_no_pcscd_is_one_line_exit_3(no_pcscd, tmp_path):
    sock = no_pcscd["PCSCLITE_CSOCK_NAME"]
    assert_one_line(cardos("conformance", "--reader", "ACS", env=no_pcscd), 3,
                    f"pcscd is not running (nothing answers on {sock})", "start it")
    # a vpcd port nothing listens on: the vpcd diagnosis names pcscd as well
    assert_one_line(cardos("conformance", "--vpcd", "--vpcd-port", "39999", env=no_pcscd), 3,
                    f"pcscd is not running (nothing answers on {sock})")


# -- -k and --list ---------------------------------------------------------------------------------------

def test_k_matching_nothing_says_so():
    line = assert_one_line(run_conformance("-k", "nosuch"), 2, "no test matches -k 'nosuch'",
                           "cardos conformance --list")
    total = int(re.search(r"\((\d+) tests in the suite", line).group(1))
    assert total > 200
    assert_one_line(run_conformance("-k", "and"), 2, "-k")   # a malformed expression: pytest's reason


def test_list_names_the_selected_tests_without_a_card(tmp_path):
    r = run_conformance("--list", "-k", "check_select or test_load_ep", "--card", tmp_path / "no-card-needed")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    selected, total = map(int, re.fullmatch(r"(\d+) of (\d+) tests", lines[-1]).groups())
    assert len(lines) - 1 == selected and 10 < selected < total
    assert "check_purse.py::test_load_ep  [purse / CREDIT FOR LOAD]  (destructive, needs_keys)" in lines
    assert all(line.startswith(("check_select.py::", "check_purse.py::")) for line in lines[:-1])


# -- a card in a reader (the in-process pyscard reader stands in for it) ----------------------------------

@pytest.fixture
def reader_with(other_keys_card):
    """Put a card into an in-process reader: ``reader_with(card) -> (recording card, reader name)``."""
    from cardos.transports.pyscard_reader import register, unregister

    readers = []

    def insert(card):
        recording = Recording(card)
        readers.append(register(recording))
        return recording, readers[-1].name

    yield insert
    for reader in readers:
        unregister(reader)


def test_a_card_in_a_reader_with_other_keys_costs_no_try(reader_with, other_keys_card, tmp_path, capsys):
    """The key set is checked by the MAC1 of INITIALIZE FOR LOAD: no EXTERNAL AUTHENTICATE is sent."""
    keys, image = other_keys_card
    copy = tmp_path / "c.card"
    copy.write_bytes(image.read_bytes())
    card, name = reader_with(Card.open(copy))
    code = cardos_main(["conformance", "--reader", name, "--keys", "test", "--serial", "3100000000000001"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert out == "" and len(err.strip().splitlines()) == 1, out + err
    assert "the card's keys are not those of key set test (MAC1 of INITIALIZE FOR LOAD does not verify" in err
    assert "no try spent" in err
    assert b"\x00\x82" not in card.seen and b"\x80\x52" not in card.seen, card.seen
    # with its key set, the same card in the same reader starts
    code = cardos_main(["conformance", "--reader", name, "--keys", str(keys), "--serial", "3100000000000001",
                        "-k", "test_load_ep"])
    assert code == 0, capsys.readouterr().out[-3000:]


def test_no_card_and_no_such_reader_are_one_line_exit_3(capsys):
    from cardos.transports.pyscard_reader import register, unregister

    empty = register(None)   # a reader without a card
    try:
        for args, fragment in ((["--reader", empty.name], "is a card inserted?"),
                               (["--reader", "nosuch"], f"no reader matches 'nosuch' (readers: 0: {empty.name})")):
            code = cardos_main(["conformance", *args])
            out, err = capsys.readouterr()
            assert code == 3 and out == "", out + err
            assert err.startswith("cardos conformance: ") and len(err.strip().splitlines()) == 1, err
            assert fragment in err and "Traceback" not in err, err
    finally:
        unregister(empty)


def test_skipped_tests_say_why(reader_with, tmp_path, capsys):
    """A card in a reader without --serial: the destructive tests skip, and the summary says why."""
    _card, name = reader_with(Card.blank())
    report_path = tmp_path / "report.json"
    code = cardos_main(["conformance", "--reader", name, "--keys", "test", "-k", "check_purse or check_select",
                        "--json", str(report_path)])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    skipped = sum(t["outcome"] == "skipped" for t in report["tests"])
    assert skipped > 20
    reason = "destructive: on a card in a reader this runs only with --serial matching the card"
    groups = report["skipped"]
    assert groups[0]["reason"] == reason and groups[0]["tests"] > 20   # the most frequent reason first
    assert sum(g["tests"] for g in groups) == skipped
    summary = out[out.index("skipped, by reason:"):].splitlines()[1:len(groups) + 1]
    assert [line.split(None, 1) for line in summary] == [[str(g["tests"]), g["reason"]] for g in groups]


def test_pytest_directly_runs_the_same_pre_flight(other_keys_card, capsys):
    """From pytest (no ``cardos conformance``) the same check stops the run before any test."""
    _keys, image = other_keys_card
    assert run_in_process("--cardos-card", image) == 4    # pytest's usage-error code
    out = capsys.readouterr().out
    assert "the card's keys are not those of key set test" in out and "passed" not in out
