"""Security properties of the card (issue 9), each with its test:

* MAC, cryptogram and PIN comparisons run in constant time: every one goes through
  ``cardos.crypto.constant_time_equal`` (``hmac.compare_digest``) — instrumented during
  EXTERNAL AUTHENTICATE, VERIFY, line protection, WRITE KEY, PIN RELOAD/UNBLOCK, blocking
  commands and every purse MAC — and no card or terminal code compares them with ``==``.
* Challenges are single-use, die with power, are never saved, and are not predictable.
* Try counters survive power cycles and process restarts.
* Blocked keys, applications and cards stay blocked across power cycles and restarts.

(CLI output, file modes and where ``cardos serve`` connects: ``test_cli_security.py``;
SIGKILL restarts through pcscd: ``test_crash_serve.py``.)
"""
from __future__ import annotations

import ast
import hmac
import re
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cardos import Card, crypto
from cardos.apdu import build
from cardos.sample import SampleKeys, issue_sample
from cardos.terminal import purse as T
from cardos.terminal.host import LoadHost
from cardos.terminal.keys import IssuerKeys
from cardos.terminal.psam import PSAM
from cardos.terminal.secure import external_auth_cryptogram, protected_apdu

from .conftest import Terminal, hx
from .purse_util import SELECT_ADF, SERIAL, WHEN, sample_card

SELECT_LE = SELECT_ADF + "00"  # Le 00: the FCI comes with the status word (no 61XX)

K = SampleKeys()
ROOT = Path(__file__).resolve().parents[1]
TERMINAL = hx("112233445566")
ISSUER = IssuerKeys(load=K.load, purchase=K.purchase, unload=K.unload, overdraw=K.overdraw, tac=K.tac,
                    diversify=False)


# -- constant-time comparisons ------------------------------------------------------------------

class Spy:
    """Wraps ``constant_time_equal`` wherever cardos imported it; remembers what was compared."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[bytes, bytes]] = []
        real = crypto.constant_time_equal

        def spy(a, b):
            self.calls.append((bytes(a), bytes(b)))
            return real(a, b)

        for name, module in list(sys.modules.items()):
            if name.startswith("cardos") and getattr(module, "constant_time_equal", None) is real:
                monkeypatch.setattr(module, "constant_time_equal", spy)

    def compared(self, presented: bytes) -> bool:
        return any(presented in pair for pair in self.calls)

    def clear(self) -> None:
        self.calls.clear()


def test_constant_time_equal_is_hmac_compare_digest(monkeypatch):
    seen = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    assert crypto.constant_time_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03\x04")
    assert not crypto.constant_time_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03\x05")
    assert not crypto.constant_time_equal(b"\x01\x02\x03", b"\x01\x02\x03\x04")
    assert seen == [(b"\x01\x02\x03\x04", b"\x01\x02\x03\x04"), (b"\x01\x02\x03\x04", b"\x01\x02\x03\x05"),
                    (b"\x01\x02\x03", b"\x01\x02\x03\x04")]


def _flip(data: bytes, at: int = -1) -> bytes:
    return data[:at] + bytes((data[at] ^ 0x01,)) + (data[at + 1:] if at != -1 else b"")


def test_card_checks_every_mac_cryptogram_and_pin_in_constant_time(monkeypatch):
    card, t, _ = sample_card()
    spy = Spy(monkeypatch)
    checked = []

    def check(label, apdu, sw, presented):
        spy.clear()
        assert t.sw(apdu) == sw, label
        assert spy.compared(presented), f"{label}: {presented.hex().upper()} not compared in constant time"
        checked.append(label)

    # VERIFY: the presented PIN (padded to the stored length) against the stored one
    check("VERIFY wrong PIN", "0020000003999999", 0x63C2, hx("999999"))
    check("VERIFY right PIN", "0020000003123456", 0x9000, hx("123456"))
    # line protection: UPDATE BINARY, protected READ, secure VERIFY, WRITE KEY, blocking, PIN UNBLOCK
    for label, (cla, ins, p1, p2, data, key, encrypt), sw in (
        ("UPDATE BINARY 0015", (0x04, 0xD6, 0x95, 0x1D, b"\x01", K.app_line, False), 0x6988),
        ("secure VERIFY", (0x04, 0x20, 0x00, 0x00, hx("123456"), K.app_line, False), 0x9302),
        ("WRITE KEY (secure)", (0x84, 0xD4, 0x39, 0x00, hx("39F002AA33") + K.app_master, K.app_master, True), 0x9302),
        ("APPLICATION BLOCK", (0x84, 0x1E, 0x00, 0x00, b"", K.app_line, False), 0x6988),
        ("PIN UNBLOCK", (0x84, 0x24, 0x00, 0x01, hx("123456"), K.pin_unblock, True), 0x6988),
    ):
        challenge = t.challenge()
        good = protected_apdu(cla, ins, p1, p2, data, key, challenge, encrypt)
        check(f"{label} wrong MAC", _flip(good), sw, _flip(good)[-4:])
        challenge = t.challenge()                                      # (a success resets the counters)
        good = protected_apdu(0x04, 0xD6, 0x95, 0x1D, b"\x01", K.app_line, challenge)
        check("UPDATE BINARY right MAC", good, 0x9000, good[-4:])
    challenge = t.challenge()
    read = protected_apdu(0x04, 0xB0, 0x95, 0x00, b"", K.app_line, challenge, le=0)
    check("protected READ BINARY", _flip(read, -2), 0x6988, _flip(read, -2)[-5:-1])
    # RELOAD PIN: new PIN ‖ MAC with the reload key's halves XORed
    reload_mac = crypto.DES.mac(crypto.DES.tac_key(K.pin_reload), hx("123456"))
    check("RELOAD PIN wrong MAC", build(0x80, 0x5E, 0x00, 0x00, hx("123456") + _flip(reload_mac)), 0x9302,
          _flip(reload_mac))
    # EXTERNAL AUTHENTICATE: the cryptogram
    challenge = t.challenge()
    cryptogram = external_auth_cryptogram(K.app_master, challenge)
    check("EXTERNAL AUTHENTICATE wrong", build(0x00, 0x82, 0x00, 0x00, _flip(cryptogram)), 0x63C1,  # (WRITE KEY counted)
          _flip(cryptogram))
    challenge = t.challenge()
    cryptogram = external_auth_cryptogram(K.app_master, challenge)
    check("EXTERNAL AUTHENTICATE right", build(0x00, 0x82, 0x00, 0x00, cryptogram), 0x9000, cryptogram)
    assert len(checked) == 16


def _corrupting(card, ins: int):
    """A transmit that flips the last MAC bit of the command ``ins`` (the terminal's MAC)."""
    def transmit(apdu: bytes) -> bytes:
        if apdu[1] == ins and apdu[0] == 0x80:
            lc = apdu[4]
            apdu = apdu[:5 + lc - 1] + bytes((apdu[5 + lc - 1] ^ 0x01,)) + apdu[5 + lc:]
            transmit.sent = apdu[5 + lc - 4:5 + lc]
        return card.transmit(apdu)
    return transmit


@pytest.mark.parametrize("step", ["load", "purchase", "unload", "overdraw"])
def test_card_checks_purse_macs_in_constant_time(monkeypatch, step):
    card, t, _ = sample_card()
    t.ok("0020000003123456")
    T.load(card, LoadHost(ISSUER), 5000, terminal=TERMINAL, purse=T.ED, serial=SERIAL, when=WHEN)
    spy = Spy(monkeypatch)
    run = {
        "load": (0x52, lambda c: T.load(c, LoadHost(ISSUER), 100, terminal=TERMINAL, purse=T.ED, serial=SERIAL,
                                        when=WHEN)),
        "purchase": (0x54, lambda c: T.purchase(c, PSAM(ISSUER, TERMINAL), 100, purse=T.ED, serial=SERIAL,
                                                when=WHEN)),
        "unload": (0x54, lambda c: T.unload(c, LoadHost(ISSUER), 100, terminal=TERMINAL, serial=SERIAL,
                                            when=WHEN)),
        "overdraw": (0x58, lambda c: T.update_overdraw_limit(c, LoadHost(ISSUER), 1000, terminal=TERMINAL,
                                                             serial=SERIAL, when=WHEN)),
    }
    ins, do = run[step]
    record = do(card)                                               # right MAC: accepted …
    assert spy.compared(record.mac) or step in ("purchase", "unload")  # (MAC2/MAC3 are the card's own)
    spy.clear()
    bad = _corrupting(card, ins)
    with pytest.raises(T.TransactionError) as exc:                   # … wrong MAC: 9302
        do(bad)
    assert exc.value.sw == 0x9302
    assert spy.compared(bad.sent), f"{step}: the card's MAC check is not constant time"


def test_terminal_checks_card_macs_and_tacs_in_constant_time(monkeypatch):
    """The terminal side too: MAC1 at the load host, MAC2 at the PSAM, TACs at settlement."""
    card, t, _ = sample_card()
    spy = Spy(monkeypatch)
    record = T.load(card, LoadHost(ISSUER), 5000, terminal=TERMINAL, purse=T.EP, serial=SERIAL, when=WHEN)
    assert spy.compared(record.tac)
    spy.clear()
    record = T.purchase(card, PSAM(ISSUER, TERMINAL), 100, purse=T.EP, serial=SERIAL, when=WHEN)
    assert spy.compared(record.mac) and spy.compared(record.tac)


SECRET_NAME = re.compile(r"(?i)(^|_)(mac\d?|tac|cryptogram|expected|pin|proof|digest|presented|response)(\d|_|$)")
SCANNED = ["cardos/commands", "cardos/purse.py", "cardos/card.py", "cardos/security.py", "cardos/crypto.py",
           "cardos/keys.py", "cardos/terminal"]


def _secret_comparisons(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or not any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            continue
        operands = [node.left, *node.comparators]
        if any(isinstance(o, ast.Constant) for o in operands):
            continue  # x == None / 0 / "…": not a MAC
        if any(isinstance(o, ast.Call) and getattr(o.func, "id", "") in ("len", "type") for o in operands):
            continue
        names = [n.id if isinstance(n, ast.Name) else n.attr for o in operands for n in ast.walk(o)
                 if isinstance(n, (ast.Name, ast.Attribute))]
        if any(SECRET_NAME.search(n) and not n.isupper() for n in names):
            yield f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}"


def test_no_mac_or_cryptogram_is_compared_with_equals():
    """Source scan of the card and the terminal: MACs, TACs, cryptograms, PINs never meet ``==``."""
    files = []
    for entry in SCANNED:
        p = ROOT / entry
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    found = [hit for f in files for hit in _secret_comparisons(f)]
    assert not found, "compare these with cardos.crypto.constant_time_equal:\n" + "\n".join(found)


def test_the_source_scan_finds_a_plain_comparison(tmp_path):
    bad = ROOT / "tests" / "_scan_probe_tmp.py"
    bad.write_text("def check(mac, expected):\n    return mac == expected\n")
    try:
        assert list(_secret_comparisons(bad)) == ["tests/_scan_probe_tmp.py:2: mac == expected"]
    finally:
        bad.unlink()


# -- challenges --------------------------------------------------------------------------------

@pytest.fixture
def app():
    card, t, _ = sample_card()
    return card, t


def _auth(t, challenge) -> int:
    return t.sw(build(0x00, 0x82, 0x00, 0x00, external_auth_cryptogram(K.app_master, challenge)))


def test_a_challenge_is_used_once_whatever_happens(app):
    _card, t = app
    challenge = t.challenge()
    assert _auth(t, challenge) == 0x9000
    assert _auth(t, challenge) == 0x6984                               # used by the success
    challenge = t.challenge()
    assert t.sw(build(0x00, 0x82, 0x00, 0x00, bytes(8))) == 0x63C2     # a failure uses it too
    assert _auth(t, challenge) == 0x6984
    challenge = t.challenge()
    assert t.sw("00B0950001") == 0x9000                                # so does any other command
    assert _auth(t, challenge) == 0x6984
    challenge = t.challenge()
    assert t.sw("FFFFFFFF") == 0x6E00                                  # even a refused one
    assert _auth(t, challenge) == 0x6984
    challenge = t.challenge()
    t.challenge()                                                      # a newer challenge replaces it:
    assert _auth(t, challenge) == 0x63C1                               # the old one is just wrong now


def test_a_protected_command_cannot_be_replayed(app):
    _card, t = app
    challenge = t.challenge()
    apdu = protected_apdu(0x04, 0xD6, 0x95, 0x1D, b"\x01", K.app_line, challenge)
    assert t.sw(apdu) == 0x9000
    assert t.sw(apdu) == 0x6984                                        # no challenge: replay refused
    t.challenge()
    assert t.sw(apdu) == 0x6988                                        # another challenge: wrong MAC


def test_challenges_die_with_power_and_are_never_saved(tmp_path):
    path = tmp_path / "card.json"
    card = Card.blank().save_as(path)
    issue_sample(card.transmit)
    t = Terminal(card)
    t.ok(SELECT_ADF)
    challenge = t.challenge(8)
    card.power_off()
    card.power_on()
    t.ok(SELECT_ADF)
    assert _auth(t, challenge) == 0x6984                               # power off
    challenge = t.challenge(8)
    card.reset()
    t.ok(SELECT_ADF)
    assert _auth(t, challenge) == 0x6984                               # warm reset
    challenge = t.challenge(8)
    t.ok("0020000003123456")                                           # a write: the image is saved …
    assert challenge.hex().upper() not in path.read_text().upper()     # … without the challenge
    card.close()
    reopened = Terminal(Card.open(path))                               # a restarted process
    reopened.ok(SELECT_ADF)
    assert _auth(reopened, challenge) == 0x6984


def test_challenges_are_unpredictable():
    seen = {Card.blank().transmit(hx("0084000008"))[:-2] for _ in range(200)}
    one = Card.blank()
    seen |= {one.transmit(hx("0084000008"))[:-2] for _ in range(2000)}
    assert len(seen) == 2200                                           # 64-bit randoms never repeat
    assert Card.blank()._random is secrets.token_bytes                 # the OS's CSPRNG, never seeded


# -- try counters and blocks across power cycles and restarts ------------------------------------

@pytest.fixture
def image(tmp_path):
    path = tmp_path / "card.json"
    card = Card.blank().save_as(path)
    issue_sample(card.transmit)
    card.close()
    yield path
    _stop_process(path)


_RUNNING: dict = {}  # image → the card "the process" has open: a restart ends it first


def _stop_process(path) -> None:
    card = _RUNNING.pop(str(path), None)
    if card is not None:
        card.close()


def reopen(path, select: bool = True) -> Terminal:
    """The card as a new process finds it (the previous one stopped): opened from its image,
    powered on, ADF selected."""
    _stop_process(path)
    card = _RUNNING[str(path)] = Card.open(path)
    t = Terminal(card)
    if select:
        t.ok(SELECT_ADF)
    return t


def in_new_process(path, *apdus: str) -> list[str]:
    """Send ``apdus`` from a fresh Python process (this one's card stopped); returns the status words."""
    _stop_process(path)
    script = textwrap.dedent(f"""
        from cardos import Card
        card = Card.open({str(path)!r})
        card.power_on()
        for apdu in {list(apdus)!r}:
            print(card.transmit(bytes.fromhex(apdu))[-2:].hex().upper())
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=ROOT).stdout.split()


def test_pin_try_counter_persists_and_the_block_stays(image):
    t = reopen(image)
    assert t.sw("0020000003999999") == 0x63C2
    t.card.power_off()
    t.card.power_on()
    t.ok(SELECT_ADF)
    assert t.sw("0020000003999999") == 0x63C1                          # power cycle
    assert in_new_process(image, SELECT_LE, "0020000003999999") == ["9000", "63C0"]  # new process
    t = reopen(image)
    assert t.sw("0020000003123456") == 0x6983                          # blocked: the right PIN is refused
    assert in_new_process(image, SELECT_LE, "0020000003123456") == ["9000", "6983"]


def test_external_auth_key_counter_persists_and_the_block_stays(image):
    t = reopen(image)
    for left in (2, 1):
        t.challenge()
        assert t.sw(build(0x00, 0x82, 0x00, 0x00, bytes(8))) == 0x63C0 | left
        t = reopen(image)
    t.challenge()
    assert t.sw(build(0x00, 0x82, 0x00, 0x00, bytes(8))) == 0x63C0
    t = reopen(image)
    assert _auth(t, t.challenge()) == 0x6983                           # the right cryptogram: still blocked


def test_line_key_counter_persists_and_the_block_stays(image):
    for _ in range(3):
        t = reopen(image)
        challenge = t.challenge()
        assert t.sw(_flip(protected_apdu(0x04, 0xD6, 0x95, 0x1D, b"\x01", K.app_line, challenge))) == 0x6988
    t = reopen(image)
    good = protected_apdu(0x04, 0xD6, 0x95, 0x1D, b"\x01", K.app_line, t.challenge())
    assert t.sw(good) == 0x6983


def test_purse_mac_failures_persist_and_the_permanent_block_stays(image):
    for expected in (0x9302, 0x9302, 0x9303):                           # a restart between each failure
        t = reopen(image)
        t.ok("805001020B01000000001122334455660F")
        assert t.sw("805401000F00000001202605010830000000000008") == expected
    t = reopen(image, select=False)
    assert t.sw(SELECT_LE) == 0x6283                                  # selected, but blocked
    assert t.sw("805C000204") == 0x6A81
    assert in_new_process(image, SELECT_LE, "805C000204") == ["6283", "6A81"]


def test_application_blocks_stay_until_unblocked_and_permanent_ones_forever(image):
    t = reopen(image)
    t.ok(protected_apdu(0x84, 0x1E, 0x00, 0x00, b"", K.app_line, t.challenge()))     # temporary block
    t = reopen(image, select=False)
    assert t.sw(SELECT_LE) == 0x6283 and t.sw("00B0950001") == 0x6A81
    t.ok(protected_apdu(0x84, 0x18, 0x00, 0x00, b"", K.app_line, t.challenge()))     # unblocked with the key
    t.ok(protected_apdu(0x84, 0x1E, 0x00, 0x01, b"", K.app_line, t.challenge()))     # permanent block
    t = reopen(image, select=False)
    assert t.sw(SELECT_LE) == 0x6283
    assert t.sw(protected_apdu(0x84, 0x18, 0x00, 0x00, b"", K.app_line, t.challenge())) == 0x9303
    assert in_new_process(image, SELECT_LE, "00B0950001") == ["6283", "6A81"]


def test_a_blocked_card_stays_blocked(image):
    t = reopen(image)
    t.ok(protected_apdu(0x84, 0x16, 0x00, 0x00, b"", K.app_line, t.challenge()))     # CARD BLOCK
    t = reopen(image, select=False)
    for apdu in ("00A40000023F00", SELECT_ADF, "0084000004", "00B0950001"):
        assert t.sw(apdu) == 0x6A81
    assert in_new_process(image, "00A40000023F00", SELECT_ADF) == ["6A81", "6A81"]
