"""One consistent ``cardos`` command line: help with a description and examples for every
subcommand, ``-r/--reader`` wherever a reader is taken, ``--no-color``/``NO_COLOR`` wherever
colour is used, colour only through cardos/ui.py, a progress line only on a terminal."""
from __future__ import annotations

import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cardos import ui
from cardos.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
# what the issue asks for, plus what was there before
REQUIRED = {"new", "issue", "keys", "serve", "run", "conformance", "bench", "inspect", "shell", "decode"}
COLOUR_COMMANDS = {"run", "decode", "inspect", "shell"}


def subcommands(parser=None, prefix=()):
    parser = parser or build_parser()
    out = []
    for name, sub in ui._subparsers(parser):
        path = (*prefix, name)
        out.append((path, sub))
        out.extend(subcommands(sub, path))
    return out


ALL = subcommands()
IDS = [" ".join(path) for path, _ in ALL]


def test_every_required_subcommand_exists():
    assert REQUIRED <= {path[0] for path, _ in ALL}


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=IDS)
def test_help_has_a_description_and_examples(path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: cardos {' '.join(path)}")
    parser = dict(ALL)[path]
    assert parser.description and len(parser.description) > 30, "a description of what it does"
    assert "examples:" in out, "examples at the end of --help (cardos/ui.py EXAMPLES)"
    for line in ui.EXAMPLES[" ".join(path)]:
        assert line in out


def test_top_level_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "cardos.cli", "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    for name in REQUIRED:
        assert re.search(rf"^\s+{name}\b", out.stdout, re.MULTILINE), name


@pytest.mark.parametrize("key", sorted(ui.EXAMPLES))
def test_examples_parse(key):
    """Every example in --help is a valid command line for the real parser."""
    parser = build_parser()
    for line in ui.EXAMPLES[key]:
        command = line.split("#")[0]
        command = command.split("|")[-1] if command.lstrip().startswith("scriptor") else command.split("|")[0]
        words = shlex.split(command.split("<")[0])
        assert words[0] == "cardos", line
        parser.parse_args(words[1:])
        assert " ".join(words[1:1 + len(key.split())]) == key


def test_examples_name_only_existing_commands():
    known = {" ".join(path) for path, _ in ALL}
    assert set(ui.EXAMPLES) <= known


@pytest.mark.parametrize("path", [p for p, s in ALL if any(a.dest == "reader" for a in s._actions)],
                         ids=[" ".join(p) for p, s in ALL if any(a.dest == "reader" for a in s._actions)])
def test_reader_option_is_r_everywhere(path):
    parser = dict(ALL)[path]
    action = next(a for a in parser._actions if a.dest == "reader")
    assert "-r" in action.option_strings and "--reader" in action.option_strings
    assert action.metavar == "NAME"


def test_reader_commands():
    with_reader = {p[0] for p, s in ALL if any(a.dest == "reader" for a in s._actions)}
    assert {"demo", "issue", "run", "shell", "conformance"} <= with_reader


@pytest.mark.parametrize("name", sorted(COLOUR_COMMANDS))
def test_no_color_option_where_colour_is_used(name):
    parser = dict(ALL)[(name,)]
    assert any("--no-color" in a.option_strings for a in parser._actions)


def test_colour_only_through_ui():
    """No module paints by itself: escapes live in cardos/ui.py, so --no-color / NO_COLOR reach everything."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "cardos").rglob("*.py")
                 if p.name != "ui.py" and ("\\033[" in p.read_text(encoding="utf-8")
                                           or "\\x1b[" in p.read_text(encoding="utf-8"))]
    assert offenders == []


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_use_color_rules(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert ui.use_color(FakeTTY()) is True
    assert ui.use_color(FakeTTY(), False) is False
    assert ui.use_color(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert ui.use_color(FakeTTY()) is False


def test_progress_only_on_a_terminal():
    quiet = io.StringIO()
    with ui.progress(10, "work", stream=quiet) as bar:
        for _ in range(10):
            bar.advance()
    assert quiet.getvalue() == ""
    tty = FakeTTY()
    with ui.progress(4, "work", stream=tty) as bar:
        bar.advance(note="one")
        bar.INTERVAL = 0
        bar.advance(3)
    text = tty.getvalue()
    assert "work [" in text and "4/4" in text and text.endswith("\r")


def test_progress_write_keeps_lines_whole():
    tty, out = FakeTTY(), io.StringIO()
    with ui.progress(2, "x", stream=tty) as bar:
        bar.write("first line", out)
        bar.advance()
    assert out.getvalue() == "first line\n"


def test_issue_count_writes_one_image_per_serial(tmp_path, capsys):
    pattern = str(tmp_path / "cards" / "{serial}.card")
    assert main(["issue", "--profile", "city", "--keys", "test", "--count", "3", "--serial", "7",
                 "--out", pattern]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "cards").iterdir()) == ["7.card", "8.card", "9.card"]
    assert "issued 3 cards, serials 7..9" in out
    assert out.count("issued city:") == 0  # one line per card only with -v: the progress line and the summary
    from cardos.inspect import describe_card, load_card

    serial = describe_card(load_card(str(tmp_path / "cards" / "9.card")))
    assert serial["purses"][0]["balance"] == 0


def test_issue_count_needs_a_pattern(tmp_path, capsys):
    assert main(["issue", "--profile", "city", "--keys", "test", "--count", "2", "--out",
                 str(tmp_path / "one.card")]) == 2
    assert "{serial}" in capsys.readouterr().err
    assert main(["issue", "--profile", "city", "--keys", "test", "--count", "2", "-r", "0"]) == 2


def test_issue_count_dry_run(capsys):
    assert main(["issue", "--profile", "city", "--keys", "test", "--count", "4"]) == 0
    assert "issued 4 cards, serials 1..4, in memory" in capsys.readouterr().out
