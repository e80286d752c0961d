"""Security properties of the command line (issue 9):

* no subcommand prints a key unless asked (``cardos keys new|show --show``): the output of
  every subcommand run here is scanned for every master key of the key sets in play, every
  card key diversified from them for the cards issued here, and the sample card's keys —
  whole or either 8-byte half;
* card images, key sets and saved scripts are created with mode 0600 on every creation path,
  whatever the umask (``cardos new``, ``Card.save_as``, ``cardos issue --out/--card
  /--save-script``, ``cardos demo --image``, ``cardos keys new [--force]``, ``cardos serve``);
* ``cardos serve`` connects only where it is told (default ``localhost:35963``) and never
  listens on the network (an audit hook records every socket call of the process).

Runs without pcscd: ``serve`` talks to a fake vpcd (the vpcd wire format) on a free port.
"""
from __future__ import annotations

import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest

from cardos import Card
from cardos.keyset import KeySet
from cardos.keyset import load as load_keyset
from cardos.sample import SampleKeys

ROOT = Path(__file__).resolve().parents[1]
SERIALS = ("3100000000000001", "3100000000000007", "3100000000000042")


def cardos(*args: str, cwd=None, stdin: str | None = None, umask: int | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess:
    kwargs = {"umask": umask} if umask is not None else {}
    return subprocess.run([sys.executable, "-m", "cardos.cli", *args], cwd=cwd, input=stdin, text=True,
                          capture_output=True, timeout=timeout, env={**os.environ, "NO_COLOR": "1"}, **kwargs)


# -- no key material in the output ----------------------------------------------------------------

def key_material(*keysets: KeySet) -> dict[str, bytes]:
    """Every key worth hiding: masters, the card keys of SERIALS, the sample card's keys."""
    out = {}
    for ks in keysets:
        name = ks.path.name if ks.path else "generated"
        for role, by_index in ks.keys.items():
            for index, master in by_index.items():
                out[f"{name} {role}.{index}"] = master
                for serial in SERIALS:
                    out[f"{name} {role}.{index} card {serial}"] = ks.card_key(role, index, bytes.fromhex(serial))
    sample = SampleKeys()
    for f in fields(sample):
        if f.name != "pin":
            out[f"sample {f.name}"] = getattr(sample, f.name)
    return out


def leaks(text: str, keys: dict[str, bytes]) -> list[str]:
    """Keys (or 8-byte halves of keys) that appear in ``text`` as hex, spaced or not."""
    flat = re.sub(r"[\s:|]", "", text).upper()
    found = []
    for label, key in keys.items():
        for part, chunk in (("", key), (" (left half)", key[:8]), (" (right half)", key[8:])):
            if len(chunk) >= 8 and chunk.hex().upper() in flat:
                found.append(label + part)
                break
    return found


def test_no_subcommand_prints_keys_unless_asked(tmp_path):
    generated = tmp_path / "issuer.json"
    assert cardos("keys", "new", str(generated)).returncode == 0
    keys = key_material(load_keyset("test"), load_keyset("test-sm4"), load_keyset(generated))
    (tmp_path / "pay.apdu").write_text(textwrap.dedent("""\
        keys test
        00 A4 04 00 {lc} A00000000386980701 / 00  => 9000
        purse.load amount=10.00                   => 9000
        purse.purchase amount=1.00                => 9000
        00 20 00 00 {lc} pin(123456)              => 9000
        auth.external key=@app_master.1 kid=00    => 6A88|63CX|9000|6982
        """))
    runs = {}

    def run(*args, stdin=None, ok=(0,)):
        result = cardos(*args, cwd=tmp_path, stdin=stdin)
        assert result.returncode in ok, f"cardos {' '.join(args)}: {result.returncode}\n{result.stderr}"
        runs[" ".join(args)] = result.stdout + result.stderr
        return result

    run("--help")
    run("new", "blank.card")
    run("demo", "--image", "demo.card")
    run("keys", "new", "other.json", "--sm4", "--test")
    run("keys", "show", "test")
    run("keys", "show", str(generated))
    run("profiles")
    run("profiles", "city")
    run("issue", "--profile", "city", "--keys", "test", "--serial", "1", "--out", "city.card")
    run("issue", "--profile", "city", "--keys", str(generated), "--serial", "7", "--out", "mine.card", "-v",
        "--save-script", "mine.apdu")
    run("issue", "--profile", "multi", "--keys", "test", "--serial", "42", "--out", "multi.card")
    run("issue", "--add-app", "campus", "--keys", "test", "--card", "multi.card", "-v")
    run("inspect", "city.card")
    run("inspect", "mine.card", "--json")
    run("run", "--card", "city.card", "pay.apdu")
    run("run", "--card", "city.card", "pay.apdu", "--json", "-")
    run("run", "--fresh", "-q", "mine.apdu")                        # an issuance script, quiet: no trace
    run("convert", "pay.apdu", "--to", "scriptor", ok=(0, 2))
    run("decode", "-", stdin="> 00 A4 04 00 09 A0 00 00 00 03 86 98 07 01\n< 90 00\n")
    run("shell", "--card", "city.card", "--keys", "test",
        stdin="ls\ncd 1001\nls\nbalance\nverify 123456\nload 1.00\npurchase 0.50\nhistory\n", ok=(0, 1))
    run("run", "--card", "city.card", "pay.apdu", "--json", "report.json")
    (tmp_path / "records.jsonl").write_text(json.dumps(_a_purchase_record()) + "\n")
    run("settle", "records.jsonl", "--keys", "test")
    run("serve", "city.card", "--vpcd", f"127.0.0.1:{_closed_port()}", "--timeout", "0.5", ok=(3,))
    run("conformance", "-k", "select", ok=(0, 1))
    run("bench", "--quick", "--only", "inprocess")
    assert all(runs.values()), [cmd for cmd, out in runs.items() if not out]
    if os.environ.get("CARDOS_SHOW_SCAN"):
        print({cmd: len(out) for cmd, out in runs.items()})
    found = {cmd: hits for cmd, out in runs.items() if (hits := leaks(out, keys))}
    assert not found, f"key material printed without --show: {found}"
    # … and the scan does see keys where they are asked for
    shown = cardos("keys", "show", str(generated), "--show").stdout
    assert len(leaks(shown, keys)) == sum(len(v) for v in load_keyset(generated).keys.values())
    assert leaks(cardos("keys", "new", str(tmp_path / "third.json"), "--show").stdout, key_material(
        load_keyset(tmp_path / "third.json")))


def _a_purchase_record() -> dict:
    """One transaction record as a terminal uploads it (a purchase on a city card, TEST keys)."""
    from datetime import date

    from cardos.personalize import issue
    from cardos.terminal import purse as T
    from cardos.terminal.host import LoadHost
    from cardos.terminal.psam import PSAM

    keys = load_keyset("test")
    card = Card.blank()
    issue(card, "city", keys, {"serial": 1}, today=date(2026, 5, 1))
    card.power_on()
    serial = T.select_application(card)
    T.load(card, LoadHost(keys), 1000, terminal=bytes(6), serial=serial)
    return T.purchase(card, PSAM(keys, bytes(6)), 100, serial=serial).to_dict()


def test_write_key_apdus_are_logged_without_the_key():
    from cardos.redact import apdu_hex

    assert apdu_hex(bytes.fromhex("80D401001539F002AA33" + "11" * 16)) == "80D401001539F002AA33" + "*" * 32
    assert apdu_hex(bytes.fromhex("80D40100083AF0EF0133123456")) == "80D40100083AF0EF0133******"
    assert apdu_hex(bytes.fromhex("80D401000000153EF0020101" + "22" * 16)).endswith("*" * 32)  # extended Lc
    encrypted = bytes.fromhex("84D4390018" + "AB" * 24)                  # ciphertext: shown as sent
    assert apdu_hex(encrypted) == encrypted.hex().upper()
    assert apdu_hex(b"\x80\xd4") == "80D4"


# -- file modes --------------------------------------------------------------------------------------

def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_images_key_sets_and_scripts_are_created_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        Card.blank().save_as(tmp_path / "api.card")
        KeySet.generate(test=True).save(tmp_path / "api-keys.json")
        stale = tmp_path / ".stale.card.tmp"                            # a temporary file left by a crash
        stale.write_text("{}")
        os.chmod(stale, 0o644)
        card = Card.blank().save_as(tmp_path / "stale.card")
        card.transmit(bytes.fromhex("00A40000023F00"))
        card.transmit(bytes.fromhex("0084000004"))
        os.chmod(tmp_path / "stale.card", 0o644)                        # the user loosened the image …
        card.transmit(bytes.fromhex("00820000080000000000000000"))      # … a commit (try counter)
    finally:
        os.umask(old)
    assert mode(tmp_path / "api.card") == 0o600 and mode(tmp_path / "api-keys.json") == 0o600
    assert mode(tmp_path / "stale.card") == 0o600                       # every commit writes 0600
    (tmp_path / "loose.json").write_text("{}")
    os.chmod(tmp_path / "loose.json", 0o644)
    for args in (("new", "new.card"), ("demo", "--image", "demo.card"), ("keys", "new", "keys.json"),
                 ("keys", "new", "loose.json", "--force", "--test"),
                 ("issue", "--profile", "city", "--keys", "test", "--out", "out.card", "--save-script", "out.apdu"),
                 ("issue", "--profile", "city", "--keys", "test", "--card", "new.card")):
        result = cardos(*args, cwd=tmp_path, umask=0)
        assert result.returncode == 0, (args, result.stderr)
    for name in ("new.card", "demo.card", "keys.json", "loose.json", "out.card", "out.apdu"):
        assert mode(tmp_path / name) == 0o600, name


class FakeVpcd:
    """The vpcd side of one slot: listens on 127.0.0.1, polls the card like pcscd does."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.conn = None

    def accept(self, timeout=15.0):
        self.server.settimeout(timeout)
        self.conn, _ = self.server.accept()
        self.conn.settimeout(timeout)

    def _recv(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            assert chunk, "cardos serve closed the connection"
            data += chunk
        return data

    def exchange(self, message: bytes) -> bytes:
        self.conn.sendall(struct.pack(">H", len(message)) + message)
        return self._recv(struct.unpack(">H", self._recv(2))[0])

    def power_on(self) -> bytes:
        atr = self.exchange(b"\x04")
        self.conn.sendall(b"\x00\x01\x01")                               # power on (no answer)
        return atr

    def close(self):
        for s in (self.conn, self.server):
            if s is not None:
                s.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


AUDITED = textwrap.dedent("""
    import socket, sys
    def hook(event, args):
        if event == "socket.connect":
            sock, address = args
            sys.stderr.write(f"AUDIT connect {sock.family.name} {address!r}\\n")
            if {refuse!r} and sock.family != socket.AF_UNIX:
                raise ConnectionRefusedError(111, "refused by the test")
        elif event == "socket.bind":
            sock, address = args
            sys.stderr.write(f"AUDIT bind {sock.family.name} {address!r}\\n")
        elif event == "socket.getaddrinfo":
            sys.stderr.write(f"AUDIT getaddrinfo {args[0]!r} {args[1]!r}\\n")
    sys.addaudithook(hook)
    from cardos.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def audited_serve(tmp_path, *args, refuse=False, umask=None):
    script = tmp_path / "audited.py"
    script.write_text(AUDITED.replace("{refuse!r}", repr(refuse)))
    kwargs = {"umask": umask} if umask is not None else {}
    return subprocess.Popen([sys.executable, str(script), "serve", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def audit_lines(stderr: str) -> list[tuple[str, str, str]]:
    return [tuple(line.split(" ", 3)[1:]) for line in stderr.splitlines() if line.startswith("AUDIT ")]


def test_serve_connects_where_told_only_listens_nowhere_and_saves_0600(tmp_path):
    image = tmp_path / "card.json"
    card = Card.blank().save_as(image)
    from cardos.sample import issue_sample
    issue_sample(card.transmit)
    card.close()  # unlock the image for the server
    os.chmod(image, 0o644)
    vpcd = FakeVpcd()
    proc = audited_serve(tmp_path, str(image), "--vpcd", f"127.0.0.1:{vpcd.port}", "--control",
                         str(tmp_path / "ctl.sock"), umask=0)
    try:
        vpcd.accept()
        assert vpcd.power_on() == card.atr
        assert vpcd.exchange(bytes.fromhex("00A4040009A0000000038698070100"))[-2:] == b"\x90\x00"
        assert vpcd.exchange(bytes.fromhex("0020000003999999")) == b"\x63\xc2"  # a commit
        assert mode(tmp_path / "ctl.sock") & 0o077 == 0                  # the control socket: owner only
        assert mode(tmp_path / f".{image.name}.lock") == 0o600            # the image lock, while serving
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
        vpcd.close()
    audit = audit_lines(err)
    connects = [(family, address) for kind, family, address in audit if kind == "connect"]
    binds = [(family, address) for kind, family, address in audit if kind == "bind"]
    assert connects and all(c == ("AF_INET", repr(("127.0.0.1", vpcd.port))) for c in connects), connects
    assert all(family == "AF_UNIX" for family, _ in binds), f"serve opened a network socket: {binds}"
    assert mode(image) == 0o600                                          # the commit wrote 0600
    assert not (tmp_path / f".{image.name}.lock").exists()              # removed on a clean exit


def test_serve_goes_to_localhost_35963_by_default(tmp_path):
    image = tmp_path / "card.json"
    Card.blank().save_as(image)
    proc = audited_serve(tmp_path, str(image), "--timeout", "0.5", refuse=True)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err                                     # cannot reach vpcd: exit 3
    audit = audit_lines(err)
    lookups = [f"{host} {port}" for kind, host, port in audit if kind == "getaddrinfo"]
    connects = [(family, address) for kind, family, address in audit if kind == "connect" and family != "AF_UNIX"]
    assert lookups and all(a == "'localhost' 35963" for a in lookups), lookups
    assert connects and all(address in (repr(("127.0.0.1", 35963)), repr(("::1", 35963, 0, 0)))
                            for _family, address in connects), connects
    assert not [a for kind, family, a in audit if kind == "bind" and family != "AF_UNIX"]


@pytest.mark.parametrize("address", ["0.0.0.0", "[::]"])
def test_serve_never_listens_even_when_pointed_at_any_address(tmp_path, address):
    """``--vpcd 0.0.0.0:PORT`` is a connection attempt (to this host), never a listening socket."""
    image = tmp_path / "card.json"
    Card.blank().save_as(image)
    proc = audited_serve(tmp_path, str(image), "--vpcd", f"{address}:{_closed_port()}", "--timeout", "0.5",
                         refuse=True)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert not [a for kind, family, a in audit_lines(err) if kind == "bind" and family != "AF_UNIX"]


def test_run_traces_mask_write_key_values_unless_asked(tmp_path, capsys):
    """`cardos run` shows a plain WRITE KEY's key as * in the trace, JSON and JUnit; --show-keys shows it."""
    from cardos.cli import main

    script = tmp_path / "wk.apdu"
    script.write_text("00A40000023F00\n80D401000D 39 F0 F0 AA 33 1122334455667788 => 6982\n")
    junit = tmp_path / "r.xml"
    assert main(["run", str(script), "--no-color", "--junit-xml", str(junit)]) == 0
    out = capsys.readouterr().out
    assert "1122334455667788" not in out and "****************" in out
    assert "1122334455667788" not in junit.read_text()
    assert main(["run", str(script), "--json"]) == 0
    assert "1122334455667788" not in capsys.readouterr().out
    assert main(["run", str(script), "--no-color", "--show-keys"]) == 0
    assert "1122334455667788" in capsys.readouterr().out.replace(" ", "")
