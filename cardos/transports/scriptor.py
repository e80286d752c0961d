"""A card reached through pcsc-tools' ``scriptor``: APDUs written to its stdin, answers read from its stdout.

``scriptor`` only sends hex lines; it computes nothing. With this transport a
cardos front end (``cardos shell --via scriptor``) plays the terminal and the
PSAM — it makes MAC1/MAC2 from the card's answers — while every APDU really
travels through a ``scriptor`` process and pcscd. Its output is kept
(:attr:`ScriptorTransport.lines`) so the caller can show it.

scriptor prints ``> 00 A4 ...`` for the command and ``< <data> SW1 SW2 : meaning``
for the answer, data wrapped every 16 bytes without a prefix on the next lines.
"""
from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time

from .pcsc import TransportError, pick_reader

TIMEOUT = 30.0
_HEX_LINE = re.compile(r"^(?:[0-9A-Fa-f]{2} ?)+$")


class ScriptorTransport:
    backend = "card"

    def __init__(self, spec: str, command: str = "scriptor", timeout: float = TIMEOUT):
        program = shutil.which(command)
        if program is None:
            raise TransportError(f"{command} is not installed (Debian: apt-get install pcsc-tools)")
        self.reader = _reader_name(spec)
        self.label = f"{self.reader} (through scriptor)"
        self.timeout = timeout
        self.lines: list = []  # scriptor's output for the last command
        self._buffer = b""
        self.proc = subprocess.Popen([program, "-u", "-r", self.reader], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = self._line()  # "Using T=1 protocol" once connected
        if not first.startswith("Using "):
            raise TransportError(f"scriptor: unexpected output {first!r}")
        self.atr = self.reset()

    # -- the pipe ------------------------------------------------------------------------------

    def _fail(self, what: str) -> TransportError:
        try:
            self.proc.kill()
            err = self.proc.communicate(timeout=2)[1].decode(errors="replace").strip()
        except Exception:  # noqa: BLE001 - already gone
            err = ""
        detail = err.splitlines()[-1] if err else what
        return TransportError(f"{self.reader}: scriptor: {detail}")

    def _line(self) -> str:
        deadline = time.monotonic() + self.timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"no answer within {self.timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                raise self._fail("stopped")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace").rstrip("\r")

    def _send(self, text: str) -> None:
        try:
            self.proc.stdin.write(text.encode("ascii") + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._fail("stopped") from None

    # -- transport interface -------------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        self._send(apdu.hex().upper())
        self.lines = []
        while True:  # "> 00 A4 ..." echo
            line = self._line()
            self.lines.append(line)
            if line.startswith(">"):
                break
        hex_text = ""
        line = self._line()
        self.lines.append(line)
        if not line.startswith("<"):
            raise self._fail(f"unexpected output {line!r}")
        line = line[1:]
        while True:
            body, sep, _meaning = line.partition(" : ")
            hex_text += " " + body
            if sep:
                break
            if not _HEX_LINE.match(body.strip() or "x"):
                raise self._fail(f"unexpected output {line!r}")
            line = self._line()
            self.lines.append(line)
        try:
            return bytes.fromhex(hex_text.replace(" ", ""))
        except ValueError:
            raise self._fail(f"unreadable answer {hex_text.strip()!r}") from None

    def reset(self, cold: bool = True) -> bytes:
        """scriptor's ``reset`` (a warm reset: SCARD_RESET_CARD); returns the ATR."""
        self._send("reset")
        self.lines = [self._line(), self._line()]  # "> RESET", "< OK: 3B ..."
        status = self.lines[-1]
        if not status.startswith("< OK:"):
            raise TransportError(f"{self.reader}: scriptor reset failed: {status}")
        self.atr = bytes.fromhex(status[len("< OK:"):].replace(" ", ""))
        return self.atr

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _reader_name(spec: str) -> str:
    """The full reader name for scriptor ``-r`` (which wants it exactly) from a name, number or substring."""
    try:
        from smartcard.System import readers

        available = readers()
    except Exception as exc:  # noqa: BLE001 - pcscd not running & co.
        raise TransportError(f"cannot list PC/SC readers ({exc}); is pcscd running?") from None
    return str(pick_reader(spec, available))
