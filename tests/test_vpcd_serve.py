"""``cardos serve`` as a process: signals, control socket, several slots, SIGKILL and
restart, diagnostics and usage errors. Tests that need pcscd use the session's
own pcscd (tests/pcsc_fixtures.py); the diagnostics for a missing pcscd do not."""
from __future__ import annotations

import signal
import socket
import struct
import subprocess
import threading

import pytest

from cardos import Card
from cardos.terminal import purse as tx
from cardos.terminal.host import LoadHost
from cardos.terminal.psam import PSAM
from cardos.transports import control

from .pcsc_fixtures import (
    FIRST_PORT,
    HOST_TERMINAL,
    POS_TERMINAL,
    ROOT,
    cardos_command,
    free_tcp_port,
    issuer_keys,
    purse_image,
    reader_name,
)

READER0 = reader_name(FIRST_PORT)
READER1 = reader_name(FIRST_PORT + 1)
CHALLENGE = [0x00, 0x84, 0x00, 0x00, 0x04]


def blank_image(path) -> str:
    Card.blank().save_as(path)
    return str(path)


def run_serve(*args, env=None, timeout=30) -> subprocess.CompletedProcess:
    import os
    return subprocess.run(cardos_command("serve", *args), cwd=ROOT, capture_output=True, text=True, check=False, timeout=timeout,
                          env={**os.environ, **(env or {})})


# -- with pcscd ---------------------------------------------------------------------------------

def test_sigterm_removes_the_card_and_exits_0(serve_process, vpcd, pcscd, tmp_path):
    image = blank_image(tmp_path / "a.json")
    served = serve_process(image)
    assert served.stdout_lines == [f"{image}: serving at localhost:{FIRST_PORT} (pid {served.pid})"]
    pcscd.wait_card(READER0, present=True)
    connection = vpcd.connect(READER0)
    assert connection.transmit(CHALLENGE)[1:] == (0x90, 0x00)
    served.signal(signal.SIGTERM)
    assert served.wait() == 0
    pcscd.wait_card(READER0, present=False)
    assert "removing the card" in served.stderr_text()


def test_two_cards_in_one_process_sigusr1_and_the_control_socket(serve_process, vpcd, pcscd, tmp_path):
    a, b = blank_image(tmp_path / "a.json"), blank_image(tmp_path / "b.json")
    ctl = str(tmp_path / "serve.ctl")
    served = serve_process(a, b, "--control", ctl, ready_lines=2)
    assert served.stdout_lines[1].startswith(f"{b}: serving at localhost:{FIRST_PORT + 1}")
    for reader in (READER0, READER1):
        pcscd.wait_card(reader, present=True)

    served.signal(signal.SIGUSR1)                       # every card out ...
    for reader in (READER0, READER1):
        pcscd.wait_card(reader, present=False)
    served.signal(signal.SIGUSR1)                       # ... and back in
    for reader in (READER0, READER1):
        pcscd.wait_card(reader, present=True)

    assert control.send(ctl, "remove 1") == ["ok"]      # one slot only
    pcscd.wait_card(READER1, present=False)
    status = control.send(ctl, "status")
    assert status[-1] == "ok"
    assert status[0].startswith(f"0 localhost:{FIRST_PORT} inserted present apdus=")
    assert status[1].startswith(f"1 localhost:{FIRST_PORT + 1} removed absent apdus=0 {b}")
    connection = vpcd.connect(READER0)                  # the other card is still there
    assert connection.transmit(CHALLENGE)[1:] == (0x90, 0x00)
    assert control.send(ctl, "insert 1") == ["ok"]
    pcscd.wait_card(READER1, present=True)
    assert control.send(ctl, "bogus")[-1].startswith("error: unknown command")
    assert control.send(ctl, "remove 7")[-1] == "error: no slot 7 (slots 0-1)"

    assert control.main([ctl, "stop"]) == 0
    assert served.wait() == 0
    for reader in (READER0, READER1):
        pcscd.wait_card(reader, present=False)


def test_two_processes_in_two_slots(serve_process, vpcd, pcscd, tmp_path):
    serve_process(blank_image(tmp_path / "a.json"))
    serve_process(blank_image(tmp_path / "b.json"), "--vpcd", f"localhost:{FIRST_PORT + 1}")
    for reader in (READER0, READER1):
        pcscd.wait_card(reader, present=True)
        assert vpcd.connect(reader).transmit(CHALLENGE)[1:] == (0x90, 0x00)


def test_serve_killed_and_restarted_keeps_every_acknowledged_transaction(serve_process, vpcd, pcscd, tmp_path):
    """Load and purchase through pcscd while ``cardos serve`` is SIGKILLed at an
    arbitrary moment: after a restart the purse holds exactly the acknowledged
    transactions, plus the one in flight if GET TRANSACTION PROOF shows the card
    completed it."""
    image = str(purse_image(tmp_path / "purse.json"))
    host, psam = LoadHost(issuer_keys()), PSAM(issuer_keys(), POS_TERMINAL)
    balance = 0          # what the terminal has seen acknowledged
    acknowledged = []

    def transactions(connection, stop):
        nonlocal balance
        tx.select_application(connection)
        while not stop.is_set():
            record = tx.load(connection, host, 500, terminal=HOST_TERMINAL)
            acknowledged.append(record)
            balance = record.balance
            record = tx.purchase(connection, psam, 125)
            acknowledged.append(record)
            balance = record.balance

    for round_ in range(3):
        served = serve_process(image)
        pcscd.wait_card(READER0, present=True)
        connection = vpcd.connect(READER0)
        tx.select_application(connection)
        assert tx.get_balance(connection) == balance, f"round {round_}: acknowledged balance lost"
        stop = threading.Event()
        errors = []

        def run(connection=connection, stop=stop, errors=errors):
            try:
                transactions(connection, stop)
            except Exception as exc:  # noqa: BLE001 - the card vanished mid-transaction
                errors.append(exc)
        worker = threading.Thread(target=run)
        worker.start()
        while len(acknowledged) < 4 * (round_ + 1):  # let a few go through, then kill in the middle of one
            worker.join(0.01)
            assert worker.is_alive(), errors
        served.kill()                                 # SIGKILL: no clean-up at all
        worker.join(10)
        assert not worker.is_alive() and errors
        pending = errors[0].pending if isinstance(errors[0], tx.TornTransaction) else None

        served = serve_process(image)                 # restart on the same image
        pcscd.wait_card(READER0, present=True)
        connection.reconnect()
        if pending is not None:                       # the in-flight one: did the card complete it?
            record = tx.recover(connection, pending, verifier=host if pending.type == 0x02 else psam)
            if record is not None:
                acknowledged.append(record)
                balance = record.balance
        tx.select_application(connection)
        assert tx.get_balance(connection) == balance
        served.signal(signal.SIGTERM)
        assert served.wait() == 0
        pcscd.wait_card(READER0, present=False)
    assert len(acknowledged) >= 12
    counters = [r.counter for r in acknowledged if r.type == 0x06]
    assert counters == list(range(len(counters)))     # no purchase lost or doubled


def test_a_busy_slot_is_reported(vpcd, tmp_path):
    vpcd.serve(Card.blank())                          # the slot is taken
    run = run_serve(blank_image(tmp_path / "b.json"), "--timeout", "1")
    assert run.returncode == 3
    assert run.stderr.count("\n") == 1
    assert f"vpcd slot localhost:{FIRST_PORT} is busy" in run.stderr and "use another slot" in run.stderr


def test_a_port_that_is_no_vpcd_slot_is_reported(pcscd, tmp_path):
    port = free_tcp_port()
    run = run_serve(blank_image(tmp_path / "a.json"), "--vpcd", f"localhost:{port}")
    assert run.returncode == 3
    assert run.stderr == (f"cardos serve: error: nothing listens on localhost:{port}: the vpcd slots are on "
                          f"port(s) 35963, 35964 (/etc/reader.conf.d/vpcd); use --vpcd localhost:35963\n")


# -- without pcscd --------------------------------------------------------------------------------

def test_no_pcscd_is_one_line_with_the_fix_and_exit_code_3(tmp_path):
    """Run where pcscd cannot be reached: its socket (PCSCLITE_CSOCK_NAME, which
    pcsc-lite clients honour too) does not exist."""
    run = run_serve(blank_image(tmp_path / "a.json"), "--vpcd", f"localhost:{free_tcp_port()}",
                    env={"PCSCLITE_CSOCK_NAME": str(tmp_path / "nothing.comm")})
    assert run.returncode == 3
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1
    assert "pcscd is not running" in run.stderr and "start it with `pcscd` as root" in run.stderr


def test_wait_mode_keeps_trying_until_vpcd_is_there(serve_process, tmp_path):
    port = free_tcp_port()
    served = serve_process(blank_image(tmp_path / "a.json"), "--wait", "--vpcd", f"127.0.0.1:{port}",
                           env={"PCSCLITE_CSOCK_NAME": str(tmp_path / "nothing.comm")})
    assert served.stdout_lines[0].endswith(f"waiting for vpcd at 127.0.0.1:{port} (pid {served.pid})")
    with socket.create_server(("127.0.0.1", port)) as listener:   # "pcscd" appears
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            conn.sendall(b"\x00\x01\x04")
            assert conn.recv(64)[2:] == Card.blank().atr
            conn.sendall(b"\x00\x07" + bytes.fromhex("00A40000023F00"))
            assert conn.recv(64) == struct.pack(">H", 2) + b"\x61\x17"
    served.signal(signal.SIGINT)
    assert served.wait() == 0


def test_one_image_is_served_by_one_process_only(serve_process, tmp_path):
    image = blank_image(tmp_path / "a.json")
    env = {"PCSCLITE_CSOCK_NAME": str(tmp_path / "nothing.comm")}
    first = serve_process(image, "--wait", "--vpcd", f"127.0.0.1:{free_tcp_port()}", env=env)
    run = run_serve(image, "--vpcd", f"127.0.0.1:{free_tcp_port()}", env=env)
    assert run.returncode == 2
    assert f"in use by another process (pid {first.pid}, cardos serve)" in run.stderr


@pytest.mark.parametrize("args, message", [
    (["A", "B", "C", "--vpcd", "h:1", "--vpcd", "h:2"], "3 image(s) but 2 --vpcd option(s)"),
    (["A", "A"], "the same image twice"),
    (["A", "--vpcd", "localhost:http"], "bad port"),
    (["A", "B", "--vpcd", "h:1", "--vpcd", "h:1"], "two images for the same vpcd slot"),
])
def test_usage_errors_exit_2(args, message, tmp_path):
    run = run_serve(*[str(tmp_path / a) if len(a) == 1 else a for a in args])
    assert run.returncode == 2
    assert message in run.stderr


def test_a_missing_image_exits_2(tmp_path):
    run = run_serve(str(tmp_path / "missing.json"))
    assert run.returncode == 2
    assert "no such card image" in run.stderr
    assert list(tmp_path.iterdir()) == []  # no lock file left behind
