"""Every shell and code sample in README.md and docs/*.md runs here.

Conventions (also in README.md, "Samples in the docs are tests"):

* ```` ```sh ```` / ```` ```shell ```` / ```` ```bash ```` blocks run as one bash script with
  ``set -e -o pipefail``: every command must succeed.
* ```` ```console ```` blocks: ``$ COMMAND`` lines run (a trailing ``\\`` continues the command);
  the lines after a command, up to the next ``$``, are its expected standard output: runs of
  white space count as one space and ``...`` stands for anything (as doctest's ELLIPSIS).
* ```` ```python ```` blocks with ``>>>`` are doctests (pytest ``--doctest-glob=*.md``); other
  python blocks run as a script here.
* ```` ```json ````, ```` ```text ````, ```` ```apdu ```` (tests/test_scripting_docs.py) are not
  commands. A fence without a language is refused: say what it is.
* The blocks of one file run in order in one fresh temporary directory (later blocks use the
  files earlier ones made). The directory has links to the repository's ``.venv`` and
  ``apdu_scripts`` (use them read-only), the virtualenv's ``bin`` is first on ``PATH``, ``HOME``
  is the directory and ``NO_COLOR=1``.
* An HTML comment right before the opening fence changes that::

      <!-- sample: skip="why it cannot run here" -->     not run (keep these rare; a reason is required)
      <!-- sample: needs=pcscd -->                       runs with the test suite's pcscd + vpcd; a
                                                         ``pcscd`` command in the block does nothing;
                                                         cards served by the file's blocks are removed
                                                         after its last block
      <!-- sample: background="REGEX" -->                a long-running command (``cardos serve``):
                                                         started in the background, the next block
                                                         runs once its output matches REGEX; stopped
                                                         after the file's last block
      <!-- sample: exit=1 -->                            the exit status the block must end with
      <!-- sample: timeout=300 -->                       seconds before the block is stopped (120)

  Options combine: ``<!-- sample: needs=pcscd background="serving at" -->``.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGS = {"sh", "shell", "bash", "console", "python"}
KNOWN_LANGS = RUN_LANGS | {"json", "text", "apdu", "apdu-fail", "apdu-error", "ini", "yaml", "diff", "csv", "xml"}
# read-only links into the repository (never dev.sh or the packaging files: a sample must not reinstall cardos)
LINKED = (".venv", "apdu_scripts")
_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_ANNOTATION = re.compile(r"^\s*<!--\s*sample:(.*?)-->\s*$")
DEFAULT_TIMEOUT = 120.0


@dataclass
class Block:
    doc: Path
    line: int  # of the opening fence
    lang: str
    body: str
    options: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def doctest(self) -> bool:
        return self.lang == "python" and any(x.lstrip().startswith(">>>") for x in self.body.splitlines())


def parse_options(text: str, where: str) -> dict:
    options = {}
    for word in shlex.split(text):
        key, sep, value = word.partition("=")
        if key not in ("skip", "needs", "background", "exit", "timeout") or not sep or not value:
            raise ValueError(f"{where}: bad sample option {word!r} (skip=REASON, needs=pcscd, background=REGEX, "
                             "exit=N, timeout=S)")
        options[key] = value
    if "needs" in options and options["needs"] != "pcscd":
        raise ValueError(f"{where}: needs=pcscd is the only need")
    return options


def blocks_of(doc: Path) -> list:
    lines = doc.read_text(encoding="utf-8").split("\n")
    out, pending, i = [], None, 0
    while i < len(lines):
        annotation = _ANNOTATION.match(lines[i])
        if annotation:
            pending = parse_options(annotation.group(1), f"{doc.name}:{i + 1}")
            i += 1
            continue
        fence = _FENCE.match(lines[i])
        if fence:
            indent, lang = fence.group(1), fence.group(2)
            j = i + 1
            while j < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[j]):
                j += 1
            body = "\n".join(x[len(indent):] if x.startswith(indent) else x.lstrip() for x in lines[i + 1:j])
            out.append(Block(doc, i + 1, lang, body + "\n", pending or {}))
            pending = None
            i = j + 1
            continue
        if lines[i].strip():
            pending = None  # an annotation belongs to the fence right after it
        i += 1
    return out


ALL_BLOCKS = [b for doc in DOCS for b in blocks_of(doc)]
RUNNABLE = [b for b in ALL_BLOCKS if b.lang in RUN_LANGS and not b.doctest]


# -- one working directory per document, background processes, cleanup --------------------------------

class DocSession:
    """The temporary directory, environment and background processes of one document's samples."""

    def __init__(self, doc: Path, base: Path):
        self.doc = doc
        self.dir = base
        for name in LINKED:
            if (ROOT / name).exists():
                (self.dir / name).symlink_to(ROOT / name)
        venv_bin = Path(sys.executable).parent
        self.env = dict(os.environ, HOME=str(self.dir), NO_COLOR="1",
                        PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")
        self.env.pop("VIRTUAL_ENV", None)
        self.groups: list = []  # process groups started by the blocks (background jobs included)
        self.uses_pcscd = False
        self.failed = None

    def track(self, proc: subprocess.Popen) -> None:
        self.groups.append(proc)

    def close(self, pcscd=None) -> None:
        for proc in self.groups:
            _kill_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.groups:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _kill_group(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait()
        self.groups = []
        if pcscd is not None and self.uses_pcscd:
            for reader in pcscd.readers():
                if reader.startswith("Virtual PCD"):
                    pcscd.wait_card(reader, False, timeout=10)


def _kill_group(pgid: int, sig) -> None:
    """Signal a process group this test started (its leader's pid), if anything is left in it."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Sessions:
    def __init__(self, tmp_path_factory):
        self.factory = tmp_path_factory
        self.current: DocSession | None = None
        self.pcscd = None

    def for_doc(self, doc: Path) -> DocSession:
        if self.current is None or self.current.doc != doc:
            self.close()
            self.current = DocSession(doc, self.factory.mktemp(doc.stem))
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.close(self.pcscd)
            self.current = None


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    s = Sessions(tmp_path_factory)
    yield s
    s.close()


# -- running one block ------------------------------------------------------------------------------

PRELUDE = "set -e -o pipefail\n"
PCSCD_SHIM = "pcscd() { :; }  # the test suite runs pcscd (tests/pcsc_fixtures.py)\n"


def _spawn(session: DocSession, argv: list, background: bool = False, stdin=None):
    log = session.dir / f".sample-{len(session.groups)}.log" if background else None
    sink = open(log, "wb") if background else None  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(argv, cwd=session.dir, env=session.env, start_new_session=True,
                                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                                stdout=sink if background else subprocess.PIPE,
                                stderr=subprocess.STDOUT if background else subprocess.PIPE)
    finally:
        if sink is not None:
            sink.close()
    session.track(proc)
    return proc, log


def _run(session: DocSession, block: Block, argv: list, stdin: str | None = None) -> tuple:
    timeout = float(block.options.get("timeout", DEFAULT_TIMEOUT))
    proc, _ = _spawn(session, argv, stdin=stdin)
    try:
        out, err = proc.communicate(input=stdin.encode() if stdin is not None else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{block.where}: still running after {timeout:.0f} s\n{_tail(out, err)}", pytrace=False)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _tail(out: bytes | str, err: bytes | str) -> str:
    def text(x):
        return x.decode(errors="replace") if isinstance(x, bytes) else x
    return f"--- stdout ---\n{text(out)[-4000:]}\n--- stderr ---\n{text(err)[-4000:]}"


def _script(block: Block, body: str) -> str:
    return PRELUDE + (PCSCD_SHIM if block.options.get("needs") == "pcscd" else "") + body


def run_sh(session: DocSession, block: Block) -> None:
    expected = int(block.options.get("exit", 0))
    if "background" in block.options:
        proc, log = _spawn(session, ["bash", "-c", _script(block, block.body)], background=True)
        pattern = re.compile(block.options["background"])
        deadline = time.monotonic() + float(block.options.get("timeout", 30))
        while not pattern.search(log.read_text(errors="replace")):
            if proc.poll() is not None:
                pytest.fail(f"{block.where}: the background command stopped (exit {proc.returncode}) before "
                            f"printing {pattern.pattern!r}:\n{log.read_text(errors='replace')}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"{block.where}: no {pattern.pattern!r} in its output:\n"
                            f"{log.read_text(errors='replace')}", pytrace=False)
            time.sleep(0.05)
        return
    code, out, err = _run(session, block, ["bash", "-c", _script(block, block.body)])
    assert code == expected, f"{block.where}: exit status {code}, expected {expected}\n{_tail(out, err)}"


def console_steps(body: str) -> list:
    """[(command, expected output)] of a console block."""
    steps, command, expected = [], None, []
    lines = body.rstrip("\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            if command is not None:
                steps.append((command, "\n".join(expected)))
            command, expected = line[2:], []
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1] + "\n" + lines[i]
        elif command is not None:
            expected.append(line)
        i += 1
    if command is not None:
        steps.append((command, "\n".join(expected)))
    return steps


def output_matches(want: str, got: str) -> bool:
    r"""Runs of white space are equal, ``...`` stands for anything (also nothing, also at either end).

    >>> output_matches("...\n0: a\n...", "x\n0:  a\ny"), output_matches("a ... c", "a b"), output_matches("a", "a ")
    (True, False, True)
    """
    w, g = " ".join(want.split()), " ".join(got.split())
    parts = [p.strip() for p in w.split("...")]
    if len(parts) == 1:
        return w == g
    if not g.startswith(parts[0]):
        return False
    pos = len(parts[0])
    for part in parts[1:-1]:
        found = g.find(part, pos)
        if found < 0:
            return False
        pos = found + len(part)
    return g.endswith(parts[-1]) and len(g) - len(parts[-1]) >= pos


def run_console(session: DocSession, block: Block) -> None:
    steps = console_steps(block.body)
    assert steps, f"{block.where}: a console block needs `$ command` lines"
    for n, (command, expected) in enumerate(steps):
        last = n == len(steps) - 1
        if "background" in block.options and last:
            run_sh(session, Block(block.doc, block.line, "sh", command + "\n", block.options))
            return
        code, out, err = _run(session, block, ["bash", "-c", _script(block, command)])
        want = int(block.options.get("exit", 0)) if last else 0
        assert code == want, f"{block.where}: `{command}` exit status {code}, expected {want}\n{_tail(out, err)}"
        if expected.strip() and not output_matches(expected, out):
            pytest.fail(f"{block.where}: `{command}` printed something else.\n--- expected ---\n{expected}\n"
                        f"--- got ---\n{out}--- stderr ---\n{err}", pytrace=False)


def run_python(session: DocSession, block: Block) -> None:
    code, out, err = _run(session, block, [sys.executable, "-c", block.body])
    expected = int(block.options.get("exit", 0))
    assert code == expected, f"{block.where}: exit status {code}, expected {expected}\n{_tail(out, err)}"


# -- the tests ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
def test_sample_runs(block, sessions, request):
    if "skip" in block.options:
        pytest.skip(f"not run ({block.options['skip']})")
    session = sessions.for_doc(block.doc)
    if session.failed:
        pytest.skip(f"an earlier sample of this file failed ({session.failed}); this one depends on it")
    if block.options.get("needs") == "pcscd":
        sessions.pcscd = request.getfixturevalue("pcscd")
        session.uses_pcscd = True
    try:
        if block.lang == "console":
            run_console(session, block)
        elif block.lang == "python":
            run_python(session, block)
        else:
            run_sh(session, block)
    except BaseException:
        session.failed = block.where
        raise


def test_every_fence_says_what_it_is():
    """No bare ``` fences: a sample is a command (sh/console, run) or says it is not (text, json, ...)."""
    bad = [f"{b.where}: ```{b.lang}" for b in ALL_BLOCKS if b.lang not in KNOWN_LANGS]
    assert bad == [], "label these fences (sh/console to run them; text/json when they are not commands)"


def test_skips_are_rare_and_explained():
    skipped = [b for b in RUNNABLE if "skip" in b.options]
    for b in skipped:
        assert len(b.options["skip"]) >= 10, f"{b.where}: say why it cannot run"
    assert len(skipped) <= max(3, len(RUNNABLE) // 4), [b.where for b in skipped]


def test_there_are_samples_to_run():
    docs = {b.doc.name for b in RUNNABLE if "skip" not in b.options}
    assert {"README.md", "tutorial.md", "pcsc.md", "cli.md"} <= docs


def test_console_parser():
    steps = console_steps("$ echo a \\\n  b\na b\n$ true\n")
    assert steps == [("echo a \n  b", "a b"), ("true", "")]


def test_annotation_parser(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text('text\n<!-- sample: needs=pcscd background="serving at" -->\n```sh\ncardos serve a\n```\n'
                   '<!-- sample: skip="needs a real reader" -->\n\n```sh\nx\n```\n```text\nplain\n```\n')
    blocks = blocks_of(doc)
    assert [b.options for b in blocks] == [{"needs": "pcscd", "background": "serving at"},
                                           {"skip": "needs a real reader"}, {}]
    with pytest.raises(ValueError):
        parse_options("sometimes", "x")


def test_every_apdu_the_card_answers_is_documented():
    """commands.md / purse.md have a table row for every command the dispatcher knows (and the decoder names it)."""
    from cardos.commands import DISPATCH
    from cardos.decoder import _spec

    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8") + \
        (ROOT / "docs" / "purse.md").read_text(encoding="utf-8")
    missing = []
    for (cla, ins), handler in sorted(DISPATCH.items()):
        for p1 in (handler if isinstance(handler, dict) else {0: handler}):
            spec = _spec(cla, ins, p1)
            if spec is None:
                missing.append(f"{cla:02X} {ins:02X} {p1:02X}: unknown to cardos/decoder.py")
            elif f"| {spec.name.split(' (')[0]}" not in text:
                missing.append(f"{cla:02X} {ins:02X} {p1:02X}: no '| {spec.name}' row in commands.md / purse.md")
    assert missing == []
