"""Fail closed: a command whose save fails raises no security state, opens no right, restores no try.

A write failure is injected at every write point of every command below (as a full disk or a
directory planted at the image's temporary file does); the card must answer ``6581`` with its
security registers, selection, empty-DF rule and stored state exactly as before the command, but
for the one try the command checked, which stays spent. Real failures (a planted directory) show
the same end to end: the PIN brute force of the issue blocks after the card's tries.
"""
from __future__ import annotations

import json

import pytest

from cardos import Card, image
from cardos.apdu import build
from cardos.sample import SampleKeys
from cardos.terminal.secure import external_auth_cryptogram

from .conftest import Terminal, hx
from .purse_util import SELECT_ADF, VERIFY_PIN, Randoms, sample_card
from .test_tearing import SCENARIOS, base, prepare_scenario  # noqa: F401  (base is a fixture)

K = SampleKeys()
WRONG_PIN = "0020000003999999"
CHALLENGE = "0102030405060708"
ADF_MASTER_AUTH = build(0x00, 0x82, 0x00, 0x00, external_auth_cryptogram(K.app_master, hx(CHALLENGE)[:4]))
BAD_AUTH = "0082000008" + "00" * 8
APPEND_FORGED_RECORD = "00E200C017" + "11" * 23  # the transaction log 0018, written only by the purse


def _auth_scenarios():
    get_challenge = "0084000004"
    return {
        "VERIFY right": ([], [], VERIFY_PIN),
        "VERIFY wrong": ([], [], WRONG_PIN),
        "CHANGE PIN": ([], [], "805E010007123456FF654321"),
        "EXTERNAL AUTHENTICATE right": ([CHALLENGE[:8]], [get_challenge], ADF_MASTER_AUTH.hex()),
        "EXTERNAL AUTHENTICATE wrong": ([CHALLENGE[:8]], [get_challenge], BAD_AUTH),
        "ERASE DF": ([CHALLENGE[:8]], [get_challenge, ADF_MASTER_AUTH.hex()], "800E000000"),
    }


ALL = {**_auth_scenarios(), **{name: (r, p, c) for name, (r, p, c, _proof) in SCENARIOS.items()}}


def _prepared(base_card, name):
    randoms, prelude, command = ALL[name]
    return prepare_scenario(base_card, randoms, prelude, check_writes=False), hx(command)


def _volatile(card) -> tuple:
    s = card.security
    return s.mf_level, s.df_level, card.current_df, card.current_ef, card.free_access


def _counters(node: dict, out: dict, where: str = "") -> dict:
    """Every try counter and purse MAC-failure count of an image dict, removed from it."""
    for key in node.get("keys", []):
        header = bytes.fromhex(key["header"])  # use, change, b3, b4: the low nibble of b4 is the tries left
        key["header"] = header[:3].hex()
        out[f"{where}/key {key['type']}/{key['id']}"] = header[3] & 0x0F
    if "block" in node:  # an application blocked by its purse's last allowed MAC failure
        out[f"{where}/blocked"] = -min(node.pop("block"), 1)
    if "mac_failures" in node:
        out[f"{where}/{node['fid']}/mac failures"] = -node.pop("mac_failures")  # more failures = fewer tries
    for child in node.get("children", []):
        _counters(child, out, f"{where}/{child['fid']}")
    return out


def _stored(card) -> tuple[dict, dict]:
    state = json.loads(image.dumps(card))
    return state, _counters(state["mf"], {})


@pytest.mark.parametrize("name", list(ALL))
def test_a_write_failure_anywhere_raises_nothing_and_keeps_no_change(base, name):  # noqa: F811
    reference, command = _prepared(base, name)
    assert reference.transmit(command)[-2:] in (hx("9000"), hx("63C2"), hx("9303")), name
    points = reference.last_write_points
    assert points >= 2, f"{name}: every command here commits"
    for point in range(1, points):  # the last point is after the commit: no write left to fail
        card, command = _prepared(base, name)
        volatile, (state, tries) = _volatile(card), _stored(card)
        card.journal.arm_write_failure(point)
        assert card.transmit(command) == hx("6581"), f"{name}: write failure at {point}/{points}"
        assert _volatile(card) == volatile, f"{name}: security state changed by a failed command"
        after_state, after_tries = _stored(card)
        assert after_state == state, f"{name}: a failed command left a change"
        spent = {k: tries[k] - after_tries[k] for k in tries if after_tries[k] != tries[k]}
        if name == "MAC failure 9303":  # the third wrong MAC stays counted, and so blocks the application
            assert list(spent.values()) == [1, 1] and any(k.endswith("/blocked") for k in spent)
        else:
            assert all(v == 1 for v in spent.values()) and len(spent) <= 1, f"{name}: tries {spent}"
        assert card.session is None


def _issued_image(tmp_path):
    card, t, _sample = sample_card()
    path = tmp_path / "card.json"
    card.save_as(path).close()
    return path


def _plant_directory(path):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.mkdir()
    return tmp


def test_pin_brute_force_with_a_failing_save_blocks_after_the_cards_tries(tmp_path):
    path = _issued_image(tmp_path)
    card = Card.open(path)
    t = Terminal(card)
    t.ok(SELECT_ADF)
    before = path.read_bytes()
    _plant_directory(path)                      # every save fails from now on
    guesses = [f"0020000003{n:06d}" for n in range(123450, 123460)]  # the right PIN 123456 is the 7th
    answers = [t.sw(g) for g in guesses]
    assert answers[:3] == [0x6581] * 3          # wrong and right alike: no oracle, nothing raised
    assert answers[3:] == [0x6983] * 7          # the card's three tries are spent: blocked, right PIN or not
    assert t.sw("00B201C400") == 0x6982         # never verified
    assert path.read_bytes() == before


def test_right_and_wrong_pin_look_the_same_when_the_save_fails(tmp_path):
    path = _issued_image(tmp_path)
    for pin in (VERIFY_PIN, WRONG_PIN):
        with Card.open(path) as card:
            t = Terminal(card)
            t.ok(SELECT_ADF)
            tmp = _plant_directory(path)
            assert t.sw(pin) == 0x6581
            assert t.sw("00B201C400") == 0x6982
            tmp.rmdir()


def test_erase_df_that_cannot_be_saved_leaves_every_right_closed(tmp_path):
    path = _issued_image(tmp_path)
    with Card.open(path) as card:
        t = Terminal(card)
        t.randoms = Randoms(CHALLENGE[:8])
        card.set_random_source(t.randoms)
        t.ok(SELECT_ADF)
        t.ok("0084000004")
        t.ok(ADF_MASTER_AUTH)
        _plant_directory(path)
        assert t.sw("800E000000") == 0x6581
        t.ok(SELECT_ADF)                                 # the application is still there
        assert t.sw(APPEND_FORGED_RECORD) in (0x6982, 0x6981)
        assert t.sw("0020000003123456") == 0x6581        # the save still fails
        assert t.sw("805E000008123456" + "00" * 4) != 0x9000


def test_a_failed_save_is_logged_without_secrets(tmp_path, caplog):
    path = _issued_image(tmp_path)
    with Card.open(path) as card:
        t = Terminal(card)
        t.ok(SELECT_ADF)
        _plant_directory(path)
        with caplog.at_level("ERROR", logger="cardos"):
            assert t.sw(VERIFY_PIN) == 0x6581
    assert "could not be saved" in caplog.text
    assert "123456" not in caplog.text and "Traceback" not in caplog.text
