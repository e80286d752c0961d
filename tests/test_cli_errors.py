"""Every ``cardos`` subcommand in bad situations, as a real subprocess: missing directories, files of the
wrong kind, binary garbage, a card that is not blank, no pcscd. Each answers with its documented exit code
(docs/cli.md: 0 ok, 1 check failed, 2 usage or input, 3 transport) and ONE line on stderr that starts with
``cardos`` and names the file or the problem; never a traceback.

The "no pcscd" cases point pyscard at a socket that does not exist (``PCSCLITE_CSOCK_NAME``), so they never
depend on a pcscd running on the machine. The non-blank card in a reader goes through a real pcscd + vpcd.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cardos import Card
from cardos.keyset import KeySet
from cardos.sample import issue_sample

from .pcsc_fixtures import FIRST_PORT, reader_name

ROOT = Path(__file__).resolve().parents[1]
GARBAGE = bytes(range(255, -1, -1)) * 3  # not UTF-8 from the first byte on
NO_PCSCD = "pcscd"  # the transport cases name it: "cannot list PC/SC readers (...); is pcscd running?"


def cardos(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cardos.cli", *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture
def files(tmp_path) -> Path:
    """A directory with one file of each kind the commands take, and the wrong ones."""
    Card.blank().save_as(tmp_path / "blank.card")
    issue_sample(Card.blank().save_as(tmp_path / "issued.card").transmit)
    KeySet.generate().save(str(tmp_path / "k.json"))
    (tmp_path / "adir").mkdir()
    (tmp_path / "garbage.bin").write_bytes(GARBAGE)
    (tmp_path / "ok.apdu").write_text("00 A4 00 00 02 3F00 => 9000\n")
    return tmp_path


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    return lines[0]


def _judge(result: subprocess.CompletedProcess, code: int, names: str) -> str:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == code, f"exit {result.returncode}, expected {code}: {result.stderr}"
    line = _one_line(result)
    assert line.startswith("cardos"), line
    assert names in line, f"{names!r} not named in: {line}"
    return line


# (id, command line, exit code, what the line must name)
CASES = [
    # new
    ("new-missing-dir", ["new", "nodir/x.card"], 2, "nodir/x.card"),
    ("new-onto-a-dir", ["new", "adir"], 2, "adir"),
    # demo
    ("demo-image-missing-dir", ["demo", "--image", "nodir/d.card"], 2, "nodir/d.card"),
    ("demo-image-is-a-dir", ["demo", "--image", "adir"], 2, "adir"),
    ("demo-no-pcscd", ["demo", "-r", "0"], 3, NO_PCSCD),
    # serve (its own error paths; no vpcd needed to reach them)
    ("serve-missing-dir", ["serve", "nodir/x.card"], 2, "nodir/x.card"),
    ("serve-dir-as-image", ["serve", "adir"], 2, "adir"),
    ("serve-garbage-image", ["serve", "garbage.bin"], 2, "garbage.bin"),
    ("serve-keyset-as-image", ["serve", "k.json"], 2, "k.json"),
    ("serve-control-missing-dir", ["serve", "blank.card", "--control", "nodir/ctl", "--vpcd", "127.0.0.1:9"],
     2, "nodir/ctl"),
    ("serve-no-pcscd", ["serve", "blank.card", "--vpcd", "127.0.0.1:9"], 3, NO_PCSCD),
    # settle
    ("settle-missing-dir", ["settle", "nodir/r.jsonl", "--keys", "k.json"], 2, "nodir/r.jsonl"),
    ("settle-dir-as-records", ["settle", "adir", "--keys", "k.json"], 2, "adir"),
    ("settle-garbage-records", ["settle", "garbage.bin", "--keys", "k.json"], 2, "garbage.bin"),
    ("settle-card-as-keys", ["settle", "ok.apdu", "--keys", "issued.card"], 2, "issued.card"),
    ("settle-dir-as-keys", ["settle", "ok.apdu", "--keys", "adir"], 2, "adir"),
    ("settle-garbage-keys", ["settle", "ok.apdu", "--keys", "garbage.bin"], 2, "garbage.bin"),
    # keys
    ("keys-new-missing-dir", ["keys", "new", "nodir/k.json"], 2, "nodir/k.json"),
    ("keys-new-onto-a-dir", ["keys", "new", "adir"], 2, "adir"),
    ("keys-show-dir", ["keys", "show", "adir"], 2, "adir"),
    ("keys-show-garbage", ["keys", "show", "garbage.bin"], 2, "garbage.bin"),
    ("keys-show-card-image", ["keys", "show", "issued.card"], 2, "issued.card"),
    # issue
    ("issue-out-missing-dir", ["issue", "--profile", "city", "--keys", "k.json", "--out", "nodir/y.card"],
     2, "nodir/y.card"),
    ("issue-out-is-a-dir", ["issue", "--profile", "city", "--keys", "k.json", "--out", "adir"], 2, "adir"),
    ("issue-save-script-missing-dir", ["issue", "--profile", "city", "--keys", "k.json", "--out", "y.card",
                                       "--save-script", "nodir/s.apdu"], 2, "nodir/s.apdu"),
    ("issue-keyset-as-profile", ["issue", "--profile", "k.json", "--keys", "k.json", "--out", "y.card"],
     2, "k.json"),
    ("issue-card-as-keys", ["issue", "--profile", "city", "--keys", "issued.card", "--out", "y.card"],
     2, "issued.card"),
    ("issue-dir-as-keys", ["issue", "--profile", "city", "--keys", "adir", "--out", "y.card"], 2, "adir"),
    ("issue-dir-as-card", ["issue", "--profile", "city", "--keys", "k.json", "--card", "adir"], 2, "adir"),
    ("issue-garbage-card", ["issue", "--profile", "city", "--keys", "k.json", "--card", "garbage.bin"],
     2, "garbage.bin"),
    ("issue-missing-card", ["issue", "--profile", "city", "--keys", "k.json", "--card", "nodir/c.card"],
     2, "nodir/c.card"),
    ("issue-non-blank-image", ["issue", "--profile", "city", "--keys", "k.json", "--card", "issued.card"],
     1, "not blank"),
    ("issue-count-pattern-without-n", ["issue", "--profile", "city", "--keys", "k.json", "--count", "2",
                                       "--out", "c/{x}.card"], 2, "{x}"),
    ("issue-no-pcscd", ["issue", "--profile", "city", "--keys", "k.json", "-r", "0"], 3, NO_PCSCD),
    # profiles
    ("profiles-dir", ["profiles", "adir"], 2, "adir"),
    ("profiles-garbage", ["profiles", "garbage.bin"], 2, "garbage.bin"),
    ("profiles-keyset-as-profile", ["profiles", "k.json"], 2, "k.json"),
    ("profiles-missing", ["profiles", "nodir/p.json"], 2, "nodir/p.json"),
    # conformance
    ("conformance-missing-image", ["conformance", "--card", "nodir/x.card"], 2, "nodir/x.card"),
    ("conformance-dir-as-image", ["conformance", "--card", "adir"], 2, "adir"),
    ("conformance-garbage-image", ["conformance", "--card", "garbage.bin"], 2, "garbage.bin"),
    ("conformance-report-missing-dir", ["conformance", "--junit-xml", "nodir/r.xml"], 2, "nodir/r.xml"),
    ("conformance-json-missing-dir", ["conformance", "--json", "nodir/r.json"], 2, "nodir/r.json"),
    ("conformance-garbage-keys", ["conformance", "--keys", "garbage.bin"], 2, "garbage.bin"),
    ("conformance-no-pcscd", ["conformance", "-r", "0"], 3, NO_PCSCD),
    # bench: only the argument errors found before any work
    ("bench-unknown-part", ["bench", "--only", "nosuch"], 2, "nosuch"),
    ("bench-json-missing-dir", ["bench", "--only", "inprocess", "--json", "nodir/b.json"], 2, "nodir/b.json"),
    ("bench-image-dir-missing", ["bench", "--only", "scale", "--image-dir", "nodir"], 2, "nodir"),
    # run
    ("run-missing-script", ["run", "nodir/x.apdu"], 2, "nodir/x.apdu"),
    ("run-dir-as-script", ["run", "adir"], 2, "adir"),
    ("run-garbage-script", ["run", "garbage.bin"], 2, "garbage.bin"),
    ("run-card-image-as-script", ["run", "issued.card"], 2, "issued.card"),
    ("run-missing-image", ["run", "ok.apdu", "--card", "nodir/x.card"], 2, "nodir/x.card"),
    ("run-dir-as-image", ["run", "ok.apdu", "--card", "adir"], 2, "adir"),
    ("run-garbage-image", ["run", "ok.apdu", "--card", "garbage.bin"], 2, "garbage.bin"),
    ("run-keyset-as-image", ["run", "ok.apdu", "--card", "k.json"], 2, "k.json"),
    ("run-card-as-keys", ["run", "ok.apdu", "--keys", "issued.card"], 2, "issued.card"),
    ("run-json-missing-dir", ["run", "ok.apdu", "--json", "nodir/r.json"], 2, "nodir/r.json"),
    ("run-junit-is-a-dir", ["run", "ok.apdu", "--card", "blank.card", "--junit-xml", "adir"], 2, "adir"),
    ("run-no-pcscd", ["run", "ok.apdu", "-r", "0"], 3, NO_PCSCD),
    # convert
    ("convert-output-missing-dir", ["convert", "ok.apdu", "--to", "scriptor", "-o", "nodir/x"], 2, "nodir/x"),
    ("convert-output-is-a-dir", ["convert", "ok.apdu", "--to", "scriptor", "-o", "adir"], 2, "adir"),
    ("convert-missing-script", ["convert", "nodir/x.apdu", "--to", "scriptor"], 2, "nodir/x.apdu"),
    ("convert-dir-as-script", ["convert", "adir", "--to", "scriptor"], 2, "adir"),
    ("convert-garbage-script", ["convert", "garbage.bin", "--to", "scriptor"], 2, "garbage.bin"),
    # decode
    ("decode-missing-log", ["decode", "nodir/x.log"], 2, "nodir/x.log"),
    ("decode-dir-as-log", ["decode", "adir"], 2, "adir"),
    ("decode-garbage-log", ["decode", "garbage.bin"], 2, "garbage.bin"),
    # inspect
    ("inspect-missing-image", ["inspect", "nodir/x.card"], 2, "nodir/x.card"),
    ("inspect-dir-as-image", ["inspect", "adir"], 2, "adir"),
    ("inspect-garbage-image", ["inspect", "garbage.bin"], 2, "garbage.bin"),
    ("inspect-keyset-as-image", ["inspect", "k.json"], 2, "k.json"),
    # shell
    ("shell-missing-image", ["shell", "--card", "nodir/x.card"], 2, "nodir/x.card"),
    ("shell-dir-as-image", ["shell", "--card", "adir"], 2, "adir"),
    ("shell-garbage-image", ["shell", "--card", "garbage.bin"], 2, "garbage.bin"),
    ("shell-keyset-as-image", ["shell", "--card", "k.json"], 2, "k.json"),
    ("shell-card-as-keys", ["shell", "--keys", "issued.card"], 2, "issued.card"),
    ("shell-no-pcscd", ["shell", "-r", "0"], 3, NO_PCSCD),
]


@pytest.mark.parametrize("args, code, names", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_situation_gives_one_line_and_its_exit_code(files, args, code, names):
    result = cardos(*args, cwd=files, env={"PCSCLITE_CSOCK_NAME": str(files / "no-pcscd.sock")})
    _judge(result, code, names)
    assert not (files / "y.card").exists()  # nothing half-written


def test_every_subcommand_is_covered():
    from cardos.cli import build_parser

    commands = {name for action in build_parser()._subparsers._group_actions for name in action.choices}
    assert commands == {case[1][0] for case in CASES}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000 all the same (directories stand in)")
@pytest.mark.parametrize("args", [["inspect", "locked"], ["run", "locked"], ["decode", "locked"],
                                  ["keys", "show", "locked"], ["run", "ok.apdu", "--card", "locked"]],
                         ids=["inspect", "run-script", "decode", "keys-show", "run-image"])
def test_unreadable_file(files, args):
    locked = files / "locked"
    locked.write_text("{}")
    locked.chmod(0)
    line = _judge(cardos(*args, cwd=files), 2, "locked")
    assert "ermission" in line


def test_a_refused_issue_changes_nothing(files):
    before = (files / "issued.card").read_bytes()
    line = _judge(cardos("issue", "--profile", "city", "--keys", "k.json", "--card", "issued.card", cwd=files),
                  1, "issued.card")
    assert "--yes" in line
    assert (files / "issued.card").read_bytes() == before
    line = _judge(cardos("issue", "--profile", "city", "--keys", "k.json", "--card", "issued.card", "--yes",
                         cwd=files), 1, "issued.card is unchanged")
    assert "wrong key: 2 tries left before the key is locked" in line  # the image was not changed: still 2
    assert (files / "issued.card").read_bytes() == before


def test_count_accepts_a_format_spec_and_prints_a_summary(files):
    result = cardos("issue", "--profile", "city", "--keys", "k.json", "--count", "3", "--serial", "41",
                    "--out", "cards/{n:04d}-{serial}.card", cwd=files)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (files / "cards").iterdir()) == ["0001-41.card", "0002-42.card", "0003-43.card"]
    summary, = result.stdout.splitlines()  # no line per card without -v: the summary only
    assert summary.startswith("issued 3 cards, serials 41..43"), summary
    verbose = cardos("issue", "--profile", "city", "--keys", "k.json", "--count", "2", "-v", cwd=files)
    assert verbose.stdout.count("issued city:") == 2 and "issued 2 cards" in verbose.stdout


# -- a card that is not blank, in a reader (real pcscd + vpcd) --------------------------------------------------

def test_demo_and_issue_refuse_a_card_that_is_not_blank_without_spending_a_try(files, vpcd):
    card = Card.blank()
    issue_sample(card.transmit)  # issued: its MF key 39/00 is no longer the transport key
    vpcd.serve(card)
    reader = reader_name(FIRST_PORT)
    demo = ["demo", "-r", reader]
    issue = ["issue", "--profile", "city", "--keys", "k.json", "-r", reader]
    for args in (demo, issue):
        line = _judge(cardos(*args, cwd=files), 1, f"the card in reader {reader!r} is not blank")
        assert "--yes" in line
    # neither refusal spent a try: with --yes the first wrong key leaves 2 of 3, the next one 1
    _judge(cardos(*demo, "--yes", cwd=files), 1, "wrong key: 2 tries left before the key is locked")
    _judge(cardos(*issue, "--yes", cwd=files), 1, "wrong key: 1 try left before the key is locked")


# -- tries: what a failed authentication or a refused purse MAC leaves ------------------------------------------

def _shell(files: Path, keys: str, commands: str) -> subprocess.CompletedProcess:
    """``cardos shell`` on issued.card, the commands on stdin (not a terminal)."""
    return subprocess.run([sys.executable, "-m", "cardos.cli", "shell", "--card", "issued.card", "--keys", keys,
                           "--trace", "off"], input=commands, capture_output=True, text=True, cwd=files, timeout=120,
                          env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)})


def test_shell_says_how_many_tries_and_mac_failures_are_left(files):
    result = _shell(files, "sample", "cd 1001\nload 10.00\nverify 000000\n")
    assert "wrong PIN: 2 tries left before the PIN is locked" in result.stdout, result.stdout
    wrong_keys = _shell(files, "k.json", "cd 1001\n" + "purchase 1.00\n" * 3)  # not the card's keys
    assert "Traceback" not in wrong_keys.stderr
    refusals = [line for line in wrong_keys.stdout.splitlines() if "DEBIT FOR PURCHASE" in line]
    assert "blocks for good after 3 in a row, so after at most 2 more" in refusals[0]
    assert "so after at most 1 more" in refusals[1]
    assert "blocked the application for good" in refusals[2]


def test_a_script_purse_step_warns_before_the_purse_blocks(files):
    (files / "mac.apdu").write_text("00 A4 04 00 09 A00000000386980701\n"
                                    + "purse.load amount=1.00 mac2=00000000 => 9302\n" * 2)
    result = cardos("run", "mac.apdu", "--card", "issued.card", "--keys", "sample", cwd=files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "after at most 2 more" in result.stdout and "after at most 1 more" in result.stdout


@pytest.mark.parametrize("sw, words", [
    (0x63C2, "wrong key: 2 tries left before the key is locked"),
    (0x63C1, "wrong key: 1 try left before the key is locked"),
    (0x63C0, "wrong key: no tries left, the key is now locked"),
    (0x6983, "the key is locked (no tries left)"),
    (0x6A82, None),
], ids=["63C2", "63C1", "63C0", "6983", "not-about-tries"])
def test_wrong_key_words(sw, words):
    from cardos.tries import wrong_key

    assert wrong_key(sw) == words


def test_the_blank_check_sends_no_authentication(files):
    """Only SELECTs: no GET CHALLENGE, no EXTERNAL AUTHENTICATE, so no try counter can move."""
    from cardos.tries import NotBlank, check_blank

    for image, blank in (("blank.card", True), ("issued.card", False)):
        card = Card.open(files / image)
        card.power_on()
        sent = []

        def transmit(apdu, card=card, sent=sent):
            sent.append(apdu)
            return card.transmit(apdu)

        if blank:
            check_blank(transmit, image, yes=False)
        else:
            with pytest.raises(NotBlank, match="issued.card is not blank .*DIR 0001.*--yes"):
                check_blank(transmit, image, yes=False)
        assert {apdu[1] for apdu in sent} == {0xA4}
