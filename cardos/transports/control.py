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
"""
from __future__ import annotations

import logging
import os
import socket
import stat
import sys
import threading

log = logging.getLogger(__name__)


class ControlServer:
    """Serves the control socket from a background thread."""

    def __init__(self, path: str, slots, images=(), on_stop=None):
        self.path = str(path)
        self.slots = slots
        self.images = list(images)
        self.on_stop = on_stop
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
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rw", encoding="utf-8", newline="\n") as f:
            for line in f:
                try:
                    reply = self.execute(line)
                except Exception as exc:  # noqa: BLE001 - a bad command must not kill the server
                    reply = [f"error: {exc}"]
                f.write("".join(f"{r}\n" for r in reply))
                f.flush()

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
            if self.on_stop:
                self.on_stop()
            return ["ok"]
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
