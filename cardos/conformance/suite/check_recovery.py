"""GET TRANSACTION PROOF and torn transactions (reference §3.11, §6).

On every target: a power cycle between INITIALIZE and the completing command (the transaction
must not happen, its proof is 9406), and a completed transaction whose answer the terminal lost
(the proof gives its MAC and TAC back). On the emulator in this process also: power cut at every
write point of the completing command (balance, counter, log and proof stay consistent)."""
import pytest

from cardos.conformance.apdus import apdu, read_record, select_name
from cardos.conformance.channel import CardMute
from cardos.conformance.purse import CAPP, DATE_TIME, EP, EP_LOAD, EP_PURCHASE

from .check_purse import CAPP_RECORD, capp_cache, fund
from .conftest import CITY_AID

pytestmark = pytest.mark.family("purse recovery")


def reselect(card):
    card.ok(select_name(CITY_AID), "select the city application again")


@pytest.mark.command("GET TRANSACTION PROOF")
def test_proof_of_a_load(purse, card):
    init, tac = purse.load(300, EP)
    proof = purse.proof(EP_LOAD, init.counter)
    card.check(proof is not None and proof[1] == tac, "GET TRANSACTION PROOF",
               f"proof {proof!r} of load {init.counter}: expected its TAC {tac.hex().upper()}")


@pytest.mark.command("GET TRANSACTION PROOF")
def test_proof_of_a_purchase(purse, card):
    fund(purse, 40)
    init, tac, mac2 = purse.purchase(40, EP)
    proof = purse.proof(EP_PURCHASE, init.counter)
    card.check(proof == (mac2, tac), "GET TRANSACTION PROOF",
               f"proof {proof!r} of purchase {init.counter}: expected MAC2 ‖ TAC {(mac2 + tac).hex().upper()}")


@pytest.mark.command("GET TRANSACTION PROOF")
def test_no_proof_of_an_unknown_transaction(purse, card):
    init = purse.initialize(0x00, EP, 1)
    card.expect(apdu(0x80, 0x5A, 0x00, EP_LOAD, (init.counter + 5).to_bytes(2, "big"), 8), "9406")


@pytest.mark.command("CREDIT FOR LOAD")
def test_power_cycle_between_initialize_and_credit(purse, card):
    init = purse.initialize(0x00, EP, 77)
    card.power_cycle()
    reselect(card)
    card.expect(purse.credit_apdu(init), "6901", why="CREDIT FOR LOAD after a power cycle")
    card.check(purse.balance(EP) == init.balance, "CREDIT FOR LOAD", "the balance changed")
    card.check(purse.proof(EP_LOAD, init.counter) is None, "GET TRANSACTION PROOF",
               "a proof for a load that never happened")
    again = purse.initialize(0x00, EP, 77)
    card.check(again.counter == init.counter, "INITIALIZE FOR LOAD", "the counter moved without a transaction")
    purse.credit(again)


@pytest.mark.command("DEBIT FOR PURCHASE")
def test_power_cycle_between_initialize_and_debit(purse, card):
    fund(purse, 60)
    init = purse.initialize(0x01, EP, 60)
    tsn, _sk, mac1, _mac2, _tac = purse.debit_parts(init)
    card.power_cycle()
    reselect(card)
    card.expect(apdu(0x80, 0x54, 0x01, 0x00, tsn + DATE_TIME + mac1, 8), "6901",
                why="DEBIT FOR PURCHASE after a power cycle")
    card.check(purse.balance(EP) == init.balance, "DEBIT FOR PURCHASE", "the balance changed")
    card.check(purse.proof(EP_PURCHASE, init.counter) is None, "GET TRANSACTION PROOF",
               "a proof for a purchase that never happened")


@pytest.mark.command("GET TRANSACTION PROOF")
def test_lost_answer_of_a_load(purse, card):
    """The card completed the load but the terminal never saw the TAC: after a power cycle the
    proof returns it (§6)."""
    init = purse.initialize(0x00, EP, 55)
    card.raw(purse.credit_apdu(init))  # the answer is "lost"
    card.power_cycle()
    reselect(card)
    card.check(purse.balance(EP) == init.balance + 55, "CREDIT FOR LOAD", "the load did not happen")
    proof = purse.proof(EP_LOAD, init.counter)
    card.check(proof is not None and proof[1] == purse.load_tac(init), "GET TRANSACTION PROOF",
               f"proof {proof!r}: expected the load's TAC {purse.load_tac(init).hex().upper()}")


@pytest.mark.command("GET TRANSACTION PROOF")
def test_lost_answer_of_a_purchase(purse, card):
    fund(purse, 35)
    init = purse.initialize(0x01, EP, 35)
    tsn, _sk, mac1, mac2, tac = purse.debit_parts(init)
    card.raw(apdu(0x80, 0x54, 0x01, 0x00, tsn + DATE_TIME + mac1, 8))
    card.power_cycle()
    reselect(card)
    proof = purse.proof(EP_PURCHASE, init.counter)
    card.check(proof == (mac2, tac), "GET TRANSACTION PROOF",
               f"proof {proof!r}: expected MAC2 ‖ TAC {(mac2 + tac).hex().upper()}")


# -- power cut at every write point (emulator in this process) ------------------------------------

def cut_everywhere(emulator_card, card, purse, run_once, check_after):
    """Arm a power cut at write point 1, 2, … of the completing command until it completes."""
    cuts = 0
    for point in range(1, 64):
        prepared = run_once()
        emulator_card.arm_power_cut(point)
        try:
            card.raw(prepared["apdu"])
        except CardMute:
            cuts += 1
            card.power_cycle()
            reselect(card)
            check_after(prepared)
            continue
        check_after(prepared)
        break
    card.check(cuts > 0, "power cut", "the command had no write point to cut at")


@pytest.mark.command("CREDIT FOR LOAD")
def test_power_cut_during_credit(emulator_card, purse, card):
    def run_once():
        init = purse.initialize(0x00, EP, 10)
        return {"init": init, "apdu": purse.credit_apdu(init)}

    def check_after(p):
        init = p["init"]
        balance = purse.balance(EP)
        proof = purse.proof(EP_LOAD, init.counter)
        if balance == init.balance:
            card.check(proof is None, "CREDIT FOR LOAD", "balance unchanged but a proof exists")
        else:
            card.check(balance == init.balance + 10, "CREDIT FOR LOAD", f"balance {balance} after a torn load")
            card.check(proof is not None and proof[1] == purse.load_tac(init), "GET TRANSACTION PROOF",
                       "the load happened but its proof does not give its TAC")
    cut_everywhere(emulator_card, card, purse, run_once, check_after)


@pytest.mark.command("DEBIT FOR PURCHASE")
def test_power_cut_during_debit(emulator_card, purse, card):
    fund(purse, 200)

    def run_once():
        init = purse.initialize(0x01, EP, 5)
        tsn, _sk, mac1, mac2, tac = purse.debit_parts(init)
        return {"init": init, "apdu": apdu(0x80, 0x54, 0x01, 0x00, tsn + DATE_TIME + mac1, 8), "proof": (mac2, tac)}

    def check_after(p):
        init = p["init"]
        balance = purse.balance(EP)
        proof = purse.proof(EP_PURCHASE, init.counter)
        if balance == init.balance:
            card.check(proof is None, "DEBIT FOR PURCHASE", "balance unchanged but a proof exists")
        else:
            card.check(balance == init.balance - 5, "DEBIT FOR PURCHASE", f"balance {balance} after a torn purchase")
            card.check(proof == p["proof"], "GET TRANSACTION PROOF", "the purchase happened but its proof differs")
    cut_everywhere(emulator_card, card, purse, run_once, check_after)


@pytest.mark.command("DEBIT FOR CAPP PURCHASE")
def test_power_cut_during_capp_debit(emulator_card, purse, card):
    """Balance and composite record change together or not at all (§6)."""
    fund(purse, 200)
    records = [CAPP_RECORD, CAPP_RECORD[:3] + bytes(45)]

    def run_once():
        before = card.ok(read_record(0x1A, 1))
        new = records[0] if before != records[0] else records[1]
        init = purse.initialize(0x03, EP, 3)
        card.ok(capp_cache(new), "UPDATE CAPP DATA CACHE")
        tsn, _sk, mac1, _mac2, _tac = purse.debit_parts(init)
        return {"init": init, "before": before, "new": new,
                "apdu": apdu(0x80, 0x54, 0x01, 0x00, tsn + DATE_TIME + mac1, 8)}

    def check_after(p):
        balance = purse.balance(EP)
        record = card.ok(read_record(0x1A, 1))
        done = balance == p["init"].balance - 3
        card.check(done or balance == p["init"].balance, "DEBIT FOR CAPP PURCHASE", f"balance {balance}")
        card.check(record == (p["new"] if done else p["before"]), "DEBIT FOR CAPP PURCHASE",
                   f"composite record {'not ' if done else ''}written although the balance "
                   f"{'changed' if done else 'did not change'}")
        card.check((purse.proof(CAPP, p["init"].counter) is not None) == done, "GET TRANSACTION PROOF",
                   "the proof does not match what happened")
    cut_everywhere(emulator_card, card, purse, run_once, check_after)
