"""Crash tests: ``cardos serve`` killed with SIGKILL while a terminal works through a real pcscd.

``test_sigkill_during_purchases_loses_nothing`` issues a card (shipped
``city`` profile, TEST key set), loads its EP, serves it with ``cardos serve``
and lets a pyscard terminal (``cardos.terminal``) buy things, one purchase
after another, while a timer kills the server with SIGKILL at a random
moment — at least 20 times (``CARDOS_CRASH_KILLS``). After every kill:

* the image on disk is a valid image, and its EP offline counter says that
  exactly the acknowledged purchases happened — plus at most the one whose
  DEBIT got no answer (committed before the kill, its response lost);
* the server is restarted, the terminal reconnects and asks GET TRANSACTION
  PROOF about that torn purchase (``cardos.terminal.purse.recover``): it
  reports the purchase done exactly when the image holds it, with the MAC2
  the PSAM expected and a TAC that verifies;
* then balance = initial − every acknowledged amount, the counter moved once
  per acknowledged purchase, and the transaction log holds exactly those
  purchases, newest first (amount, type, terminal, time, counter): no lost
  and no phantom transaction.

The kill moments come from a seeded RNG (``CARDOS_CRASH_SEED`` replays a
run); every other kill runs the server with ``--durable`` (fsync: a longer
commit, so kills land inside it more often).

The other tests: try counters, blocked PINs and challenges across SIGKILL
restarts of ``cardos serve`` and across power cycles through pcscd.

Needs the real PC/SC stack (root, ``./dev.sh setup``); see
``tests/pcsc_fixtures.py``. Run alone with
``flock /tmp/cardos-pcscd.lock .venv/bin/python -m pytest tests/test_crash_serve.py``.
"""
from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from datetime import date, datetime, timedelta

from cardos import Card, image
from cardos.apdu import build
from cardos.keyset import load as load_keyset
from cardos.personalize import issue
from cardos.terminal import purse as T
from cardos.terminal.host import LoadHost
from cardos.terminal.psam import PSAM
from cardos.terminal.secure import external_auth_cryptogram

from .pcsc_fixtures import FIRST_PORT, pcsc_connection, reader_name

KEYS = load_keyset("test")
READER = reader_name(FIRST_PORT)
PIN = bytes.fromhex("123456")
POS = bytes.fromhex("0000000000A1")
START = datetime(2026, 5, 1, 8, 0, 0)
INITIAL = 1_000_000
KILLS = int(os.environ.get("CARDOS_CRASH_KILLS", "24"))
LOG_SIZE = 10  # the city profile's 0018 holds the last 10 transactions


def issued_image(path) -> bytes:
    """A city card with INITIAL on its EP; returns the application serial."""
    card = Card.blank().save_as(path)
    card.power_on()
    issue(card, "city", KEYS, {"serial": 4242}, today=date(2026, 5, 1))
    card.power_on()
    serial = T.select_application(card)
    T.load(card, LoadHost(KEYS), INITIAL, terminal=POS, purse=T.EP, serial=serial, when=START)
    card.power_off()
    return serial


def on_disk(path) -> dict:
    """The EP, its log and proofs as the image holds them (validated by the real loader)."""
    _atr, config, _blocked, mf = image.card_state_from_dict(json.loads(path.read_text()))
    adf = mf.children[0x1001]
    ep = adf.children[0x0002]
    return {"balance": ep.balance, "counter": ep.offline_counter, "log": adf.children[0x0018].records,
            "mac_failures": ep.mac_failures, "config": config}


class Server:
    """``cardos serve`` in its own process, killed by PID only."""

    def __init__(self, start, image_path, durable: bool):
        args = [str(image_path), "--vpcd", f"localhost:{FIRST_PORT}", "--timeout", "10"]
        self.proc = start(*args, *(["--durable"] if durable else []))

    def kill(self) -> None:
        if self.proc.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def wait(self) -> None:
        self.proc.proc.wait(10)


def settle(pcscd) -> None:
    """Wait until pcscd has seen the killed card go.

    A card that dies in the middle of an APDU shows as removed at once, but
    pcscd's reader thread only notices at its next poll (every 0.4 s); a new
    card that connects to vpcd before that poll is never seen as inserted
    (the reader stays empty until it is removed again). So: wait for the
    removal, then for two poll periods. (docs/robustness.md)
    """
    pcscd.wait_card(READER, present=False, timeout=10)
    time.sleep(1.0)


def connect(pcscd):
    pcscd.wait_card(READER, present=True, timeout=10)
    deadline = time.monotonic() + 10
    while True:
        try:
            return pcsc_connection(READER)
        except Exception:  # the slot may still be settling after a kill
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def expected_log(acked: list) -> list:
    """The 23-byte records of the last acknowledged purchases, newest first (counter post-increment)."""
    out = []
    for rec in reversed(acked[-LOG_SIZE:]):
        out.append((rec.counter + 1).to_bytes(2, "big") + bytes(3) + rec.amount.to_bytes(4, "big")
                   + bytes((rec.type,)) + rec.terminal + rec.date + rec.time)
    return out


def test_sigkill_during_purchases_loses_nothing(pcscd, serve_process, tmp_path):
    seed = int(os.environ.get("CARDOS_CRASH_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    where = f"(seed {seed}: CARDOS_CRASH_SEED={seed} replays the kill moments)"
    path = tmp_path / "card.json"
    serial = issued_image(path)
    first = on_disk(path)
    assert first["config"].record_counter == "post"
    counter0, balance0 = first["counter"], first["balance"]
    psam = PSAM(KEYS, POS)
    acked: list = []       # TransactionRecords the terminal holds: answered 9000, or recovered
    pending = None         # the purchase whose DEBIT went unanswered
    committed_unacked = False  # … and whether the image holds it
    stats = {"kills": 0, "torn": 0, "torn and done": 0, "purchases": 0}
    when = START

    for kill in range(KILLS):
        server = Server(serve_process, path, durable=bool(kill % 2))
        connection = connect(pcscd)
        try:
            T.select_application(connection)
            if pending is not None:  # the terminal's recovery step (reference §6)
                done = T.recover(connection, pending, aid=None, verifier=psam)
                assert (done is not None) == committed_unacked, \
                    f"kill {kill}: proof says {'done' if done else 'not done'}, image says otherwise {where}"
                if done is not None:
                    acked.append(done)
                    stats["torn and done"] += 1
                pending = None
            assert T.get_balance(connection) == balance0 - sum(r.amount for r in acked), where

            timer = threading.Timer(rng.uniform(0.0, 0.25), server.kill)
            timer.start()
            try:
                while True:
                    when += timedelta(seconds=1)
                    amount = rng.randint(1, 300)
                    acked.append(T.purchase(connection, psam, amount, purse=T.EP, serial=serial, when=when))
                    stats["purchases"] += 1
            except T.TornTransaction as exc:
                pending = exc.pending
                stats["torn"] += 1
            except T.CardMute:
                pass  # killed before the DEBIT left the terminal
            except T.TransactionError as exc:
                assert isinstance(exc.__cause__, Exception) or exc.sw is None, f"{exc} {where}"
            finally:
                timer.join()
        finally:
            try:
                connection.release()
            except Exception:  # the card is gone
                pass
        server.kill()
        server.wait()
        stats["kills"] += 1
        settle(pcscd)

        # The image as the crash left it: the acknowledged purchases, plus at most the torn one.
        state = on_disk(path)
        extra = state["counter"] - counter0 - len(acked)
        assert extra in ((0, 1) if pending else (0,)), \
            f"kill {kill}: {len(acked)} acknowledged, image counts {state['counter'] - counter0} {where}"
        committed_unacked = bool(extra)
        done_amounts = [r.amount for r in acked] + ([pending.amount] if committed_unacked else [])
        assert state["balance"] == balance0 - sum(done_amounts), f"kill {kill}: balance {where}"
        if not committed_unacked:
            assert state["log"][:min(len(acked), LOG_SIZE)] == tuple(expected_log(acked)), \
                f"kill {kill}: transaction log differs from the acknowledged purchases {where}"
        else:  # the newest record is the torn purchase, then the acknowledged ones
            record = state["log"][0]
            assert record[5:9] == pending.amount.to_bytes(4, "big") and record[-7:] == pending.date_time, where
            assert state["log"][1:min(len(acked), LOG_SIZE - 1) + 1] == tuple(expected_log(acked)[:LOG_SIZE - 1])

    # the last torn purchase: one more start to settle it, then the final balance
    server = Server(serve_process, path, durable=False)
    connection = connect(pcscd)
    T.select_application(connection)
    if pending is not None:
        done = T.recover(connection, pending, aid=None, verifier=psam)
        assert (done is not None) == committed_unacked, where
        if done is not None:
            acked.append(done)
            stats["torn and done"] += 1
    balance = T.get_balance(connection)
    connection.release()
    server.kill()
    server.wait()
    settle(pcscd)

    state = on_disk(path)
    assert balance == state["balance"] == balance0 - sum(r.amount for r in acked), where
    assert state["counter"] - counter0 == len(acked), where
    assert [r.counter for r in acked] == list(range(counter0, counter0 + len(acked))), where
    assert state["log"][:min(len(acked), LOG_SIZE)] == tuple(expected_log(acked)), where
    assert all(psam.verify_tac(r) for r in acked), where
    assert stats["kills"] >= 20 and stats["purchases"] > stats["kills"], (stats, where)
    print(f"crash test: {stats} {where}")


# -- try counters, blocks and challenges across SIGKILL restarts --------------------------------

def _transmit(connection):
    def transmit(apdu: bytes) -> bytes:
        data, sw1, sw2 = connection.transmit(list(apdu))
        return bytes(data) + bytes((sw1, sw2))
    return transmit


def _sw(transmit, apdu: bytes) -> int:
    return int.from_bytes(transmit(apdu)[-2:], "big")


def test_try_counters_blocks_and_challenges_survive_sigkill(pcscd, serve_process, tmp_path):
    path = tmp_path / "card.json"
    issued_image(path)
    select = build(0x00, 0xA4, 0x04, 0x00, T.CITY_AID, 0)
    wrong_pin = build(0x00, 0x20, 0x00, 0x00, bytes.fromhex("999999"))
    right_pin = build(0x00, 0x20, 0x00, 0x00, PIN)

    def session():
        server = Server(serve_process, path, durable=False)
        connection = connect(pcscd)
        t = _transmit(connection)
        t(select)
        return server, connection, t

    def crash(server, connection):
        server.kill()  # SIGKILL: no clean shutdown
        server.wait()
        try:
            connection.release()
        except Exception:
            pass
        settle(pcscd)

    server, connection, t = session()
    assert _sw(t, wrong_pin) == 0x63C2                              # 3 tries in the city profile
    challenge = t(bytes.fromhex("0084000004"))[:-2]                # a challenge for the MF master key
    crash(server, connection)

    server, connection, t = session()
    assert _sw(t, wrong_pin) == 0x63C1                              # the counter survived the kill
    # the challenge died with the process (a card loses it with power)
    t(bytes.fromhex("00A40000023F00"))
    mf_master = KEYS.card_key("card_master", 1, bytes.fromhex("3100000000004242"))
    assert _sw(t, build(0x00, 0x82, 0x00, 0x00, external_auth_cryptogram(mf_master, challenge))) == 0x6984
    # a power cycle through pcscd clears a challenge as well
    from smartcard.scard import SCARD_UNPOWER_CARD
    challenge = t(bytes.fromhex("0084000004"))[:-2]
    connection.reconnect(disposition=SCARD_UNPOWER_CARD)
    t = _transmit(connection)
    assert _sw(t, build(0x00, 0x82, 0x00, 0x00, external_auth_cryptogram(mf_master, challenge))) == 0x6984
    t(select)
    assert _sw(t, wrong_pin) == 0x63C0                              # now blocked
    crash(server, connection)

    server, connection, t = session()
    assert _sw(t, right_pin) == 0x6983                              # blocked stays blocked
    crash(server, connection)
    assert on_disk(path)["balance"] == INITIAL
