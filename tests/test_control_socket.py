"""The control socket of ``cardos serve --control`` under a hostile or stuck client (issue 23):
a cap on clients, on the length of a command line, and on silence — real Unix sockets,
against the server class and against a running ``cardos serve`` (no pcscd needed: ``--wait``
keeps it serving the socket while it looks for vpcd)."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from cardos import Card
from cardos.transports import control
from cardos.transports.control import ControlServer
from cardos.transports.vpcd import Slot

from .pcsc_fixtures import free_tcp_port


def connect(path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))  # blocking: waits while the listen backlog is full (with a timeout: EAGAIN)
    sock.settimeout(10)
    return sock


def read_all(sock: socket.socket) -> str:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(4096):
        out += chunk
    return out.decode()


def ask(sock: socket.socket, command: str) -> list[str]:
    sock.sendall(command.encode() + b"\n")
    lines, pending = [], b""
    while not lines or not (lines[-1] == "ok" or lines[-1].startswith("error")):
        chunk = sock.recv(4096)
        assert chunk, f"closed after {lines}"
        pending += chunk
        *done, pending = pending.split(b"\n")
        lines += [d.decode() for d in done]
    return lines


@pytest.fixture
def server(tmp_path):
    """A control server with small limits over one real (unstarted) slot."""
    started = []

    def start(**limits) -> ControlServer:
        slot = Slot(Card.blank(), "127.0.0.1", free_tcp_port())
        srv = ControlServer(tmp_path / "ctl.sock", [slot], ["card.json"], **limits).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.close()


def served_again(srv: ControlServer, timeout: float = 5) -> None:
    """A new client is served within ``timeout`` (a closed client's place is freed by its thread)."""
    deadline = time.monotonic() + timeout
    while True:
        with connect(srv.path) as again:
            try:
                if ask(again, "status")[-1] == "ok":
                    return
            except (AssertionError, OSError):
                pass
        assert time.monotonic() < deadline, "no place for a new client"
        time.sleep(0.05)


def test_clients_beyond_the_cap_get_one_line_and_are_closed(server):
    srv = server(max_clients=2)
    first, second = connect(srv.path), connect(srv.path)
    assert ask(first, "status")[-1] == "ok" and ask(second, "status")[-1] == "ok"
    with connect(srv.path) as third:
        assert read_all(third) == "error: too many control clients (at most 2); try again later\n"
    first.close()
    served_again(srv)
    assert ask(second, "status")[-1] == "ok"  # the connected ones were never disturbed
    second.close()


def test_a_line_longer_than_the_cap_is_refused_and_the_client_closed(server):
    srv = server(max_line=64)
    with connect(srv.path) as client:
        assert ask(client, "status")[-1] == "ok"  # lines below the cap work
        client.sendall(b"x" * 10_000)  # never a newline
        assert read_all(client) == "error: command line longer than 64 bytes; closing\n"
    with connect(srv.path) as client:
        assert ask(client, "insert " + "9" * 50)[-1].startswith("error: no slot 9999")  # under the cap: a command


def test_a_silent_client_is_closed_after_the_idle_timeout(server):
    srv = server(max_clients=1, idle_timeout=0.5)
    with connect(srv.path) as silent:
        started = time.monotonic()
        assert read_all(silent) == "error: nothing for 0.5 s; closing\n"
        assert 0.4 < time.monotonic() - started < 5
    served_again(srv)  # its place is free again


def test_a_client_that_never_reads_its_answers_is_dropped(server):
    srv = server(max_clients=1, idle_timeout=0.5)
    flood = connect(srv.path)
    flood.settimeout(0.2)
    sent = 0
    try:
        while sent < 200_000_000:  # pipeline commands, never read an answer
            sent += flood.send(b"status\n" * 1000)
    except (TimeoutError, BrokenPipeError, ConnectionResetError):
        pass
    assert sent < 50_000_000  # the server stopped taking commands once its answers piled up
    served_again(srv, timeout=10)  # dropped after the timeout: its place is free again
    flood.close()


def _threads_and_rss(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) * 1024


def test_serve_survives_200_clients_and_an_endless_line(serve_process, tmp_path):
    image = tmp_path / "card.json"
    Card.blank().save_as(image).power_off()
    ctl = tmp_path / "ctl.sock"
    served = serve_process(str(image), "--wait", "--vpcd", f"127.0.0.1:{free_tcp_port()}", "--control", str(ctl))
    threads_before, rss_before = _threads_and_rss(served.pid)

    clients, refused = [], 0
    for _ in range(200):  # the issue: 200 clients made 204 threads
        sock = connect(ctl)
        clients.append(sock)
    for sock in clients:
        sock.settimeout(0.5)
        try:
            if sock.recv(200).startswith(b"error: too many control clients"):
                refused += 1
        except TimeoutError:
            pass  # one of the admitted ones: waits for a command
    threads_during, _ = _threads_and_rss(served.pid)
    assert refused == 200 - control.MAX_CLIENTS
    assert threads_during <= threads_before + control.MAX_CLIENTS
    for sock in clients:
        sock.close()

    def endless():  # the issue: one client grew serve from 36 MB to 350 MB
        with connect(ctl) as sock:
            try:
                for _ in range(400):
                    sock.sendall(b"y" * 256 * 1024)
            except OSError:
                pass

    deadline = time.monotonic() + 10
    while len(control.send(str(ctl), "status")) != 2:  # the 200 are gone
        assert time.monotonic() < deadline
        time.sleep(0.1)
    writer = threading.Thread(target=endless)
    writer.start()
    writer.join(30)
    _, rss_after = _threads_and_rss(served.pid)
    assert rss_after - rss_before < 20 * 1024 * 1024, (rss_before, rss_after)
    assert control.send(str(ctl), "status")[-1] == "ok"
    assert control.send(str(ctl), "stop") == ["ok"]
    assert served.wait() == 0
