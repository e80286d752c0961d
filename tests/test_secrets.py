"""Secrets never leave in clear (issue 23; docs/robustness.md, "Secrets").

* one redaction path (``cardos/redact.py``): vectors for every secret-bearing APDU;
* a scan: a known PIN and a known key value go to the card by VERIFY, CHANGE PIN
  and plain WRITE KEY through ``cardos run`` (trace, ``--json``, ``--junit-xml``),
  ``cardos shell`` (both traces, interactive with a history file), ``cardos decode``,
  ``cardos convert``, ``cardos issue -v`` and ``cardos serve -v`` through pcscd;
  every output stream and every file these create is searched for the PIN and the
  key in hex (spaced or not): none may appear, except in the files whose purpose is
  to hold them (images, key sets, scripts) — and every file created is 0600 under
  umask 022;
* the log line of a command whose save failed (``cardos/card.py``) masks it too.
"""
from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cardos import Card
from cardos.decoder import decode_command
from cardos.privatefile import open_private, write_private
from cardos.redact import apdu_hex, apdu_spaced, redact_text, secret_span
from cardos.terminal.secure import external_auth_cryptogram

from .pcsc_fixtures import cardos_command
from .test_cli_security import key_material, leaks
from .test_shell import _pty_session

PIN = "482917305561"  # 6 bytes of BCD: long enough not to turn up by chance in a trace
NEW_PIN = "907162"  # CHANGE PIN's new PIN: 3 bytes, so searched for with the old PIN around it
KEY = "C0FFEE1234567890A1B2C3D4E5F60718"
PIN_KEY = "5C9D3E7A18F2"  # a PIN written by WRITE KEY (type 3A) as its value
TRANSPORT_KEY = bytes.fromhex("FF" * 8)  # the transport key of a blank card
SECRETS = {"PIN": PIN, "PIN written by WRITE KEY": PIN_KEY, "key": KEY, "key (left half)": KEY[:16],
           "key (right half)": KEY[16:], "CHANGE PIN data": f"{PIN}FF{NEW_PIN}"}

SETUP_SCRIPT = f"""\
# a PIN and a key put on a blank card, then used
00 A4 00 00 02 3F 00                  => 9000
00 84 00 00 04                        => [XX XX XX XX] 9000 -> challenge=data
00 82 00 00 {{lc}} ext_auth(FFFFFFFFFFFFFFFF, ${{challenge}}) => 9000
80 D4 01 00 {{lc}} 3A F0 EF 01 33 {PIN}      => 9000
80 D4 01 01 {{lc}} 39 F0 F0 AA 33 {KEY} => 9000
80 D4 01 01 {{lc}} 3A F0 EF 01 33 {PIN_KEY}    => 9000
00 20 00 00 {{lc}} {PIN}                => 9000
00 20 00 00 {{lc}} {PIN}                => 6983   # a wrong expectation: the failure is reported too
80 5E 01 00 {{lc}} {PIN} FF {NEW_PIN}    => 9000
"""


def secrets_in(text: str, extra: dict | None = None) -> list[str]:
    """The secrets of this module (and ``extra`` keys, as test_cli_security scans them) found in ``text``."""
    flat = re.sub(r"[\s:|]", "", text).upper()
    found = [name for name, value in SECRETS.items() if value in flat]
    return found + (leaks(text, extra) if extra else [])


def cardos(*args: str, cwd, stdin: str | None = None, env: dict | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI as a child process with umask 022 (files must come out 0600 anyway)."""
    return subprocess.run([sys.executable, "-m", "cardos.cli", *args], cwd=cwd, input=stdin, text=True,
                          capture_output=True, timeout=timeout, umask=0o022,
                          env={**os.environ, "NO_COLOR": "1", "HOME": str(cwd), **(env or {})})


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.lstat().st_mode))


# -- the redaction path ----------------------------------------------------------------------------

@pytest.mark.parametrize("apdu, shown", [
    ("0020000006" + PIN, "0020000006" + "*" * 12),                                   # VERIFY
    ("042000000A" + PIN + "11223344", "042000000A" + "*" * 20),                      # VERIFY + MAC: PIN in clear
    ("0020000006" + PIN + "00", "0020000006" + "*" * 12 + "00"),                     # Le stays
    ("0020000007" + PIN, "0020000007" + "*" * 12),                                   # Lc wrong: all data masked
    ("002000", "002000"),                                                            # no data
    ("805E010007" + PIN[:6] + "FF" + NEW_PIN, "805E010007" + "*" * 14),              # CHANGE PIN
    ("805E000007" + NEW_PIN + "01020304", "805E000007" + "*" * 14),                  # RELOAD PIN
    ("845E000007" + NEW_PIN + "01020304", "845E000007" + "*" * 14),                  # any CLA
    ("802400000C" + "00" * 12, "802400000C" + "*" * 24),                             # UNBLOCK without SM
    ("842400000C" + "AB" * 12, "842400000C" + "AB" * 12),                            # encrypted: kept
    ("0024000106" + "123456" + NEW_PIN, "0024000106" + "*" * 12),                    # ISO CHANGE REFERENCE DATA
    ("002C000106" + "123456" + NEW_PIN, "002C000106" + "*" * 12),                    # ISO RESET RETRY COUNTER
    ("80D4010115" + "39F0F0AA33" + KEY, "80D4010115" + "39F0F0AA33" + "*" * 32),     # WRITE KEY
    ("80D40100000015" + "39F0F0AA33" + KEY, "80D40100000015" + "39F0F0AA33" + "*" * 32),  # extended Lc
    ("80D401000B" + "3AF0EF0133" + PIN, "80D401000B" + "3AF0EF0133" + "*" * 12),     # a PIN by WRITE KEY
    ("84D401001C" + "5A" * 28, "84D401001C" + "5A" * 28),                            # secure WRITE KEY: kept
    ("00A40000023F00", "00A40000023F00"),
    ("805000020B0100000064112233445566" + "10", "805000020B0100000064112233445566" + "10"),
])
def test_apdu_hex_masks_every_secret_bearing_command(apdu, shown):
    raw = bytes.fromhex(apdu)
    assert apdu_hex(raw) == shown
    assert apdu_spaced(raw).replace(" ", "") == shown
    assert redact_text(f"sent {apdu_spaced(raw)} and {apdu} ok") == f"sent {apdu_spaced(raw)} and {shown} ok"
    masked = "".join(f.hex() for f in decode_command(raw).fields)  # the decoded traces mask the secret too
    span = secret_span(raw)
    assert ("*" in masked) == (span is not None)
    assert span is None or raw[span[0]:span[1]].hex().upper() not in masked
    assert "".join(f.value.hex().upper() for f in decode_command(raw, show_keys=True).fields) in apdu.upper()


def test_secret_span_and_free_text():
    assert secret_span(bytes.fromhex("0020000006" + PIN)) == (5, 11)
    assert secret_span(bytes.fromhex("00B0000010")) is None
    log = f"> 00 20 00 00 06 {' '.join(PIN[i:i + 2] for i in range(0, 12, 2))}\n< 90 00 : Normal processing."
    assert not secrets_in(redact_text(log))
    assert redact_text("ATR 3B 8C 80 01 43 41 52 44") == "ATR 3B 8C 80 01 43 41 52 44"


# -- private files -------------------------------------------------------------------------------------

def test_private_files_are_0600_never_through_a_link(tmp_path):
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.json"
        write_private(fresh, "{}")
        assert mode(fresh) == "0o600"
        public = tmp_path / "old-report.xml"
        public.write_text("old")
        public.chmod(0o644)
        write_private(public, b"new")                          # an old 0644 report becomes private
        assert (mode(public), public.read_text()) == ("0o600", "new")
        target = tmp_path / "victim"
        target.write_text("untouched")
        (tmp_path / "planted").symlink_to(target)
        with pytest.raises(OSError):
            write_private(tmp_path / "planted", KEY)
        assert target.read_text() == "untouched"
        with pytest.raises(FileExistsError):
            write_private(fresh, "x", overwrite=False)
        before = os.stat(os.devnull).st_mode
        os.close(open_private(os.devnull))                    # not a regular file: written, mode untouched
        assert os.stat(os.devnull).st_mode == before
    finally:
        os.umask(old)


@pytest.mark.parametrize("args", [("run", "pin.apdu", "--json", "out"), ("run", "pin.apdu", "--junit-xml", "out"),
                                  ("convert", "pin.apdu", "--to", "scriptor", "-o", "out")])
def test_a_planted_link_is_refused_with_one_line(tmp_path, args):
    (tmp_path / "pin.apdu").write_text(f"00 20 00 00 06 {PIN} => 9403\n")
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / "out").symlink_to(victim)
    result = cardos(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("out: is a symbolic link (files that can hold secrets are written only "
                                          "to a real path)"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""                                 # said before any work
    assert victim.read_text() == "untouched"


# -- the scan --------------------------------------------------------------------------------------

def created_files(folder: Path, before: set) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p not in before)


def test_no_pin_or_key_leaves_in_clear_and_every_file_is_0600(tmp_path):
    (tmp_path / "setup.apdu").write_text(SETUP_SCRIPT)
    (tmp_path / "bad.apdu").write_text(f"00 20 00 00 07 {PIN}\n")  # Lc one too many: a conversion error
    (tmp_path / "plain.apdu").write_text(f"00 20 00 00 06 {PIN}\n80 D4 01 01 15 39 F0 F0 AA 33 {KEY}\n")
    (tmp_path / "keyed.apdu").write_text("80 D4 01 00 {lc} 3E F0 02 01 00 @purchase => 9000\n")
    (tmp_path / "raw.log").write_text(f"00 20 00 00 06 {PIN}\n90 00\n80 D4 01 01 15 39 F0 F0 AA 33 {KEY}\n90 00\n"
                                      f"note: the terminal sent 00 20 00 00 06 {PIN} first\n")
    inputs = set(tmp_path.rglob("*"))
    outputs = {}
    assert cardos("new", "card.json", cwd=tmp_path).returncode == 0
    run = cardos("run", "setup.apdu", "--card", "card.json", "--keep-going", "--json", "run.jsonl",
                 "--junit-xml", "run.xml", cwd=tmp_path)
    assert run.returncode == 1, run.stderr                     # the wrong expectation, nothing else
    assert "setup.apdu:9: status word 9000 (success), expected 6983" in run.stdout
    outputs["run"] = run
    outputs["run --json -"] = cardos("run", "setup.apdu", "--json", "-", "--keep-going", cwd=tmp_path)
    outputs["decode"] = cardos("decode", "raw.log", cwd=tmp_path)
    outputs["convert"] = cardos("convert", "plain.apdu", "--to", "scriptor", "-o", "plain.scriptor", cwd=tmp_path)
    outputs["convert error"] = cardos("convert", "bad.apdu", "--to", "apdutool", cwd=tmp_path)
    assert outputs["convert error"].returncode == 2 and "not a well-formed APDU" in outputs["convert error"].stderr
    outputs["convert --keys"] = cardos("convert", "keyed.apdu", "--keys", "sample", "--to", "scriptor",
                                       "-o", "keyed.scriptor", cwd=tmp_path)
    assert outputs["convert"].returncode == outputs["convert --keys"].returncode == 0
    typo = PIN[:-1] + "x"                                      # a mistyped PIN is not echoed either
    shell_input = (f"verify {PIN}\napdu 00 20 00 00 06 {PIN}\ntrace short\nverify 00 {PIN}\nverify {typo}\n"
                   f"apdu 80 D4 01 01 15 39 F0 F0 AA 33 {KEY}\nquit\n")
    for trace in ("full", "short"):
        outputs[f"shell --trace {trace}"] = cardos("shell", "--trace", trace, stdin=shell_input, cwd=tmp_path)
        assert "a PIN is 2 to 12 decimal digits" in outputs[f"shell --trace {trace}"].stdout
        assert typo[:-1] not in outputs[f"shell --trace {trace}"].stdout
    issued = cardos("issue", "--profile", "city", "--keys", "test", "--serial", "1", "--param",
                    f"pin={PIN}", "-v", "--save-script", "issue.apdu", "--out", "issued.json", cwd=tmp_path)
    assert issued.returncode == 0, issued.stderr
    outputs["issue -v"] = issued
    assert cardos("keys", "new", "issuer.json", cwd=tmp_path).returncode == 0

    from cardos.keyset import load as load_keyset
    issue_keys = key_material(load_keyset("test"))
    for name, result in outputs.items():
        for stream in ("stdout", "stderr"):
            assert not secrets_in(getattr(result, stream), issue_keys), f"{name} {stream}: {getattr(result, stream)}"
    holders = {"card.json", "issued.json", "issuer.json", "issue.apdu", "plain.scriptor", "keyed.scriptor"}
    files = created_files(tmp_path, inputs)
    assert {p.name for p in files} >= holders | {"run.jsonl", "run.xml"}
    for path in files:
        assert mode(path) == "0o600", f"{path.name} is {mode(path)}"
        if path.name not in holders:
            assert not secrets_in(path.read_text(), issue_keys), f"{path.name}: {path.read_text()}"
    assert PIN in re.sub(r"\s", "", (tmp_path / "plain.scriptor").read_text())  # it is a conversion after all


def authenticated(card: Card) -> Card:
    """A blank card with the MF selected and its transport key authenticated (keys may be added)."""
    card.power_on()
    assert card.transmit(bytes.fromhex("00A40000023F00"))[-2:] == b"\x61\x17"
    challenge = card.transmit(bytes.fromhex("0084000004"))[:-2]
    answer = card.transmit(bytes.fromhex("0082000008") + external_auth_cryptogram(TRANSPORT_KEY, challenge))
    assert answer == b"\x90\x00"
    return card


def test_shell_history_is_0600_and_never_holds_a_pin_or_key(tmp_path):
    pytest.importorskip("readline")
    image = tmp_path / "card.json"
    card = authenticated(Card.blank())
    assert card.transmit(bytes.fromhex(f"80D401000B3AF0EF0133{PIN}")) == b"\x90\x00"
    card.save_as(image).close()                              # the shell opens it next (one writer per image)
    history = tmp_path / ".cardos_history"
    history.write_text(f"ls\nverify {PIN}\n")                 # left by an older cardos, world-readable
    history.chmod(0o644)
    env = {**os.environ, "HOME": str(tmp_path), "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("CARDOS_HISTORY", None)
    old = os.umask(0o022)
    try:
        _pty_session(cardos_command("shell", "--card", str(image)),
                     [(f"verify 00 {PIN}\r".encode(), b"PIN verified"),
                      (f"apdu 00 20 00 00 06 {PIN}\r".encode(), b"Success!"),
                      (f"apdu 80 5E 01 00 0D {PIN} FF {PIN}\r".encode(), b"CHANGE PIN"),
                      (b"challenge\r", b"random ")], env)
    finally:
        os.umask(old)
    assert mode(history) == "0o600"
    assert history.read_text().splitlines() == ["ls", "challenge", "quit"]


def test_a_new_history_file_is_0600(tmp_path):
    pytest.importorskip("readline")
    env = {**os.environ, "HOME": str(tmp_path), "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("CARDOS_HISTORY", None)
    old = os.umask(0o022)
    try:
        _pty_session(cardos_command("shell"), [], env)
    finally:
        os.umask(old)
    assert mode(tmp_path / ".cardos_history") == "0o600"


def test_conformance_reports_are_0600_and_mask_the_pin(tmp_path):
    from cardos.conformance.baseline import PIN as SUITE_PIN

    (tmp_path / "old.xml").write_text("old")
    (tmp_path / "old.xml").chmod(0o644)                       # an old report overwritten becomes private
    result = cardos("conformance", "-k", "verify", "--junit-xml", "old.xml", "--json", "report.json", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    junit = (tmp_path / "old.xml").read_text()
    assert "&gt;&gt; 0020000003******" in junit                # the trace is there, the PIN is not
    for path in (tmp_path / "old.xml", tmp_path / "report.json"):
        assert mode(path) == "0o600", path.name
        assert f"0020000003{SUITE_PIN}" not in re.sub(r"\s", "", path.read_text())


# -- serve -v and cardos run / shell through pcscd ----------------------------------------------------

def _pcsc_exchange(connection, hex_apdu: str) -> tuple[bytes, int]:
    data, sw1, sw2 = connection.transmit(list(bytes.fromhex(hex_apdu.replace(" ", ""))))
    if sw1 == 0x61:
        data, sw1, sw2 = connection.transmit([0x00, 0xC0, 0x00, 0x00, sw2])
    return bytes(data), sw1 << 8 | sw2


def test_serve_verbose_through_pcscd_logs_no_pin_or_key(serve_process, vpcd, pcscd, tmp_path):
    from cardos.transports.pcscd import FIRST_PORT, reader_name

    reader = reader_name(FIRST_PORT)
    image = tmp_path / "card.json"
    Card.blank().save_as(image).close()
    trace = tmp_path / "serve.trace"
    trace.write_text("an old trace\n")
    trace.chmod(0o644)                                         # overwritten: private from now on
    served = serve_process(str(image), "-v", "--trace", str(trace))
    pcscd.wait_card(reader, present=True)
    connection = vpcd.connect(reader)
    assert _pcsc_exchange(connection, "00A40000023F00")[1] == 0x9000
    challenge, sw = _pcsc_exchange(connection, "0084000004")
    cryptogram = external_auth_cryptogram(TRANSPORT_KEY, challenge).hex()
    for apdu in (f"0082000008{cryptogram}", f"80D4010115 39F0F0AA33 {KEY}", f"80D401000B 3AF0EF0133 {PIN}",
                 f"0020000006 {PIN}"):
        assert _pcsc_exchange(connection, apdu)[1] == 0x9000, apdu
    connection.disconnect()
    (tmp_path / "use.apdu").write_text(f"00 A4 00 00 02 3F 00 => 9000\n00 20 00 00 {{lc}} {PIN} => 9000\n")
    run = cardos("run", "use.apdu", "-r", reader, "--json", "run.jsonl", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    shell = cardos("shell", "-r", reader, stdin=f"verify {PIN}\napdu 00 20 00 00 06 {PIN}\n", cwd=tmp_path)
    assert "PIN verified" in shell.stdout
    served.signal(15)
    assert served.wait() == 0
    log = "\n".join(served.stdout_lines + served.stderr_lines)
    assert "VERIFY" in log and "** ** ** ** ** **" in log       # -v traces every APDU, masked
    assert "VERIFY" in trace.read_text() and mode(trace) == "0o600"
    for name, text in (("serve -v", log), ("serve --trace", trace.read_text()), ("run -r", run.stdout + run.stderr),
                       ("run --json", (tmp_path / "run.jsonl").read_text()), ("shell -r", shell.stdout)):
        assert not secrets_in(text), f"{name}: {text}"
    assert mode(tmp_path / "run.jsonl") == "0o600"


# -- the log line of a failed save ------------------------------------------------------------------

def test_a_failed_save_logs_the_command_masked(tmp_path, caplog):
    image = tmp_path / "card.json"
    Card.blank().save_as(image).close()
    card = authenticated(Card.open(image))
    (tmp_path / f".{image.name}.tmp").mkdir()                  # the next save cannot write its temporary file
    with caplog.at_level(logging.DEBUG):
        answer = card.transmit(bytes.fromhex(f"80D4010115 39F0F0AA33 {KEY}".replace(" ", "")))
        card.transmit(bytes.fromhex(f"80D401000B3AF0EF0133{PIN}"))
    assert answer == b"\x65\x81"                                  # EEPROM failure: nothing stored
    assert caplog.records, "the failed save is logged"
    logged = "\n".join(r.getMessage() + (caplog.handler.format(r) if r.exc_info else "") for r in caplog.records)
    assert "80D4010115" in logged.upper()                          # the command is named ...
    assert not secrets_in(logged), logged                          # ... with its key value masked
