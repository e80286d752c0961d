"""``cardos conformance``: run the conformance suite against a card and print the summary table.

It runs pytest in this process on the shipped suite (``--pyargs cardos.conformance``) with the
plugin's options, so everything pytest offers works the same way from ``pytest`` directly::

    cardos conformance                          # a new blank emulated card
    cardos conformance --card card.json         # a copy of a card image
    cardos conformance --card card.json --vpcd  # that card served into pcscd, tested through PC/SC
    cardos conformance --reader ACS --keys issuer.json --serial 3100000000000304

Exit status: 0 every test passed, 1 some test failed (the card does not conform), 2 a usage
problem (a missing or bad image, bad key set, no tests selected), 3 no card / no reader / the card
is not the one ``--serial`` names.
"""
from __future__ import annotations

import argparse

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


def pytest_args(args) -> list:
    out = ["-p", "cardos.conformance.plugin", "--pyargs", "cardos.conformance",
           "-o", "addopts=", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--tb=short"]
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


def preflight(args) -> tuple[str, int] | None:
    """What stops the run before pytest starts, as (one line, exit code): a missing or bad image or an
    output path in a missing directory (2), no pcscd, reader or card (3). ``None`` when all is well."""
    from ..textfile import write_problem

    if args.card:
        from ..image import ImageError, card_state_from_dict, read_image

        try:
            card_state_from_dict(read_image(args.card))  # read only: the suite works on a copy
        except ImageError as exc:
            return str(exc), 2
        except (ValueError, TypeError, KeyError) as exc:
            return f"{args.card}: {exc}", 2
    if args.keys:
        from ..keyset import KeySetError, load

        try:
            load(args.keys)
        except KeySetError as exc:
            return str(exc), 2
    for option, path in (("--junit-xml", args.junit_xml), ("--json", args.json)):
        problem = write_problem(path) if path else None
        if problem:
            return f"{option} {path}: cannot write: {problem}", 2
    if args.reader and not args.vpcd:
        from ..transports.pcsc import PcscTransport, TransportError

        try:
            PcscTransport(args.reader).close()  # connects, sends nothing
        except TransportError as exc:
            return str(exc), 3
    return None


def run(args) -> int:
    import sys

    import pytest

    problem = preflight(args)
    if problem is not None:
        print(f"cardos conformance: error: {problem[0]}", file=sys.stderr)
        return problem[1]
    code = pytest.main(pytest_args(args))
    return EXIT_CODES.get(int(code), 3)


def main(argv=None) -> int:  # pragma: no cover - convenience for python -m
    parser = argparse.ArgumentParser(prog="cardos conformance", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
