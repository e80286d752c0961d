"""A live, decoded APDU trace: what a terminal sends to an emulated card, as it happens.

``cardos serve --trace FILE`` / ``-v`` and the in-process pyscard reader
(``register(card, trace=FILE)``) write one line per command and one per
answer, each with a timestamp, plus the card's power and presence events;
vpcd's ~30 ATR polls a second never appear. ``cardos decode FILE`` reads
the file back::

    cardos trace of city.card, started 2026-12-03 08:10:00 UTC+00:00
    2026-12-03T08:10:00.512  card inserted
    2026-12-03T08:10:01.120  power on
    2026-12-03T08:10:01.234  > 00 A4 04 00 | 09 | A0 00 00 00 03 86 98 07 01  SELECT (name)
    2026-12-03T08:10:01.235  < 6F 31 84 09 … | 90 00  Normal processing  0.4 ms

With several cards (``cardos serve A B``) each line names its slot after
the time (``[localhost:35964]``). Key values of WRITE KEY (and whatever
else :func:`cardos.redact.apdu_hex` masks) are shown as ``*``. The file is
created with mode 0600 and flushed line by line, so ``tail -f`` follows it
and a killed server loses nothing.
"""
from __future__ import annotations

import os
import threading
import time
from datetime import datetime

from ..decoder import decode_command, decode_response, describe_sw
from ..privatefile import open_private
from ..redact import apdu_hex
from ..scripting.report import _data_groups, command_lines


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when).isoformat(timespec="milliseconds")


def _masked(text: str, masked_hex: str) -> str:
    """``text`` (spaced, ``|``-split hex of an APDU) with its hex digits replaced in order by ``masked_hex``."""
    digits = iter(masked_hex)
    out = [next(digits, c) if c in "0123456789ABCDEF" else c for c in text]
    return "".join(out)


def command_text(command: bytes) -> str:
    """``00 A4 00 00 | 02 | 3F 00  SELECT (FID)``: the split command (secrets masked) and its name."""
    decoded = decode_command(command, show_keys=True)
    split = " ".join(command_lines(decoded))
    masked = apdu_hex(command)
    if masked != command.hex().upper():
        if sum(c in "0123456789ABCDEF" for c in split) == len(masked):
            split = _masked(split, masked)
        else:  # the split lost or added bytes: show the masked APDU unsplit
            split = " ".join(masked[i:i + 2] for i in range(0, len(masked), 2))
    return f"{split}  {decoded.title()}"


def response_text(command: bytes, response: bytes, seconds: float | None) -> str:
    """``6F 10 … | 90 00  Normal processing  0.4 ms``: the split answer, its SW and what it means."""
    if len(response) < 2:
        return "(no answer)"
    sw = int.from_bytes(response[-2:], "big")
    groups = _data_groups(decode_response(command, response[:-2]))
    tail = f"{sw >> 8:02X} {sw & 0xFF:02X}  {describe_sw(sw)}"
    if seconds is not None:
        tail += f"  {seconds * 1000:.1f} ms"
    return f"{' '.join(groups)} | {tail}" if groups else tail


class ApduTrace:
    """Writes trace lines to text streams (a trace file, stderr); safe to share between slot threads.

    ``labelled``: name the slot or reader on every line (several cards in one trace).
    """

    def __init__(self, streams, *, labelled: bool = False, owned=()):
        self.streams = list(streams)
        self.labelled = labelled
        self._owned = list(owned)  # streams this trace opened and closes
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path=None, *, echo=None, title: str = "", labelled: bool = False) -> ApduTrace:
        """A trace into a new file ``path`` (mode 0600, truncated) and/or the stream ``echo`` (stderr for ``-v``).

        Raises ``OSError`` when the file cannot be created.
        """
        streams, owned = [], []
        if path is not None:
            fd = open_private(path)  # 0600 even over an old file, never through a planted link
            stream = os.fdopen(fd, "w", encoding="utf-8", buffering=1)
            streams.append(stream)
            owned.append(stream)
        if echo is not None:
            streams.append(echo)
        trace = cls(streams, labelled=labelled, owned=owned)
        if path is not None and title:
            header = f"cardos trace of {title}, started {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M:%S %Z')}"
            trace._write([header], only=owned)
        return trace

    def _write(self, lines: list[str], only=None) -> None:
        text = "".join(f"{line}\n" for line in lines)
        with self._lock:
            for stream in only if only is not None else self.streams:
                try:
                    stream.write(text)
                    stream.flush()
                except (OSError, ValueError):  # a full disk or closed stderr must not stop the card
                    pass

    def _prefix(self, when: float, where: str) -> str:
        return f"{_stamp(when)}  [{where}]" if self.labelled and where else _stamp(when)

    def exchange(self, command: bytes, response: bytes, seconds: float, where: str = "") -> None:
        """One command and its answer; ``seconds``: how long the card took."""
        command = bytes(command)
        done = time.time()
        self._write([f"{self._prefix(done - seconds, where)}  > {command_text(command)}",
                     f"{self._prefix(done, where)}  < {response_text(command, bytes(response), seconds)}"])

    def event(self, what: str, where: str = "") -> None:
        """A power or presence event: ``power on``, ``power off``, ``reset``, ``card inserted``, ``card removed``."""
        self._write([f"{self._prefix(time.time(), where)}  {what}"])

    def close(self) -> None:
        with self._lock:
            for stream in self._owned:
                try:
                    stream.close()
                except OSError:
                    pass
            self.streams = [s for s in self.streams if s not in self._owned]
            self._owned = []
