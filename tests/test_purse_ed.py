"""ED (passbook) transactions byte-exact: load, purchase, cash withdraw, unload, overdraw-limit
update; the transaction-detail record and its counter (pre/post); proofs of every type."""
import pytest

from cardos.config import CardConfig
from cardos.sample import SampleKeys

from .conftest import hx
from .purse_util import VERIFY_PIN, mac, sample_card, session_key, tac_of

K = SampleKeys()
TERM = "0102030405AB"
HOST = "20260502 101500"  # host date/time (load, unload, update)
POS = "20260502 101600"   # terminal date/time (purchase, withdraw)


def _ed(config=None):
    card, t, _ = sample_card(config=config)
    t.ok(VERIFY_PIN)
    return card, t


def _load(t, amount: str, counter: str, balance: str, random="A1A2A3A4"):
    t.randoms.push(random)
    init = t.ok(f"805000010B01{amount}{TERM}10")
    sk = session_key(K.load, f"{random}{counter}8000")
    assert init == hx(f"{balance}{counter}0100{random}") + mac(sk, f"{balance}{amount}01{TERM}")
    response = t.ok(f"805200000B{HOST}{mac(sk, f'{amount}01{TERM}{HOST}').hex()}04")
    return sk, response


def _debit(t, p1: int, tx_type: str, amount: str, counter: str, tsn="00000007", random="B1B2B3B4"):
    t.randoms.push(random)
    init = t.ok(f"8050{p1:02X}010B01{amount}{TERM}0F")
    sk = session_key(K.purchase, f"{random}{counter}{tsn[4:]}")
    response = t.ok(f"805401000F{tsn}{POS}{mac(sk, f'{amount}{tx_type}{TERM}{POS}').hex()}08")
    assert response == tac_of(K.tac, f"{amount}{tx_type}{TERM}{tsn}{POS}") + mac(sk, amount)
    return init, response


def test_ed_load_tac_and_record():
    _, t = _ed()
    sk, tac = _load(t, "00002710", "0000", "00000000")
    assert tac == tac_of(K.tac, f"00002710 0000 00002710 01 {TERM} {HOST}")
    assert t.ok("805C000104") == hx("00002710")
    assert t.ok("00B201C417") == hx(f"0001 000000 00002710 01 {TERM} {HOST}")
    assert t.ok("805A000102000008") == mac(sk, f"00002710 01 {TERM} {HOST}") + tac


def test_ed_purchase_and_cash_withdraw_share_the_offline_counter():
    _, t = _ed()
    _load(t, "00002710", "0000", "00000000")
    init, r1 = _debit(t, 0x01, "05", "00000064", "0000")
    assert init == hx("00002710 0000 000000 01 00 B1B2B3B4")
    init, r2 = _debit(t, 0x02, "04", "000003E8", "0001", tsn="00000008", random="C1C2C3C4")
    assert init == hx("000026AC 0001 000000 01 00 C1C2C3C4")
    assert t.ok("805C000104") == hx("000022C4")
    assert t.ok("00B201C417") == hx(f"0002 000000 000003E8 04 {TERM} {POS}")
    assert t.ok("00B202C417") == hx(f"0001 000000 00000064 05 {TERM} {POS}")
    assert t.ok("805A000502000008") == r1[4:] + r1[:4]  # MAC2 ‖ TAC
    assert t.ok("805A000402000108") == r2[4:] + r2[:4]


def test_ed_unload_answers_mac3_and_keeps_tac_for_the_proof():
    _, t = _ed()
    _load(t, "00002710", "0000", "00000000")
    t.randoms.push("D1D2D3D4")
    init = t.ok(f"805005010B01000003E8{TERM}10")
    sk = session_key(K.unload, "D1D2D3D4 0001 8000")
    assert init == hx("00002710 0001 01 00 D1D2D3D4") + mac(sk, f"00002710 000003E8 03 {TERM}")
    mac3 = t.ok(f"805403000B{HOST}{mac(sk, f'000003E8 03 {TERM} {HOST}').hex()}04")
    covered = f"00002328 0001 000003E8 03 {TERM} {HOST}"
    assert mac3 == mac(sk, covered)
    assert t.ok("805C000104") == hx("00002328")
    assert t.ok("805A000302000108") == mac3 + tac_of(K.tac, covered)
    assert t.ok("00B201C417") == hx(f"0002 000000 000003E8 03 {TERM} {HOST}")


def test_overdraw_limit_update_moves_the_balance_and_logs_the_new_limit():
    _, t = _ed()
    _load(t, "00000100", "0000", "00000000")
    t.randoms.push("E1E2E3E4")
    init = t.ok(f"805004010701{TERM}13")
    sk = session_key(K.overdraw, "E1E2E3E4 0001 8000")
    assert init == hx("00000100 0001 000000 01 00 E1E2E3E4") + mac(sk, f"00000100 000000 07 {TERM}")
    tac = t.ok(f"805800000E 000500 {HOST} {mac(sk, f'000500 07 {TERM} {HOST}').hex()} 04")
    assert tac == tac_of(K.tac, f"00000600 0001 000500 07 {TERM} {HOST}")
    assert t.ok("805C000104") == hx("00000600")  # the balance includes the overdraw credit
    assert t.ok("00B201C417") == hx(f"0002 000500 00000000 07 {TERM} {HOST}")
    # purchases now see the limit; spending into the overdraft is allowed up to it
    init, _ = _debit(t, 0x01, "05", "00000600", "0000")
    assert init[:9] == hx("00000600 0000 000500")
    assert t.ok("00B201C417") == hx(f"0001 000500 00000600 05 {TERM} {POS}")
    assert t.ok("805C000104") == hx("00000000")


@pytest.mark.parametrize("mode, counter", [("post", "0001"), ("pre", "0000")])
def test_record_counter_is_configurable(mode, counter):
    _, t = _ed(CardConfig(record_counter=mode))
    _load(t, "00000001", "0000", "00000000")
    assert t.ok("00B201C417")[:2] == hx(counter)


def test_log_keeps_ten_records_newest_first():
    _, t = _ed()
    for n in range(12):
        _load(t, "00000001", f"{n:04X}", f"{n:08X}", random=f"{n:08X}")
    records = [t.ok(f"00B2{i:02X}C417") for i in range(1, 11)]
    assert [r[:2] for r in records] == [hx(f"{n:04X}") for n in range(12, 2, -1)]
    assert t.sw("00B20BC417") == 0x6A83
