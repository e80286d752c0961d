"""``cardos conformance``: run the conformance suite against a card and print the summary table.

It runs pytest in this process on the shipped suite (``--pyargs cardos.conformance``) with the
plugin's options, so everything pytest offers works the same way from ``pytest`` directly::

    cardos conformance                          # a new blank emulated card
    cardos conformance --card card.json         # a copy of a card image
    cardos conformance --card card.json --vpcd  # that card served into pcscd, tested through PC/SC
    cardos conformance --reader ACS --keys issuer.json --serial 3100000000000304
    cardos conformance --list -k check_purse    # the tests, without a card

Before the suite it collects the selected tests (``-k`` matching nothing is one line) and runs
the pre-flight checks (:mod:`cardos.conformance.preflight`): what stops a run is one line with
the fix, never a card failure. The opened target is handed to the pytest session.

Exit status: 0 every test passed, 1 some test failed (the card does not conform), 2 a usage
problem (a bad image, key set or serial, the key set is not the card's, no tests selected),
3 no pcscd / reader / card, or the card is not the one ``--serial`` names.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

EXIT_CODES = {0: 0, 1: 1, 2: 3, 3: 3, 4: 2, 5: 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--card", metavar="IMAGE",
                        help="judge a copy of this card image (in-process emulator; the file is never changed)")
    target.add_argument("-r", "--reader", metavar="NAME",
                        help="judge the card in this PC/SC reader (name, index, or a unique part of the name)")
    target.add_argument("--factory", metavar="MODULE:CALLABLE",
                        help="judge the card object this callable returns (other emulators, test doubles)")
    parser.add_argument("--vpcd", action="store_true",
                        help="serve the emulated card (--card, --factory or a blank one) into the running pcscd "
                             "and test it through PC/SC; with --reader, the vpcd reader's name")
    parser.add_argument("--vpcd-port", metavar="PORT", type=int, default=35963,
                        help="vpcd slot for --vpcd (default 35963, 'Virtual PCD 00 00')")
    parser.add_argument("--keys", metavar="FILE",
                        help="issuer key set (file or shipped name) for the tests that issue the card and run "
                             "purse transactions; emulated cards default to the shipped TEST key set")
    parser.add_argument("--serial", metavar="SERIAL",
                        help="the serial of the card in the reader (16 hex digits from MF 0005, or 'blank'): "
                             "allows the destructive tests; another card stops the run before anything is sent "
                             "that changes it")
    parser.add_argument("--junit-xml", metavar="PATH", help="write a JUnit XML report (APDU trace per test)")
    parser.add_argument("--json", metavar="PATH", help="write the results (table and every test) as JSON")
    parser.add_argument("-k", metavar="EXPRESSION", dest="keyword", help="only tests matching (pytest -k)")
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="one line per test")
    parser.add_argument("--list", action="store_true",
                        help="list the tests (those -k selects) with their family, command and markers; "
                             "needs no card")


def pytest_args(args) -> list:
    from .sessions import SESSION_ARGS

    out = [*SESSION_ARGS, "--tb=short"]
    out.append("-v" if args.verbose else "-q")
    for flag, value in (("--cardos-card", args.card), ("--cardos-reader", args.reader),
                        ("--cardos-factory", args.factory), ("--cardos-keys", args.keys),
                        ("--cardos-serial", args.serial), ("--cardos-report-json", args.json),
                        ("--junitxml", args.junit_xml), ("-k", args.keyword)):
        if value is not None:
            out += [flag, value]
    if args.vpcd:
        out += ["--cardos-vpcd", "--cardos-vpcd-port", str(args.vpcd_port)]
    if args.exitfirst:
        out.append("-x")
    return out


def _pytest_error(output: str) -> str:
    """pytest's own one-line complaint (a malformed -k expression) from its output."""
    errors = [line.removeprefix("ERROR: ").strip() for line in output.splitlines() if line.startswith("ERROR: ")]
    return errors[0] if errors else (output.strip().splitlines() or ["pytest could not collect the suite"])[-1]


def run(args) -> int:
    from .sessions import collect

    collector, code, output = collect(args.keyword)
    if code not in (0, 5):
        print(f"cardos conformance: {_pytest_error(output)}", file=sys.stderr)
        return 2
    if args.keyword and not collector.selected:
        print(f"cardos conformance: no test matches -k {args.keyword!r} ({collector.total} tests in the suite; "
              f"`cardos conformance --list` names them, -k matches test and module names such as check_purse)",
              file=sys.stderr)
        return 2
    if args.list:
        for test in collector.selected:
            print(test.line())
        print(f"{len(collector.selected)} of {collector.total} tests")
        return 0
    from ..textfile import write_problem

    for option, path in (("--junit-xml", args.junit_xml), ("--json", args.json)):
        problem = write_problem(path) if path else None
        if problem:  # before the card is touched
            print(f"cardos conformance: {option} {path}: cannot write: {problem}", file=sys.stderr)
            return 2
    return _run_suite(args, collector)


def _run_suite(args, collector) -> int:
    import pytest

    from ..privatefile import FILE_MODE
    from .preflight import CannotStart, RunOptions, prepare
    from .sessions import Handover

    workdir = Path(tempfile.mkdtemp(prefix="cardos-conformance-"))
    prepared = None
    try:
        if any(t.uses_target for t in collector.selected):
            prepared = prepare(RunOptions.from_args(args), workdir,
                               uses_baseline=any(t.uses_baseline for t in collector.selected))
        old_umask = os.umask(0o077)  # pytest writes the JUnit report (APDU traces): private whatever the umask
        try:
            code = pytest.main(pytest_args(args), plugins=[Handover(prepared)])
        finally:
            os.umask(old_umask)
    except CannotStart as exc:
        print(f"cardos conformance: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        if prepared is not None:
            prepared.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report = args.junit_xml
    if report and os.path.isfile(report) and not os.path.islink(report):
        os.chmod(report, FILE_MODE)  # an old report overwritten keeps its mode otherwise
    return EXIT_CODES.get(int(code), 3)


def main(argv=None) -> int:  # pragma: no cover - convenience for python -m
    parser = argparse.ArgumentParser(prog="cardos conformance", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
