"""APDU scripts: a superset of pcsc-tools ``scriptor`` with expectations, variables,
functions, includes and purse steps (grammar and examples: ``docs/scripts.md``).

Modules: :mod:`.lexer` (tokens with positions), :mod:`.parser` (statements,
static checks), :mod:`.expr` / :mod:`.functions` (values), :mod:`.patterns`
(expected SW and data), :mod:`.runner`, :mod:`.steps` (auth and purse steps),
:mod:`.report` (trace, JSON, JUnit), :mod:`.convert` (scriptor, apdutool),
:mod:`.transport`, :mod:`.keysource`, :mod:`.cli`.

>>> from cardos.scripting import run_text
>>> run_text('''
... 00 A4 00 00 02 3F00 => [6F XX 84 ..] 9000
... 00 84 00 00 04      => [XX XX XX XX] 9000 -> rnd=data
... ''').status
'passed'
"""
from __future__ import annotations

from .lexer import Pos, ScriptError
from .parser import Script, check, parse_file, parse_text

__all__ = ["Pos", "Script", "ScriptError", "check", "parse_file", "parse_text", "run_text"]


def run_text(text: str, card=None, keys=None, path: str = "<script>", reporter=None, **options):
    """Parse, check and run ``text`` on ``card`` (default: a fresh blank card); returns the ScriptResult.

    ``keys``: a key source name or file (``"sample"``) or a :class:`~.keysource.KeySource`.
    """
    from pathlib import Path

    from ..card import Card
    from .keysource import open_keys
    from .report import Reporters
    from .runner import Runner
    from .transport import EmulatorTransport

    if isinstance(keys, str):
        keys = open_keys(keys)
    script = parse_text(text, path, Path("."))
    if keys is None and script.keys is not None:
        spec, _pos, base = script.keys
        keys = open_keys(spec, base)
    check(script, keys)
    transport = EmulatorTransport(card if card is not None else Card.blank(), "in memory")
    runner = Runner(transport, reporter or Reporters(), **options)
    return runner.run_script(script, keys)
