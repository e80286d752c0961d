"""The control socket of ``cardos serve --control PATH``.

A Unix stream socket (mode 0600) that takes one command per line and
answers zero or more lines followed by ``ok`` or ``error: …``:

``status``
    one line per slot: index, address, state, presence, APDU count, image
``remove [N]`` / ``insert [N]`` / ``toggle [N]``
    pull the card of slot N (all slots without N) out of its reader, or put it back
``tear [N]``
    the next APDU is executed but the card is pulled before its answer
    leaves (the terminal sees the card vanish mid-command); it stays out
    until ``insert``
``stop``
    end ``cardos serve`` (as SIGTERM does)

From a shell: ``python -m cardos.transports.control PATH remove 1``.

Limits (a stuck or hostile client must not grow ``serve``): at most
``MAX_CLIENTS`` clients at a time (one more is answered ``error: too many
control clients …`` and closed), a command line of at most ``MAX_LINE``
bytes (a longer one is answered with an error and the connection closed),
and a client that sends nothing for ``IDLE_TIMEOUT`` seconds, or does not
read its answers, is disconnected. Nothing is buffered beyond one line.
"""
from __future__ import annotations

import logging
import os
import socket
import stat
import sys
import threading
import time

log = logging.getLogger(__name__)

MAX_CLIENTS = 8
MAX_LINE = 1024  # bytes in one command line, newline included
IDLE_TIMEOUT = 60.0  # seconds a client may stay silent (or leave an answer unread)
_REFUSE_TIMEOUT = 1.0  # seconds to hand a client its last line
_DRAIN_LIMIT = 1 << 20  # bytes read and dropped after that line, so closing does not reset it


class _LineTooLong(Exception):
    pass


def _last_word(conn: socket.socket, line: str, wait: float) -> None:
    """Send ``line`` before the connection is closed, so that the client can read it.

    Closing with unread input resets the connection and the line would be lost, so
    what the client still sends is read and dropped: at most ``_DRAIN_LIMIT`` bytes,
    for at most ``wait`` seconds (0: only what has already arrived).
    """
    conn.settimeout(_REFUSE_TIMEOUT)
    try:
        conn.sendall(f"{line}\n".encode())
        conn.shutdown(socket.SHUT_WR)
        if wait:
            conn.settimeout(wait)
        else:
            conn.setblocking(False)
        deadline = time.monotonic() + wait
        drained = 0
        while drained < _DRAIN_LIMIT:
            chunk = conn.recv(65536)
            if not chunk or time.monotonic() > deadline:
                break
            drained += len(chunk)
    except OSError:  # nothing more has arrived (non-blocking), or the client is gone
        pass


def _lines(conn: socket.socket, max_line: int):
    """The command lines a client sends, each at most ``max_line`` bytes; ends at EOF."""
    pending = bytearray()
    while True:
        newline = pending.find(b"\n")
        if newline >= 0:
            line = bytes(pending[:newline])
            del pending[:newline + 1]
            yield line.decode("utf-8", "replace")
            continue
        if len(pending) >= max_line:
            raise _LineTooLong()
        chunk = conn.recv(max_line - len(pending))
        if not chunk:
            return
        pending += chunk


class ControlServer:
    """Serves the control socket from a background thread."""

    def __init__(self, path: str, slots, images=(), on_stop=None, *, max_clients: int = MAX_CLIENTS,
                 max_line: int = MAX_LINE, idle_timeout: float = IDLE_TIMEOUT):
        self.path = str(path)
        self.slots = slots
        self.images = list(images)
        self.on_stop = on_stop
        self.max_clients = max_clients
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self._free = threading.BoundedSemaphore(max_clients)  # one per client thread
        self._sock = self._bind(self.path)
        self._thread = threading.Thread(target=self._accept_loop, name="cardos control", daemon=True)
        self._closed = False

    @staticmethod
    def _bind(path: str) -> socket.socket:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None:
            if not stat.S_ISSOCK(mode):
                raise OSError(f"{path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
                raise OSError(f"{path} is in use by another `cardos serve`")
            except (ConnectionRefusedError, FileNotFoundError):
                os.unlink(path)  # stale socket of a killed server
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        sock.listen(4)
        return sock

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if not self._free.acquire(blocking=False):
                self._refuse(conn)
                continue
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _refuse(self, conn: socket.socket) -> None:
        """One line for a client over the limit, without waiting on it (the accept loop runs this)."""
        log.info("control socket: a client refused (already %d connected)", self.max_clients)
        with conn:
            _last_word(conn, f"error: too many control clients (at most {self.max_clients}); try again later", 0)

    def _client(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(self.idle_timeout)  # recv and sendall alike: a silent or unread client goes
                self._serve_client(conn)
        finally:
            self._free.release()

    def _serve_client(self, conn: socket.socket) -> None:
        try:
            for line in _lines(conn, self.max_line):
                try:
                    reply = self.execute(line)
                except Exception as exc:  # noqa: BLE001 - a bad command must not kill the server
                    reply = [f"error: {exc}"]
                conn.sendall("".join(f"{r}\n" for r in reply).encode())
                if line.lower().split()[:1] == ["stop"] and self.on_stop:
                    self.on_stop()  # after the "ok" has left: serve may end at once
        except _LineTooLong:
            _last_word(conn, f"error: command line longer than {self.max_line} bytes; closing", _REFUSE_TIMEOUT)
        except TimeoutError:
            _last_word(conn, f"error: nothing for {self.idle_timeout:g} s; closing", _REFUSE_TIMEOUT)
        except OSError:
            pass  # the client went away

    def execute(self, line: str) -> list[str]:
        """Run one command line; returns the reply lines (the last is ``ok`` or ``error: …``)."""
        words = line.split()
        if not words:
            return ["error: empty command"]
        command, args = words[0].lower(), words[1:]
        if command == "status":
            out = []
            for i, slot in enumerate(self.slots):
                image = self.images[i] if i < len(self.images) else ""
                out.append(f"{i} {slot.label} {slot.state} {'present' if slot.present else 'absent'} "
                           f"apdus={slot.apdus} {image}".rstrip())
            return out + ["ok"]
        if command == "stop":
            return ["ok"]  # the client's thread stops serve once the answer is sent
        if command not in ("remove", "insert", "toggle", "tear"):
            return [f"error: unknown command {command!r} (status, remove, insert, toggle, tear, stop)"]
        if len(args) > 1 or (args and not args[0].isdigit()):
            return [f"error: usage: {command} [SLOT]"]
        if args:
            index = int(args[0])
            if index >= len(self.slots):
                return [f"error: no slot {index} (slots 0-{len(self.slots) - 1})"]
            targets = [self.slots[index]]
        else:
            targets = self.slots
        for slot in targets:
            if command == "remove":
                slot.remove()
            elif command == "insert":
                slot.insert()
            elif command == "toggle":
                slot.toggle()
            else:
                slot.tear()
        return ["ok"]


def send(path: str, command: str, timeout: float = 10.0) -> list[str]:
    """Send one command to a control socket; returns the reply lines (``ok``/``error`` last)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(command.strip().encode() + b"\n")
        lines, pending = [], b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            pending += chunk
            *done, pending = pending.split(b"\n")
            lines += [d.decode() for d in done]
            if lines and (lines[-1] == "ok" or lines[-1].startswith("error")):
                break
        return lines


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("usage: python -m cardos.transports.control SOCKET COMMAND [SLOT]", file=sys.stderr)
        return 2
    try:
        lines = send(argv[0], " ".join(argv[1:]))
    except OSError as exc:
        print(f"cardos control: cannot reach {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 3
    for line in lines:
        print(line)
    return 0 if lines and lines[-1] == "ok" else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
