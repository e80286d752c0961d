"""What every ``cardos`` subcommand shares on the terminal: colour, progress, help.

* :func:`use_color` — colour only on a terminal, never with ``--no-color`` or
  when ``NO_COLOR`` is set (https://no-color.org); :class:`Style` paints.
* :func:`progress` — a one-line progress display on stderr for long work
  (issuing many cards, benchmarks, conformance runs); only when stderr is a
  terminal, silent otherwise, so logs and pipes stay clean::

      from cardos.ui import progress

      with progress(len(cards), "issuing") as bar:
          for card in cards:
              ...
              bar.advance(note=str(card))

* :func:`add_reader_option`, :func:`add_color_option` — the same ``-r/--reader``
  and ``--no-color`` options wherever a command takes them.
* :func:`finish_parser` — the help layout of every subcommand (paragraphs
  wrapped, indented example lines kept) and its ``examples:`` section from
  :data:`EXAMPLES`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

# -- colour -----------------------------------------------------------------------------------

def use_color(stream, flag: bool | None = None) -> bool:
    """Colour only on a terminal, never with ``--no-color`` (``flag=False``) or ``NO_COLOR`` set.

    >>> import io
    >>> use_color(io.StringIO())
    False
    """
    if flag is False or os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


class Style:
    """``Style(on)("1;31", text)`` wraps ``text`` in an ANSI colour when ``on``."""

    def __init__(self, on: bool):
        self.on = on

    def __call__(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on and text else text

    def sw(self, sw: int, text: str) -> str:
        """Green for success (90XX, 61XX), yellow for warnings (62XX, 63XX), red otherwise."""
        hi = sw >> 8
        code = "32" if hi in (0x90, 0x61) else ("33" if hi in (0x62, 0x63) else "31")
        return self(code, text)


def add_color_option(parser) -> None:
    parser.add_argument("--no-color", action="store_true",
                        help="no colour (also when NO_COLOR is set; colour is only used on a terminal anyway)")


def add_reader_option(parser, help: str | None = None, required: bool = False) -> None:
    """``-r/--reader NAME``: a PC/SC reader by exact name, number or unique substring (as ``opensc-tool -r``)."""
    parser.add_argument("-r", "--reader", metavar="NAME", required=required,
                        help=help or "a PC/SC reader: exact name, number (0, 1, ...) or a unique part of its name "
                                     "(e.g. 'PCD 00 01'), as opensc-tool -r")


# -- progress -----------------------------------------------------------------------------------

class Progress:
    """A progress line on a terminal: ``label [#####.....] 42/100 3.1 s, 4 s left  note``.

    ``enabled=None`` (default) means: only when ``stream`` is a terminal.
    Redraws at most ten times a second; :meth:`close` clears the line.
    """

    WIDTH = 24
    INTERVAL = 0.1

    def __init__(self, total: int | None, label: str = "", stream=None, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.total = total if total and total > 0 else None
        self.label = label
        self.done = 0
        self.note = ""
        self.enabled = (enabled if enabled is not None
                        else bool(getattr(self.stream, "isatty", lambda: False)()))
        self.started = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if note is not None:
            self.note = note
        self._draw()

    def set(self, done: int, note: str | None = None) -> None:
        self.done = done
        if note is not None:
            self.note = note
        self._draw()

    def text(self) -> str:
        elapsed = time.monotonic() - self.started
        head = f"{self.label} " if self.label else ""
        if self.total:
            filled = min(self.WIDTH, self.WIDTH * self.done // self.total)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            left = ""
            if 0 < self.done < self.total:
                left = f", {elapsed * (self.total - self.done) / self.done:.0f} s left"
            line = f"{head}[{bar}] {self.done}/{self.total} {elapsed:.1f} s{left}"
        else:
            line = f"{head}{self.done} {elapsed:.1f} s"
        return f"{line}  {self.note}" if self.note else line

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn < self.INTERVAL and self.done != self.total:
            return
        self._drawn = now
        line = self.text()
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns or 80
        except (OSError, ValueError, AttributeError):
            columns = 80
        line = line[:max(columns - 1, 10)]
        self.stream.write("\r" + line + " " * max(0, self._width - len(line)))
        self.stream.flush()
        self._width = len(line)

    def write(self, text: str, stream=None) -> None:
        """Print a line (to ``stream``, default stdout) without tearing the progress line."""
        stream = stream if stream is not None else sys.stdout
        had = self._width
        self.close()
        print(text, file=stream, flush=self.enabled)
        if had:
            self._draw(force=True)

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def __enter__(self):
        self._draw(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: int | None, label: str = "", stream=None, enabled: bool | None = None) -> Progress:
    """A :class:`Progress` (use it as a context manager)."""
    return Progress(total, label, stream, enabled)


# -- help -------------------------------------------------------------------------------------

class HelpFormatter(argparse.HelpFormatter):
    """Wraps the paragraphs of descriptions and epilogs, but keeps lines that
    start with white space (examples) exactly as written."""

    def _fill_text(self, text, width, indent):
        out = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.split("\n")
            if any(line.startswith(" ") for line in lines[1:]) or paragraph.startswith(" "):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(super()._fill_text(" ".join(lines), width, indent))
        return "\n\n".join(out)


# Examples shown by ``cardos COMMAND --help`` (tests parse each one with the real parser).
EXAMPLES: dict = {
    "new": ["cardos new city.card                       # a blank card (transport key FF x 8)"],
    "demo": ["cardos demo                                # in-process reader, nothing to set up",
             "cardos demo --image demo.card              # keep the demo card",
             "cardos demo -r 'PCD 00 00'                 # a blank card served by `cardos serve`"],
    "serve": ["cardos serve city.card                     # in reader 'Virtual PCD 00 00' until Ctrl-C",
              "cardos serve a.card b.card                 # two cards, two readers",
              "cardos serve city.card --control /tmp/city.ctl   # remove/insert/tear on demand"],
    "settle": ["cardos settle records.jsonl --keys issuer.json"],
    "keys": ["cardos keys new issuer.json                # random 3DES master keys (--sm4, --test)",
             "cardos keys show issuer.json               # roles and key check values"],
    "keys new": ["cardos keys new issuer.json",
                 "cardos keys new lab.json --test --sm4"],
    "keys show": ["cardos keys show issuer.json",
                  "cardos keys show test"],
    "issue": ["cardos issue --profile city --keys issuer.json --serial 42 --out city42.card",
              "cardos issue --profile city --keys issuer.json --count 100 --serial 1000 --out 'cards/{serial}.card'",
              "cardos issue --add-app campus --keys issuer.json --card city42.card",
              "cardos issue --profile city --keys issuer.json --serial 7 -r 'PCD 00 00'"],
    "profiles": ["cardos profiles                            # the shipped profiles",
                 "cardos profiles city                       # its parameters, files and keys"],
    "run": ["cardos run apdu_scripts/purse/load.apdu             # on a fresh blank card in memory",
            "cardos run --card city.card --keys issuer.json purchase.apdu",
            "cardos run -r 'Virtual PCD 00 00' --keys issuer.json balance.apdu --junit-xml report.xml"],
    "convert": ["cardos convert balance.apdu --to scriptor -o balance.scriptor",
                "cardos convert old.scriptor --to cardos"],
    "decode": ["scriptor -r 0 my.scriptor | cardos decode -",
               "cardos decode opensc.log --lang zh"],
    "inspect": ["cardos inspect city.card",
                "cardos inspect city.card --json | python3 -m json.tool",
                "cardos inspect city.card --lang zh          # headings, purses and history in Chinese"],
    "shell": ["cardos shell --card city.card --keys issuer.json",
              "cardos shell -r 'Virtual PCD 00 00' --keys issuer.json",
              "cardos shell -r 0 --keys issuer.json --via scriptor < commands.txt"],
    "bench": ["cardos bench --quick",
              "cardos bench --only inprocess --json bench.json"],
    "conformance": ["cardos conformance                         # a blank emulated card",
                    "cardos conformance --card city.card        # a copy of this image (never changed)",
                    "cardos conformance --vpcd                  # the emulator through the running pcscd",
                    "cardos conformance --reader 'ACS' --serial blank --junit-xml conformance.xml"],
}


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield name, sub


def finish_parser(parser, prefix: str = "") -> None:
    """Give every subcommand the shared help layout and its examples (recursively)."""
    for name, sub in _subparsers(parser):
        key = f"{prefix}{name}"
        sub.formatter_class = HelpFormatter
        examples = EXAMPLES.get(key)
        if examples and "examples:" not in (sub.epilog or ""):
            block = "examples:\n" + "\n".join(f"  {line}" for line in examples)
            sub.epilog = f"{sub.epilog}\n\n{block}" if sub.epilog else block
        finish_parser(sub, f"{key} ")
