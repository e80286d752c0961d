"""Every status word the purse commands answer (reference §3, decisions in docs/purse.md)."""
import json

import pytest

from cardos import Card
from cardos.config import CardConfig
from cardos.sample import SampleKeys
from cardos.terminal.secure import protected_apdu

from .conftest import Terminal, hx
from .purse_util import (PIN, SELECT_ADF, VERIFY_PIN, Randoms, built_card, clone, key_record, mac,
                         sample_card, session_key)

K = SampleKeys()
TERM = "112233445566"
STAMP = "20260501 083000"


@pytest.fixture
def sample():
    card, t, _ = sample_card()
    return card, t


def _load_init(t, amount="00001000", purse=2, random="11223344"):
    t.randoms.push(random)
    return t.ok(f"805000{purse:02X}0B01{amount}{TERM}10")


def _mac2_load(amount="00001000", tx_type="02", random="11223344", counter="0000", key=K.load):
    sk = session_key(key, f"{random}{counter}8000")
    return mac(sk, f"{amount}{tx_type}{TERM}{STAMP}").hex()


def _loaded(t, amount="00001000"):
    """EP load of ``amount`` (hex), counter 0000."""
    _load_init(t, amount)
    t.ok(f"805200000B{STAMP}{_mac2_load(amount)}04")


def _purchase_apdus(t, amount="00000100", p1=1, purse=2, tx_type="06", counter="0000", random="55667788",
                    tsn="00000001"):
    t.randoms.push(random)
    t.ok(f"8050{p1:02X}{purse:02X}0B01{amount}{TERM}0F")
    sk = session_key(K.purchase, f"{random}{counter}{tsn[4:]}")
    return f"805401000F{tsn}{STAMP}{mac(sk, f'{amount}{tx_type}{TERM}{STAMP}').hex()}08"


# -- INITIALIZE (80 50) ----------------------------------------------------------------------

def test_initialize_wrong_p1_p2(sample):
    _, t = sample
    assert t.sw(f"805006020B0100000001{TERM}10") == 0x6A86  # no such INITIALIZE
    assert t.sw(f"805000030B0100000001{TERM}10") == 0x6A86  # purse 03
    assert t.sw(f"805000000B0100000001{TERM}10") == 0x6A86


@pytest.mark.parametrize("p1", [0x02, 0x04, 0x05])  # cash withdraw, overdraw update, unload: ED only
def test_ed_only_functions_on_the_ep_answer_6a81(sample, p1):
    _, t = sample
    data = f"0701{TERM}" if p1 == 0x04 else f"0B0100000001{TERM}"
    assert t.sw(f"8050{p1:02X}02{data}") == 0x6A81


def test_capp_purchase_on_the_ed_answers_6a81(sample):
    _, t = sample
    t.ok(VERIFY_PIN)
    assert t.sw(f"805003010B0100000001{TERM}0F") == 0x6A81


@pytest.mark.parametrize("apdu", [
    f"805000020A01000000{TERM}",          # Lc 0A
    f"805000020C0100000001{TERM}00",      # Lc 0C
    f"805004010B0100000001{TERM}",        # overdraw update takes Lc 07
])
def test_initialize_wrong_length(sample, apdu):
    _, t = sample
    t.ok(VERIFY_PIN)
    assert t.sw(apdu) == 0x6700


def test_initialize_with_cla_84_is_refused(sample):
    _, t = sample
    assert t.sw(f"845000020B0100000001{TERM}10") == 0x6E00


def test_purse_not_found_and_not_a_purse(sample):
    _, t = sample
    t.ok("00A40000023F00")  # the MF: no 0002, and 0001 is the DIR record file
    assert t.sw(f"805000020B0100000001{TERM}10") == 0x6A82
    assert t.sw(f"805000010B0100000001{TERM}10") == 0x6981
    assert t.sw("805C000204") == 0x6A82
    assert t.sw("805C000104") == 0x6981
    assert t.sw("805A0002020000") == 0x6A82


def test_ed_needs_the_pin(sample):
    _, t = sample
    assert t.sw(f"805000010B0100000001{TERM}10") == 0x6982
    assert t.sw(f"805001010B0100000001{TERM}0F") == 0x6982
    assert t.sw("805C000104") == 0x6982
    assert t.sw("805A0001020000") == 0x6982
    t.ok(VERIFY_PIN)
    assert t.ok("805C000104") == hx("00000000")


@pytest.mark.parametrize("p1, purse, data, le", [
    (0x00, 0x02, f"0B0200000001{TERM}", "10"),  # load key 3F/02
    (0x01, 0x02, f"0B0000000001{TERM}", "0F"),  # purchase key 3E/00
    (0x03, 0x02, f"0B0700000001{TERM}", "0F"),
    (0x02, 0x01, f"0B0200000001{TERM}", "0F"),
    (0x05, 0x01, f"0B0200000001{TERM}", "10"),
    (0x04, 0x01, f"0702{TERM}", "13"),
])
def test_unknown_key_index_answers_9403(sample, p1, purse, data, le):
    _, t = sample
    t.ok(VERIFY_PIN)
    assert t.sw(f"8050{p1:02X}{purse:02X}{data}{le}") == 0x9403


def test_key_use_right_is_enforced():
    keys = {(0x3A, 0): key_record(0x3A, hx(PIN), b3=0x01, b4=0x33),
            (0x34, 0): key_record(0x34, K.tac),
            (0x3F, 1): key_record(0x3F, K.load, use=0x11)}  # usable only in state 1 (after the PIN)
    _, t = built_card(keys=keys)
    assert t.sw(f"805000020B0100000001{TERM}10") == 0x6982
    t.ok(VERIFY_PIN)
    assert len(t.ok(f"805000020B0100000001{TERM}10")) == 16


def test_purse_without_tac_key_or_log_answers_6283():
    keys = {(0x3F, 1): key_record(0x3F, K.load), (0x3E, 1): key_record(0x3E, K.purchase)}
    _, t = built_card(keys=keys, ed=False)  # no TAC key 34/00
    assert t.sw(f"805000020B0100000001{TERM}10") == 0x6283
    keys[(0x34, 0)] = key_record(0x34, K.tac)
    _, t = built_card(keys=keys, ed=False, log=None)  # no transaction log 0018
    assert t.sw(f"805000020B0100000001{TERM}10") == 0x6283
    assert t.sw(f"805001020B0100000000{TERM}0F") == 0x6283
    _, t = built_card(keys=keys, ed=False, log="2A0A17F1EF")  # 0018 is not cyclic
    assert t.sw(f"805000020B0100000001{TERM}10") == 0x6283
    _, t = built_card(keys=keys, ed=False, log="2E0A10F1EF")  # 16-byte records
    assert t.sw(f"805000020B0100000001{TERM}10") == 0x6283
    _, t = built_card(keys=keys, ed=False)  # complete: works
    assert len(t.ok(f"805000020B0100000001{TERM}10")) == 16


def test_insufficient_balance_answers_9401(sample):
    _, t = sample
    _loaded(t, "00000100")
    assert t.sw(f"805001020B0100000101{TERM}0F") == 0x9401
    assert t.sw(f"805003020B0100000101{TERM}0F") == 0x9401
    assert len(t.ok(f"805001020B0100000100{TERM}0F")) == 15  # the whole balance is fine
    t.ok(VERIFY_PIN)
    assert t.sw(f"805002010B0100000001{TERM}0F") == 0x9401  # ED empty
    assert t.sw(f"805005010B0100000001{TERM}10") == 0x9401


def test_load_beyond_max_balance_answers_6985():
    _, t, _ = sample_card(config=CardConfig(max_balance=0x1000))
    assert t.sw(f"805000020B0100001001{TERM}10") == 0x6985
    _loaded(t, "00001000")
    assert t.sw(f"805000020B0100000001{TERM}10") == 0x6985
    assert t.ok("805C000204") == hx("00001000")


def test_counter_at_maximum_answers_9402(sample, tmp_path):
    card, _ = sample
    path = tmp_path / "card.json"
    clone(card, path)
    raw = json.loads(path.read_text())

    def set_counter(node):
        if node.get("fid") == "0002":
            node["online_counter"] = node["offline_counter"] = 0xFFFF
            node["balance"] = 100
        for child in node.get("children", []):
            set_counter(child)

    set_counter(raw["mf"])
    path.write_text(json.dumps(raw))
    t = Terminal(Card.open(path))
    t.ok(SELECT_ADF)
    assert t.sw(f"805000020B0100000001{TERM}10") == 0x9402
    assert t.sw(f"805001020B0100000001{TERM}0F") == 0x9402
    assert t.sw(f"805003020B0100000001{TERM}0F") == 0x9402


def test_blocked_application_answers_6a81(sample):
    _, t = sample
    challenge = t.challenge()
    t.ok(protected_apdu(0x84, 0x1E, 0x00, 0x00, b"", K.app_line, challenge))  # temporary block
    assert t.sw(f"805000020B0100000001{TERM}10") == 0x6A81
    assert t.sw("805C000204") == 0x6A81
    assert t.sw("805A0002020000") == 0x6A81


# -- the one-shot session: 6901 -------------------------------------------------------------------

def test_second_commands_without_initialize_answer_6901(sample):
    _, t = sample
    assert t.sw(f"805200000B{STAMP}0000000004") == 0x6901
    assert t.sw(f"805401000F00000001{STAMP}0000000008") == 0x6901
    assert t.sw(f"805403000B{STAMP}0000000004") == 0x6901
    assert t.sw(f"805800000E000100{STAMP}0000000004") == 0x6901


def test_session_is_ended_by_any_other_command(sample):
    _, t = sample
    _load_init(t)
    t.ok("805C000204")
    assert t.sw(f"805200000B{STAMP}{_mac2_load()}04") == 0x6901


def test_session_is_ended_by_power_loss(sample):
    card, t = sample
    _load_init(t)
    card.power_on()
    t.ok(SELECT_ADF)
    assert t.sw(f"805200000B{STAMP}{_mac2_load()}04") == 0x6901
    assert t.ok("805C000204") == hx("00000000")


def test_get_response_does_not_end_the_session(sample):
    _, t = sample
    t.randoms.push("11223344")
    data, sw = t.send(f"805000020B0100001000{TERM}")  # no Le: T=0 style 61 10
    assert sw == 0x6110 and data == b""
    init = t.ok("00C0000010")
    assert init[8:12] == hx("11223344")
    assert len(t.ok(f"805200000B{STAMP}{_mac2_load()}04")) == 4


def test_session_is_one_shot(sample):
    _, t = sample
    _loaded(t)
    assert t.sw(f"805200000B{STAMP}{_mac2_load()}04") == 0x6901
    assert t.ok("805C000204") == hx("00001000")


def test_wrong_kind_of_second_command_answers_6901(sample):
    _, t = sample
    _load_init(t)
    assert t.sw(f"805401000F00000001{STAMP}0000000008") == 0x6901
    t.randoms.push("55667788")
    t.ok(f"805001020B0100000000{TERM}0F")
    assert t.sw(f"805200000B{STAMP}0000000004") == 0x6901
    t.ok(VERIFY_PIN)
    t.ok(f"805004010701{TERM}13")
    assert t.sw(f"805403000B{STAMP}0000000004") == 0x6901


# -- second commands: P1P2, length, MAC ------------------------------------------------------------

def test_second_command_wrong_p1p2(sample):
    _, t = sample
    _load_init(t)
    assert t.sw(f"805201000B{STAMP}{_mac2_load()}04") == 0x6A86
    assert t.sw(f"805402000F00000001{STAMP}0000000008") == 0x6A86  # DEBIT P1 02 does not exist
    _loaded(t)
    apdu = _purchase_apdus(t)
    assert t.sw(apdu[:6] + "01" + apdu[8:]) == 0x6A86  # DEBIT P2 01
    assert t.sw(f"805800010E000100{STAMP}0000000004") == 0x6A86


def test_second_command_wrong_length(sample):
    _, t = sample
    _load_init(t)
    assert t.sw(f"805200000A{STAMP}{_mac2_load()[:6]}") == 0x6700
    _loaded(t)
    apdu = _purchase_apdus(t)
    assert t.sw("805401000E" + apdu[10:-4]) == 0x6700


def test_wrong_mac2_answers_9302_and_changes_nothing(sample):
    _, t = sample
    _load_init(t)
    assert t.sw(f"805200000B{STAMP}0000000004") == 0x9302
    assert t.ok("805C000204") == hx("00000000")
    assert t.sw("805A0002020000") == 0x9406
    _loaded(t)  # counter still 0000
    assert t.ok("805C000204") == hx("00001000")


def test_wrong_mac1_in_debit_answers_9302(sample):
    _, t = sample
    _loaded(t)
    apdu = _purchase_apdus(t)
    assert t.sw(apdu[:-10] + "00000000" + "08") == 0x9302
    assert t.ok("805C000204") == hx("00001000")


def test_three_mac_failures_block_the_application_permanently(sample):
    _, t = sample
    for expected in (0x9302, 0x9302, 0x9303):
        _load_init(t)
        assert t.sw(f"805200000B{STAMP}0000000004") == expected
    assert t.sw("805C000204") == 0x6A81  # every command but SELECT / GET CHALLENGE / UNBLOCK
    assert t.sw(SELECT_ADF + "00") == 0x6283
    challenge = t.challenge()
    assert t.sw(protected_apdu(0x84, 0x18, 0x00, 0x00, b"", K.app_line, challenge)) == 0x9303


def test_a_good_mac_resets_the_failure_count(sample):
    _, t = sample
    for _ in range(2):
        _load_init(t)
        assert t.sw(f"805200000B{STAMP}0000000004") == 0x9302
    _loaded(t)
    for _ in range(2):
        _load_init(t, random="99999999")
        assert t.sw(f"805200000B{STAMP}0000000004") == 0x9302
    assert t.ok("805C000204") == hx("00001000")


def test_mac_failure_limit_can_be_disabled():
    _, t, _ = sample_card(config=CardConfig(purse_mac_failure_limit=0))
    for _ in range(5):
        _load_init(t)
        assert t.sw(f"805200000B{STAMP}0000000004") == 0x9302
    _loaded(t)


def test_overdraw_update_errors(sample):
    _, t = sample
    t.ok(VERIFY_PIN)
    # raise the limit to 100, spend it all, then lowering the limit would make the balance negative
    t.randoms.push("01020304")
    init = t.ok(f"805004010701{TERM}13")
    assert init[:9] == hx("00000000 0000 000000")
    sk = session_key(K.overdraw, "01020304 0000 8000")
    assert init[15:] == mac(sk, f"00000000 000000 07 {TERM}")
    t.ok(f"805800000E000100{STAMP}{mac(sk, f'000100 07 {TERM} {STAMP}').hex()}04")
    assert t.ok("805C000104") == hx("00000100")
    apdu = _purchase_apdus(t, "00000100", purse=1, tx_type="05")
    t.ok(apdu)
    t.randoms.push("01020305")
    t.ok(f"805004010701{TERM}13")
    sk = session_key(K.overdraw, "01020305 0001 8000")
    assert t.sw(f"805800000E000000{STAMP}{mac(sk, f'000000 07 {TERM} {STAMP}').hex()}04") == 0x9401
    assert t.ok("805C000104") == hx("00000000")


def test_overdraw_update_beyond_max_balance_answers_6985():
    _, t, _ = sample_card(config=CardConfig(max_balance=0x100))
    t.ok(VERIFY_PIN)
    t.randoms.push("01020304")
    t.ok(f"805004010701{TERM}13")
    sk = session_key(K.overdraw, "01020304 0000 8000")
    assert t.sw(f"805800000E000101{STAMP}{mac(sk, f'000101 07 {TERM} {STAMP}').hex()}04") == 0x6985


# -- GET BALANCE / GET TRANSACTION PROOF ----------------------------------------------------------

def test_get_balance_errors(sample):
    _, t = sample
    assert t.sw("805C010204") == 0x6A86
    assert t.sw("805C000304") == 0x6A86
    assert t.sw("805C00020100") == 0x6700
    assert t.sw("805C000208") == 0x6C04


def test_get_transaction_proof_errors(sample):
    _, t = sample
    assert t.sw("805A0002020000") == 0x9406  # nothing done yet
    _loaded(t)
    assert t.sw("805A0002020001") == 0x9406  # wrong counter
    assert t.sw("805A0006020000") == 0x9406  # wrong type
    assert t.sw("805A0008020000") == 0x6A86  # no such type
    assert t.sw("805A0102020000") == 0x6A86
    assert t.sw("805A000203000000") == 0x6700
    assert t.sw("845A0002020000") == 0x6E00
    assert len(t.ok("805A000202000008")) == 8


def test_only_the_last_proof_per_type_is_kept(sample):
    _, t = sample
    _loaded(t, "00000010")
    first = t.ok("805A000202000008")
    _load_init(t, "00000010", random="AABBCCDD")
    t.ok(f"805200000B{STAMP}{_mac2_load('00000010', random='AABBCCDD', counter='0001')}04")
    assert t.sw("805A0002020000") == 0x9406
    assert t.ok("805A000202000108") != first


def test_image_write_failure_answers_6581(sample, tmp_path, monkeypatch):
    card = clone(sample[0], tmp_path / "card.json")
    t = Terminal(card)
    t.randoms = Randoms()
    card.set_random_source(t.randoms)
    t.ok(SELECT_ADF)
    _load_init(t)
    before = (tmp_path / "card.json").read_text()

    def full_disk(text, tick=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(card._store, "write", full_disk)
    assert t.sw(f"805200000B{STAMP}{_mac2_load()}04") == 0x6581
    monkeypatch.undo()
    assert t.ok("805C000204") == hx("00000000")
    assert (tmp_path / "card.json").read_text() == before
