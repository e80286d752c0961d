"""Anti-tearing of the purse: power is cut at every write point of every purse command, on an
in-memory card and on an image-backed card (reopened from its file after the cut). The next
power-on must show exactly the state before or after the command — balances, counters, the
transaction log, composite records, the blocked flag — and GET TRANSACTION PROOF must tell which.
"""
from __future__ import annotations

import pytest

from cardos import Card
from cardos.apdu import build
from cardos.sample import SampleKeys
from cardos.terminal import purse as tx
from cardos.terminal.host import LoadHost
from cardos.terminal.keys import IssuerKeys

from .conftest import Terminal, hx
from .purse_util import (SELECT_ADF, VERIFY_PIN, WHEN, Randoms, authenticate, clone, mac, sample_card,
                         session_key)

K = SampleKeys()
TERM = "AABBCCDDEEFF"
STAMP = "20260504 231500"
COMPOSITE = hx("AA 05 00 01 02 03 04")
PROCESS = bytes(range(16))


@pytest.fixture(scope="module")
def base():
    """Sample card: EP and ED loaded with 100.00 (online counters 1), a composite record in 001A,
    a cyclic process log 001E (16-byte records)."""
    card, t, sample = sample_card()
    host = LoadHost(IssuerKeys(load=K.load, tac=K.tac, diversify=False))
    tx.load(card, host, 10000, terminal=hx(TERM), when=WHEN, serial=sample.serial)
    t.ok(VERIFY_PIN)
    tx.load(card, host, 10000, terminal=hx(TERM), purse=tx.ED, when=WHEN, serial=sample.serial)
    t.ok(build(0x00, 0xE2, 0x00, 0xD0, COMPOSITE))
    authenticate(t, K.app_master)
    t.ok("80E0001E07 2E 04 10 F0 F0 FF FF")
    return card


def _online(p1, purse, key, tx_type, amount, counter, random="5A5A5A5A"):
    init = f"8050{p1:02X}{purse:02X}0B01{amount}{TERM}10"
    sk = session_key(key, f"{random}{counter}8000")
    return init, sk, mac(sk, f"{amount}{tx_type}{TERM}{STAMP}").hex()


def _offline(p1, purse, tx_type, amount, counter, random="A5A5A5A5", tsn="00000101"):
    init = f"8050{p1:02X}{purse:02X}0B01{amount}{TERM}0F"
    sk = session_key(K.purchase, f"{random}{counter}{tsn[4:]}")
    return init, f"805401000F{tsn}{STAMP}{mac(sk, f'{amount}{tx_type}{TERM}{STAMP}').hex()}08"


def _scenarios():
    """name → (randoms, prelude APDUs, torn command, proof query (type, counter))."""
    s = {}
    init, _, m = _online(0x00, 0x02, K.load, "02", "00000500", "0001")
    s["EP load"] = (["5A5A5A5A"], [init], f"805200000B{STAMP}{m}04", (0x02, 1))
    init, _, m = _online(0x00, 0x01, K.load, "01", "00000500", "0001")
    s["ED load"] = (["5A5A5A5A"], [VERIFY_PIN, init], f"805200000B{STAMP}{m}04", (0x01, 1))
    init, debit = _offline(0x01, 0x02, "06", "00000123", "0000")
    s["EP purchase"] = (["A5A5A5A5"], [init], debit, (0x06, 0))
    init, debit = _offline(0x01, 0x01, "05", "00000123", "0000")
    s["ED purchase"] = (["A5A5A5A5"], [VERIFY_PIN, init], debit, (0x05, 0))
    init, debit = _offline(0x02, 0x01, "04", "00000123", "0000")
    s["ED cash withdraw"] = (["A5A5A5A5"], [VERIFY_PIN, init], debit, (0x04, 0))
    init, debit = _offline(0x03, 0x02, "09", "00000123", "0000")
    caches = [build(0x80, 0xDC, 0xAA, 0xD0, hx("AA 05 01 09 09 09 09")),
              build(0x80, 0xDC, 0x00, 0xF0, PROCESS)]
    s["CAPP purchase"] = (["A5A5A5A5"], [init, *caches], debit, (0x09, 0))
    init, _, m = _online(0x05, 0x01, K.unload, "03", "00000200", "0001")
    s["ED unload"] = (["5A5A5A5A"], [VERIFY_PIN, init], f"805403000B{STAMP}{m}04", (0x03, 1))
    sk = session_key(K.overdraw, "5A5A5A5A 0001 8000")
    m = mac(sk, f"002000 07 {TERM} {STAMP}").hex()
    s["ED overdraw update"] = (["5A5A5A5A"], [VERIFY_PIN, f"805004010701{TERM}13"],
                               f"805800000E002000{STAMP}{m}04", (0x07, 1))
    # a wrong MAC that blocks the application (third consecutive failure)
    init, _, _ = _online(0x00, 0x02, K.load, "02", "00000500", "0001")
    bad = f"805200000B{STAMP}0000000004"
    s["MAC failure 9303"] = (["01010101", "02020202", "03030303"], [init, bad, init, bad, init], bad, (0x02, 1))
    return s


SCENARIOS = _scenarios()

SNAPSHOT = [SELECT_ADF + "00", VERIFY_PIN, "805C000204", "805C000104",
            f"805000020B0100000000{TERM}10", f"805000010B0100000000{TERM}10",   # online counters
            f"805001020B0100000000{TERM}0F", f"805001010B0100000000{TERM}0F",   # offline counters, limit
            *(f"00B2{n:02X}C400" for n in range(1, 6)),                          # transaction log 0018
            "00B201D400", "00B202D400", "00B201F400", "00B202F400"]              # composite records


def snapshot(card: Card, proof) -> list:
    """The card's state as APDUs see it, plus the answer of GET TRANSACTION PROOF."""
    card.set_random_source(Randoms(*(["00000000"] * 8)))
    out = [card.transmit(hx(apdu)) for apdu in SNAPSHOT]
    out.append(card.transmit(build(0x80, 0x5A, 0x00, proof[0], proof[1].to_bytes(2, "big"), 8)))
    return out


def prepare_scenario(base: Card, randoms, prelude, path=None, check_writes=True) -> Card:
    """A copy of ``base`` with the application selected, its randoms forced and the prelude sent."""
    card = clone(base, path)
    t = Terminal(card)
    t.randoms = Randoms(*randoms)
    card.set_random_source(t.randoms)
    t.ok(SELECT_ADF)
    for apdu in prelude:
        t.send(apdu)
        # INITIALIZE / 80DC write nothing; VERIFY commits (a right PIN costs the write a wrong one does)
        assert not check_writes or card.last_write_points == 0 or apdu.endswith("0000000004") or apdu == VERIFY_PIN
    return card


def _prepare(base: Card, name: str, path=None):
    randoms, prelude, command, proof = SCENARIOS[name]
    return prepare_scenario(base, randoms, prelude, path), hx(command), proof


@pytest.fixture(scope="module")
def expectations(base, tmp_path_factory):
    """Per scenario: (write points, state before, state after, the command's response)."""
    out = {}
    for name in SCENARIOS:
        card, command, proof = _prepare(base, name)
        before = snapshot(clone(card), proof)
        response = card.transmit(command)
        points = card.last_write_points
        after = snapshot(card, proof)
        out[name] = points, before, after, response
    return out


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_uncut_command_changes_state_and_leaves_a_proof(expectations, name):
    points, before, after, response = expectations[name]
    assert points >= 3  # journaled writes, the commit, and "after the commit"
    assert before != after
    assert before[-1] == hx("9406")
    if name.startswith("MAC failure"):
        assert response == hx("9303") and after[0][-2:] == hx("6283")
        return
    assert response[-2:] == hx("9000")
    proof = after[-1]
    assert proof[-2:] == hx("9000") and len(proof) == 10
    body = response[:-2]
    if len(body) == 8:  # debit: TAC ‖ MAC2; the proof is MAC2 ‖ TAC
        assert proof[:8] == body[4:] + body[:4]
    elif name == "ED unload":  # MAC3; the proof is MAC3 ‖ TAC
        assert proof[:4] == body
    else:  # TAC
        assert proof[4:8] == body


@pytest.mark.parametrize("backend", ["memory", "image"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_power_cut_at_every_write_point(base, expectations, tmp_path, name, backend):
    points, before, after, _ = expectations[name]
    for point in range(1, points + 1):
        path = tmp_path / f"cut{point}.card" if backend == "image" else None
        card, command, proof = _prepare(base, name, path)
        card.arm_power_cut(point)
        assert card.transmit(command) == b"", f"{name}: no cut at write point {point}"
        assert not card.powered
        if path is not None:
            card.close()  # the process is gone
            card = Card.open(path)  # what the next power-on reads from the image
        state = snapshot(card, proof)
        assert state in (before, after), f"{name}: a mixture after a cut at write point {point}/{points}"
        # only the last point (power lost after the commit, before the response) keeps the command
        assert (state == after) == (point == points)
        # GET TRANSACTION PROOF tells the terminal which (a blocked application answers 6A81)
        if not name.startswith("MAC failure"):
            assert (state[-1][-2:] == hx("9000")) == (state == after)
