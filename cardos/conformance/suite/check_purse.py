"""The electronic purse (reference §3): GET BALANCE, load, purchase, cash withdraw, unload,
overdraw limit, composite (CAPP) purchase, the one-shot session, the transaction log — on the
issued city application (EP 0002 free, ED 0001 behind the PIN), with the issuer key set.

Every MAC1 / MAC2 / MAC3 / TAC is recomputed from the key set (:mod:`cardos.conformance.purse`).
Tests that send a wrong MAC finish with a good transaction (a card may block the application
after consecutive purse MAC failures, reference §8 open question 6)."""
import pytest

from cardos.conformance.apdus import (CYCLIC, LOAD_KEY, apdu, create_binary, create_purse, create_records, read_record,
                                      select_name)
from cardos.conformance.baseline import PIN
from cardos.conformance.purse import (CAPP, DATE_TIME, ED, ED_LOAD, ED_PURCHASE, EP, EP_LOAD, EP_PURCHASE,
                                      LOAD_TERMINAL, OVERDRAW, POS_TERMINAL, UNLOAD, WITHDRAW, u32)

from .conftest import CITY_AID

pytestmark = pytest.mark.family("purse")
CAPP_RECORD = bytes.fromhex("012E") + b"\x01" + bytes(range(45))  # tag 01, length 46: lock flag, data


def fund(purse, amount, which=EP):
    """Make sure the purse holds at least ``amount``."""
    balance = purse.balance(which)
    if balance < amount:
        purse.load(amount - balance + 1000, which)


def check_log(card, init, amount, tx_type, command, limit=0):
    """Record 1 of the transaction log (cyclic SFI 18, 23 bytes, reference §3.12)."""
    record = card.ok(read_record(0x18, 1, 0x17), "read the newest transaction record", length=23)
    counter = int.from_bytes(record[0:2], "big")
    card.check(counter in (init.counter, init.counter + 1), command,
               f"logged counter {counter}, INITIALIZE returned {init.counter} (§3.12: that value or the next)")
    card.check(int.from_bytes(record[2:5], "big") == limit, command,
               f"logged overdraw limit {record[2:5].hex().upper()}, expected {limit:06X}")
    if tx_type != OVERDRAW:
        card.check(record[5:9] == u32(amount), command, f"logged amount {record[5:9].hex().upper()}, expected {amount}")
    card.check(record[9] == tx_type, command, f"logged type {record[9]:02X}, expected {tx_type:02X}")
    card.check(record[10:16] == init.terminal, command, f"logged terminal {record[10:16].hex().upper()}")
    card.check(record[16:23] == DATE_TIME, command, f"logged date/time {record[16:23].hex().upper()}")


# -- GET BALANCE (§3.10) ------------------------------------------------------------------------

@pytest.mark.command("GET BALANCE")
def test_balance(purse, card):
    balance = purse.balance(EP)
    init = purse.initialize(0x00, EP, 1)
    card.check(init.balance == balance, "GET BALANCE", f"GET BALANCE {balance}, INITIALIZE FOR LOAD {init.balance}")


@pytest.mark.command("GET BALANCE")
def test_ed_balance_needs_the_pin(purse, card):
    card.expect(apdu(0x80, 0x5C, 0x00, ED, le=4), "6982", why="ED without VERIFY")
    purse.verify_pin(PIN)
    purse.balance(ED)


@pytest.mark.command("GET BALANCE")
def test_balance_of_no_purse(purse, card):
    card.expect(apdu(0x80, 0x5C, 0x00, 0x03, le=4), "6A86", "6A82")


# -- INITIALIZE FOR LOAD / CREDIT FOR LOAD (§3.2, §3.3) -------------------------------------------

@pytest.mark.command("INITIALIZE FOR LOAD")
def test_initialize_for_load(purse, card):
    for key_index in (1, 2):
        purse.initialize(0x00, EP, 500, key_index)  # MAC1, key version and algorithm id checked


@pytest.mark.command("INITIALIZE FOR LOAD")
def test_initialize_for_load_errors(purse, card):
    card.expect(purse.init_apdu(0x00, EP, 100, 9, LOAD_TERMINAL), "9403", why="no load key 09")
    card.expect(purse.init_apdu(0x00, 0x03, 100, 1, LOAD_TERMINAL), "6A86", why="P2 03")
    card.expect(apdu(0x80, 0x50, 0x00, EP, bytes(10), 0x10), "6700", why="Lc 0A")


@pytest.mark.command("INITIALIZE FOR LOAD")
def test_ed_load_needs_the_pin(purse, card):
    card.expect(purse.init_apdu(0x00, ED, 100, 1, LOAD_TERMINAL), "6982", why="ED without VERIFY")


@pytest.mark.command("INITIALIZE FOR LOAD")
def test_initialize_without_a_usable_purse(scratch, card):
    """In a DF of the suite with a load key 3F/01: no purse (6A82), a binary file where the purse
    should be (6981), a purse whose TAC key is missing (refused; the reference lists 6283)."""
    scratch.key_file().key(LOAD_KEY, 0x01, bytes(range(16)), b3=0x01, b4=0x00)
    load = apdu(0x80, 0x50, 0x00, EP, b"\x01" + u32(100) + LOAD_TERMINAL, 0x10)
    card.expect(load, "6A82", why="no EP in this DF")
    scratch.create(create_binary(0x0002, 8), "a binary file 0002")
    card.expect(load, "6981", why="0002 is no purse")
    scratch.create(create_records(0x0018, CYCLIC, 3, 23), "log 0018")
    scratch.create(create_purse(0x0001, tac_key=0x00, log_sfi=0x18), "ED 0001 with TAC key 34/00 (absent)")
    card.refused(apdu(0x80, 0x50, 0x00, ED, b"\x01" + u32(100) + LOAD_TERMINAL, 0x10), "a purse without TAC key")


@pytest.mark.command("GET RESPONSE")
def test_get_response_keeps_the_session(purse, card):
    """A T=0 terminal sends INITIALIZE without Le and fetches the answer with GET RESPONSE; the
    session must survive that transport step (§3.1), or no T=0 reader could load a card."""
    init = purse.initialize(0x00, EP, 25, t0=True)
    purse.credit(init)
    fund(purse, 25)
    debit = purse.initialize(0x01, EP, 25, t0=True)
    purse.debit(debit)


@pytest.mark.command("INITIALIZE FOR LOAD")
def test_abandoned_initialize_changes_nothing(purse, card):
    """A reader may send INITIALIZE FOR LOAD only to read balance and counter (NFSee does)."""
    first = purse.initialize(0x00, EP, 100)
    purse.balance(EP)
    again = purse.initialize(0x00, EP, 100)
    card.check((again.balance, again.counter) == (first.balance, first.counter), "INITIALIZE FOR LOAD",
               "an abandoned INITIALIZE FOR LOAD changed the balance or the counter")


@pytest.mark.command("CREDIT FOR LOAD")
def test_load_ep(purse, card):
    init, _tac = purse.load(1234, EP)
    check_log(card, init, 1234, EP_LOAD, "CREDIT FOR LOAD")
    after = purse.initialize(0x00, EP, 1)
    card.check(after.counter == init.counter + 1, "CREDIT FOR LOAD",
               f"online counter {after.counter} after a load with counter {init.counter}")


@pytest.mark.command("CREDIT FOR LOAD")
def test_load_ed(purse, card):
    purse.verify_pin(PIN)
    init, _tac = purse.load(500, ED)
    check_log(card, init, 500, ED_LOAD, "CREDIT FOR LOAD", limit=purse.initialize(0x01, ED, 0).limit)


@pytest.mark.command("CREDIT FOR LOAD")
def test_load_with_the_second_key(purse, card):
    purse.load(200, EP, key_index=2)


@pytest.mark.command("CREDIT FOR LOAD")
def test_credit_with_a_wrong_mac2(purse, card):
    init = purse.initialize(0x00, EP, 700)
    card.expect(purse.credit_apdu(init, mac2=bytes(4)), "9302")
    card.check(purse.balance(EP) == init.balance, "CREDIT FOR LOAD", "the balance changed after 9302")
    purse.load(1, EP)


@pytest.mark.command("CREDIT FOR LOAD")
def test_credit_without_initialize(purse, card):
    card.expect(apdu(0x80, 0x52, 0x00, 0x00, DATE_TIME + bytes(4), 4), "6901")


@pytest.mark.command("CREDIT FOR LOAD")
def test_credit_twice(purse, card):
    init = purse.initialize(0x00, EP, 10)
    purse.credit(init)
    card.expect(purse.credit_apdu(init), "6901", why="the same CREDIT again")
    card.check(purse.balance(EP) == init.balance + 10, "CREDIT FOR LOAD", "loaded twice")


@pytest.mark.command("CREDIT FOR LOAD")
def test_another_command_ends_the_session(purse, card):
    """§3.1: the completing command must follow its INITIALIZE directly, else 6901."""
    init = purse.initialize(0x00, EP, 10)
    card.challenge()
    card.expect(purse.credit_apdu(init), "6901")
    card.check(purse.balance(EP) == init.balance, "CREDIT FOR LOAD", "the balance changed")


@pytest.mark.command("CREDIT FOR LOAD")
def test_credit_bad_p1p2(purse, card):
    init = purse.initialize(0x00, EP, 10)
    card.refused(apdu(0x80, 0x52, 0x01, 0x00, purse.credit_apdu(init)[5:-1], 4), "CREDIT FOR LOAD with P1 01")
    card.check(purse.balance(EP) == init.balance, "CREDIT FOR LOAD", "the balance changed")


@pytest.mark.command("CREDIT FOR LOAD")
def test_repeated_wrong_mac2(city, purse, card):
    """A card may block the application after consecutive purse MAC failures (9303, reference §3.13,
    §8 open question 6). Either way a wrong MAC2 never loads, and after 9303 the purse is closed."""
    city.dirty = True  # this test may block the application: issue the card again afterwards
    blocked = False
    for _ in range(8):
        init = purse.initialize(0x00, EP, 5)
        sw = card.expect(purse.credit_apdu(init, mac2=bytes(4)), "9302", "9303").sw
        if sw == 0x9303:
            blocked = True
            break
        card.check(purse.balance(EP) == init.balance, "CREDIT FOR LOAD", "a wrong MAC2 loaded")
    if blocked:
        purse_ok = card.send(purse.init_apdu(0x00, EP, 5, 1, LOAD_TERMINAL))
        card.check(purse_ok.sw != 0x9000, "CREDIT FOR LOAD", "9303 but the purse still initializes")
        return
    purse.load(1, EP)


@pytest.mark.command("CREDIT FOR LOAD")
def test_credit_wrong_length(purse, card):
    purse.initialize(0x00, EP, 10)
    card.expect(apdu(0x80, 0x52, 0x00, 0x00, DATE_TIME + bytes(3), 4), "6700")


@pytest.mark.command("CREDIT FOR LOAD")
def test_load_never_overflows_the_balance(purse, card):
    """Reference §8 open question 5: the card may refuse at INITIALIZE or at CREDIT, but a balance
    must never wrap past FFFFFFFF."""
    fund(purse, 1)
    balance = purse.balance(EP)
    amount = 0xFFFFFFFF - balance + 1
    r = card.send(purse.init_apdu(0x00, EP, amount, 1, LOAD_TERMINAL))
    if r.sw != 0x9000:
        return
    init = purse.initialize(0x00, EP, amount)
    card.refused(purse.credit_apdu(init), "a load past FFFFFFFF")
    purse.load(1, EP)


# -- INITIALIZE FOR PURCHASE / DEBIT FOR PURCHASE (§3.4, §3.5) --------------------------------------

@pytest.mark.command("DEBIT FOR PURCHASE")
def test_purchase_ep(purse, card):
    fund(purse, 300)
    init, _tac, _mac2 = purse.purchase(250, EP)
    check_log(card, init, 250, EP_PURCHASE, "DEBIT FOR PURCHASE", limit=init.limit)
    after = purse.initialize(0x01, EP, 1)
    card.check(after.counter == init.counter + 1, "DEBIT FOR PURCHASE",
               f"offline counter {after.counter} after a purchase with counter {init.counter}")


@pytest.mark.command("DEBIT FOR PURCHASE")
def test_purchase_with_the_second_key(purse, card):
    fund(purse, 10)
    purse.purchase(10, EP, key_index=2)


@pytest.mark.command("INITIALIZE FOR PURCHASE")
def test_ed_purchase_needs_the_pin(purse, card):
    card.expect(purse.init_apdu(0x01, ED, 1, 1, POS_TERMINAL), "6982", why="ED without VERIFY")
    purse.verify_pin(PIN)
    fund(purse, 100, ED)
    init, _tac, _mac2 = purse.purchase(100, ED)
    check_log(card, init, 100, ED_PURCHASE, "DEBIT FOR PURCHASE", limit=init.limit)


@pytest.mark.command("INITIALIZE FOR PURCHASE")
def test_insufficient_balance(purse, card):
    balance = purse.balance(EP)
    card.expect(purse.init_apdu(0x01, EP, balance + 1, 1, POS_TERMINAL), "9401")


@pytest.mark.command("INITIALIZE FOR PURCHASE")
def test_spend_the_whole_balance(purse, card):
    fund(purse, 1)
    purse.purchase(purse.balance(EP), EP)
    card.check(purse.balance(EP) == 0, "DEBIT FOR PURCHASE", "balance not 0")
    card.expect(purse.init_apdu(0x01, EP, 1, 1, POS_TERMINAL), "9401", why="1 more from an empty purse")
    card.ok(purse.init_apdu(0x01, EP, 0, 1, POS_TERMINAL), "a purchase of 0 from an empty purse")


@pytest.mark.command("INITIALIZE FOR PURCHASE")
def test_initialize_for_purchase_errors(purse, card):
    card.expect(purse.init_apdu(0x01, EP, 1, 9, POS_TERMINAL), "9403", why="no purchase key 09")
    card.expect(purse.init_apdu(0x01, 0x03, 1, 1, POS_TERMINAL), "6A86", why="P2 03")
    card.expect(apdu(0x80, 0x50, 0x01, EP, bytes(10), 0x0F), "6700", why="Lc 0A")


@pytest.mark.command("DEBIT FOR PURCHASE")
def test_debit_with_a_wrong_mac1(purse, card):
    fund(purse, 50)
    init = purse.initialize(0x01, EP, 50)
    tsn, _sk, _mac1, _mac2, _tac = purse.debit_parts(init)
    card.expect(apdu(0x80, 0x54, 0x01, 0x00, tsn + DATE_TIME + bytes(4), 8), "9302")
    card.check(purse.balance(EP) == init.balance, "DEBIT FOR PURCHASE", "the balance changed after 9302")
    purse.purchase(1, EP)


@pytest.mark.command("DEBIT FOR PURCHASE")
def test_debit_without_initialize(purse, card):
    card.expect(apdu(0x80, 0x54, 0x01, 0x00, bytes(4) + DATE_TIME + bytes(4), 8), "6901")


@pytest.mark.command("DEBIT FOR PURCHASE")
def test_debit_wrong_length(purse, card):
    fund(purse, 1)
    purse.initialize(0x01, EP, 1)
    card.expect(apdu(0x80, 0x54, 0x01, 0x00, bytes(4) + DATE_TIME, 8), "6700")


# -- cash withdraw (§3.6), unload (§3.7), overdraw limit (§3.8): ED only ----------------------------

@pytest.mark.command("DEBIT FOR CASH WITHDRAW")
def test_cash_withdraw(purse, card):
    purse.verify_pin(PIN)
    fund(purse, 300, ED)
    init, _tac, _mac2 = purse.purchase(300, ED, kind=0x02)
    check_log(card, init, 300, WITHDRAW, "DEBIT FOR CASH WITHDRAW", limit=init.limit)


@pytest.mark.command("INITIALIZE FOR CASH WITHDRAW")
def test_cash_withdraw_is_ed_only(purse, card):
    fund(purse, 10)
    card.refused(purse.init_apdu(0x02, EP, 10, 1, POS_TERMINAL), "cash withdraw from the EP")


@pytest.mark.command("DEBIT FOR UNLOAD")
def test_unload(purse, card):
    purse.verify_pin(PIN)
    fund(purse, 400, ED)
    init = purse.initialize(0x05, ED, 400)
    purse.debit_unload(init)
    after = purse.balance(ED)
    card.check(after == init.balance - 400, "DEBIT FOR UNLOAD", f"balance {after} after unloading 400 of {init.balance}")
    check_log(card, init, 400, UNLOAD, "DEBIT FOR UNLOAD", limit=purse.initialize(0x01, ED, 0).limit)


@pytest.mark.command("DEBIT FOR UNLOAD")
def test_unload_errors(purse, card):
    purse.verify_pin(PIN)
    fund(purse, 20, ED)
    card.expect(apdu(0x80, 0x54, 0x03, 0x00, DATE_TIME + bytes(4), 4), "6901", why="no INITIALIZE FOR UNLOAD")
    init = purse.initialize(0x05, ED, 20)
    card.expect(apdu(0x80, 0x54, 0x03, 0x00, DATE_TIME + bytes(4), 4), "9302", why="wrong MAC2")
    card.check(purse.balance(ED) == init.balance, "DEBIT FOR UNLOAD", "the balance changed after 9302")
    purse.debit_unload(purse.initialize(0x05, ED, 20))


@pytest.mark.command("INITIALIZE FOR UNLOAD")
def test_unload_more_than_the_balance(purse, card):
    purse.verify_pin(PIN)
    balance = purse.balance(ED)
    card.expect(purse.init_apdu(0x05, ED, balance + 1, 1, LOAD_TERMINAL), "9401")


@pytest.mark.command("INITIALIZE FOR UNLOAD")
def test_unload_is_ed_only(purse, card):
    fund(purse, 10)
    card.refused(purse.init_apdu(0x05, EP, 10, 1, LOAD_TERMINAL), "unload from the EP")


@pytest.mark.command("UPDATE OVERDRAW LIMIT")
def test_update_overdraw_limit(purse, card):
    """§3.8: MAC1 / TAC checked; INITIALIZE FOR PURCHASE then reports the new limit. The balance may
    move with the limit ("adjusts balance"); the TAC must verify for the balance the card reports."""
    purse.verify_pin(PIN)
    fund(purse, 100, ED)
    init = purse.initialize(0x04, ED, key_index=1)
    new_limit = init.limit + 1000
    _tac, after = purse.update_limit(init, new_limit)
    card.check(after in (init.balance, init.balance + 1000), "UPDATE OVERDRAW LIMIT",
               f"balance {after} after raising the limit by 1000 from balance {init.balance}")
    check_log(card, init, 0, OVERDRAW, "UPDATE OVERDRAW LIMIT", limit=new_limit)
    shown = purse.initialize(0x01, ED, 0)
    card.check(shown.limit == new_limit, "INITIALIZE FOR PURCHASE", f"reports limit {shown.limit}, set {new_limit}")
    back = purse.initialize(0x04, ED, key_index=1)
    purse.update_limit(back, init.limit)


@pytest.mark.command("UPDATE OVERDRAW LIMIT")
def test_update_overdraw_limit_errors(purse, card):
    purse.verify_pin(PIN)
    fund(purse, 10, ED)
    limit_mac = apdu(0x80, 0x58, 0x00, 0x00, bytes(3) + DATE_TIME + bytes(4), 4)
    card.expect(limit_mac, "6901", why="no INITIALIZE FOR UPDATE")
    init = purse.initialize(0x04, ED, key_index=1)
    card.expect(apdu(0x80, 0x58, 0x00, 0x00, (init.limit + 1).to_bytes(3, "big") + DATE_TIME + bytes(4), 4), "9302",
                why="wrong MAC2")
    card.check(purse.initialize(0x01, ED, 0).limit == init.limit, "UPDATE OVERDRAW LIMIT", "the limit changed")
    purse.update_limit(purse.initialize(0x04, ED, key_index=1), init.limit)


@pytest.mark.command("INITIALIZE FOR UPDATE")
def test_overdraw_limit_is_ed_only(purse, card):
    card.refused(purse.init_apdu(0x04, EP, 0, 1, LOAD_TERMINAL), "overdraw limit of the EP")


# -- composite (CAPP) purchase (§3.9) -----------------------------------------------------------------

def capp_cache(record=CAPP_RECORD, tag=0x01, sfi=0x1A):
    return apdu(0x80, 0xDC, tag, sfi << 3, record)


@pytest.mark.command("DEBIT FOR CAPP PURCHASE")
def test_capp_purchase(purse, card):
    fund(purse, 150)
    init = purse.initialize(0x03, EP, 150)
    card.ok(capp_cache(), "UPDATE CAPP DATA CACHE")
    purse.debit(init)
    card.expect(read_record(0x1A, 1), data=CAPP_RECORD, why="the composite record after the purchase")
    card.check(purse.balance(EP) == init.balance - 150, "DEBIT FOR CAPP PURCHASE", "balance")
    check_log(card, init, 150, CAPP, "DEBIT FOR CAPP PURCHASE", limit=init.limit)


@pytest.mark.command("DEBIT FOR CAPP PURCHASE")
def test_failed_capp_debit_discards_the_cache(purse, card):
    fund(purse, 20)
    before = card.ok(read_record(0x1A, 1))
    other = before[:3] + bytes(b ^ 0xFF for b in before[3:])
    init = purse.initialize(0x03, EP, 20)
    card.ok(capp_cache(other), "UPDATE CAPP DATA CACHE")
    tsn, _sk, _mac1, _mac2, _tac = purse.debit_parts(init)
    card.expect(apdu(0x80, 0x54, 0x01, 0x00, tsn + DATE_TIME + bytes(4), 8), "9302")
    card.expect(read_record(0x1A, 1), data=before, why="the composite record after a failed debit")
    card.check(purse.balance(EP) == init.balance, "DEBIT FOR CAPP PURCHASE", "the balance changed after 9302")
    purse.purchase(1, EP)


@pytest.mark.command("UPDATE CAPP DATA CACHE")
def test_capp_cache_needs_a_capp_session(purse, card):
    card.expect(capp_cache(), "6901", why="no session")
    fund(purse, 1)
    purse.initialize(0x01, EP, 1)
    card.refused(capp_cache(), "in a plain purchase session")


@pytest.mark.command("UPDATE CAPP DATA CACHE")
def test_capp_cache_errors(purse, card):
    fund(purse, 3)
    for why, command, sws in (("no file with SFI 1E", capp_cache(sfi=0x1E), ("6A82",)),
                              ("a binary file (0015)", capp_cache(sfi=0x15), ("6981",)),
                              ("no record with tag 7F", capp_cache(tag=0x7F), ("6A83",))):
        purse.initialize(0x03, EP, 1)
        card.expect(command, *sws, why=why)


@pytest.mark.command("UPDATE CAPP DATA CACHE")
def test_capp_cache_keeps_the_record_length(purse, card):
    fund(purse, 1)
    before = card.ok(read_record(0x1A, 1))
    init = purse.initialize(0x03, EP, 1)
    card.refused(capp_cache(CAPP_RECORD[:-1]), "a composite record one byte shorter")
    card.expect(read_record(0x1A, 1), data=before)
    card.check(purse.balance(EP) == init.balance, "UPDATE CAPP DATA CACHE", "the balance changed")


@pytest.mark.command("INITIALIZE FOR CAPP PURCHASE")
def test_capp_is_ep_only(purse, card):
    purse.verify_pin(PIN)
    fund(purse, 1, ED)
    card.refused(purse.init_apdu(0x03, ED, 1, 1, POS_TERMINAL), "CAPP purchase from the ED")


@pytest.mark.command("INITIALIZE FOR PURCHASE")
def test_purse_commands_outside_the_application(purse, card):
    card.ok("00A40000023F0000")
    card.refused(apdu(0x80, 0x5C, 0x00, EP, le=4), "GET BALANCE in the MF (no purse there)")
    card.ok(select_name(CITY_AID))
    purse.balance(EP)


@pytest.mark.command("READ RECORD")
def test_purse_file_is_no_record_file(purse, card):
    """PERM (§1.2): READ RECORD does not apply to a purse file."""
    card.expect(read_record(0x02, 1, 0), "6981")
