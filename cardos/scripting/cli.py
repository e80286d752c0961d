"""``cardos run``, ``cardos convert`` and ``cardos decode`` (registered by :func:`add_parsers`)."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from ..textfile import TextFileProblem, read_text, write_problem

EXIT_OK, EXIT_FAILED, EXIT_SCRIPT, EXIT_TRANSPORT = 0, 1, 2, 3


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "run", help="run APDU scripts against a card and check the expectations",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run APDU scripts (a superset of pcsc-tools scriptor; grammar in docs/scripts.md) on one card, "
                    "in order: by default a fresh blank card in memory, or --card IMAGE, or --reader NAME.",
        epilog="exit status: 0 all expectations met, 1 an expectation failed, 2 usage or script error "
               "(reported as FILE:LINE:COLUMN before anything is sent), 3 no card or transport failure")
    p.add_argument("scripts", nargs="+", metavar="SCRIPT", help="script files, run in order on the same card")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--card", metavar="IMAGE", help="a card image file (changes are saved to it)")
    where.add_argument("-r", "--reader", metavar="NAME",
                       help="a PC/SC reader: exact name, number, or unique substring")
    p.add_argument("--keys", metavar="FILE", help="key set for @name references and purse steps "
                   "(a cardos key-set file, a shipped key-set name, or 'sample' for the sample card's TEST keys)")
    p.add_argument("--lang", choices=("en", "zh"), default="en",
                   help="language of command names, field names, status-word meanings and the summary")
    p.add_argument("--no-color", action="store_true", help="no colour (also when NO_COLOR is set; "
                   "colour is only used on a terminal anyway)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="JSON lines (one event per line) to FILE, or instead of the trace on stdout")
    p.add_argument("--junit-xml", metavar="PATH", help="write a JUnit XML report")
    p.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")
    p.add_argument("--show-keys", action="store_true",
                   help="show PINs and the key values of plain WRITE KEY commands in the trace and reports "
                        "(masked otherwise)")
    p.add_argument("--keep-going", action="store_true",
                   help="after a failed expectation, carry on with the script (default: go to the next script)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed script")
    p.add_argument("--fresh", action="store_true",
                   help="a fresh blank in-memory card for each script (default: one card for all, in order)")
    p.add_argument("--get-response", choices=("auto", "manual"), default="auto",
                   help="auto (default): fetch 61XX data and resend on 6CXX, shown as extra lines; "
                        "manual: send only what the script says")
    p.add_argument("--now", metavar="YYYY-MM-DDTHH:MM:SS", help="fixed date and time for now_date(), now_time() "
                   "and purse steps (reproducible runs)")
    _add_max_statements(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "convert", help="convert APDU scripts between cardos, scriptor and apdutool formats",
        description="Convert a script. From scriptor or apdutool to cardos, or from cardos (or those) to scriptor "
                    "or apdutool; lines that need the card's answers cannot be converted to the plain formats "
                    "and are reported as FILE:LINE:COLUMN. See docs/scripts.md.")
    p.add_argument("script", metavar="SCRIPT")
    p.add_argument("--from", dest="source", choices=("cardos", "scriptor", "apdutool"),
                   help="input format (default: by extension: .jcsh/.scr/.script = apdutool, "
                        ".scriptor = scriptor, else cardos)")
    p.add_argument("--to", dest="target", choices=("cardos", "scriptor", "apdutool"), required=True)
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--keys", metavar="FILE", help="key set, for scripts with @name references")
    _add_max_statements(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "decode", help="annotate an APDU log: command names, fields, status-word meanings",
        description="Read a log or script (scriptor output '> ...' / '< ...', apdu4j 'A>>' / 'A<<', opensc-tool, "
                    "plain hex command lines, command and response lines alternating, pasted command+response "
                    "pairs, or the live trace of `cardos serve --trace` / -v) and print each APDU decoded.")
    p.add_argument("file", metavar="FILE", help="log file, or - for stdin")
    p.add_argument("--lang", choices=("en", "zh"), default="en",
                   help="language of command names, field names and status-word meanings")
    p.add_argument("--no-color", action="store_true")
    p.add_argument("--show-keys", action="store_true", help="show PINs and the key values of plain WRITE KEY "
                   "commands (masked otherwise)")
    p.set_defaults(func=cmd_decode)


def _add_max_statements(p) -> None:
    from .limits import MAX_STATEMENTS_OPTION, ScriptLimits

    default = ScriptLimits().statements
    p.add_argument(MAX_STATEMENTS_OPTION, type=_positive, default=default, metavar="N",
                   help=f"refuse a script that would run more than N statements, repeat counts multiplied "
                        f"(default {default}; other limits: docs/scripts.md)")


def _positive(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 10**12:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number from 1 to 10^12")
    return int(text)


def _limits(args):
    from .limits import ScriptLimits

    return ScriptLimits(statements=args.max_statements)


def _now(text: str | None):
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(_usage(f"--now {text!r}: expected YYYY-MM-DDTHH:MM:SS"))


def _usage(message: str) -> int:
    print(f"cardos: error: {message}", file=sys.stderr)
    return EXIT_SCRIPT


def cmd_run(args, out=None, err=None) -> int:
    from ..privatefile import open_private_text, planted_link, write_failure
    from .report import HumanReporter, JsonReporter, JUnitReporter, Reporters, use_color

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        now = _now(args.now)
    except SystemExit as exc:
        return exc.code
    json_file = human = json_reporter = None
    if args.json == "-":
        json_reporter = JsonReporter(out, args.lang, show_keys=args.show_keys)
    else:
        human = HumanReporter(out, err, color=use_color(out, False if args.no_color else None), lang=args.lang,
                              quiet=args.quiet, show_keys=args.show_keys)
        if args.json:
            try:
                json_file = open_private_text(args.json)  # 0600: the exchanges may hold key references
            except OSError as exc:
                return _usage(f"--json {args.json}: {write_failure(exc)}")
            json_reporter = JsonReporter(json_file, args.lang, show_keys=args.show_keys)
    problem = write_problem(args.junit_xml, makes_directories=True) if args.junit_xml else None
    if problem:  # found before the card is touched, not after the run
        return _usage(f"--junit-xml {args.junit_xml}: cannot write: {problem}")
    link = planted_link(args.junit_xml) if args.junit_xml else None
    if link:  # the report is written privately, never through a link: say so before the run
        return _usage(f"--junit-xml {args.junit_xml}: {link}")
    junit = JUnitReporter(args.junit_xml, args.lang, show_keys=args.show_keys) if args.junit_xml else None
    try:
        code = _run(args, now, Reporters(human, json_reporter, junit), json_reporter, junit, err)
        return max(code, EXIT_SCRIPT) if junit is not None and junit.write_error else code
    except BrokenPipeError:  # `cardos run ... | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    finally:
        if json_file is not None:
            json_file.close()


def _load(args):
    """Parse and check every script (and its includes, keys) before anything is sent.

    Returns ``(scripts, problems)``: scripts as (Script, key source), problems as (path, ScriptError).
    """
    from .keysource import open_keys
    from .lexer import ScriptError
    from .parser import check, parse_file

    override = open_keys(args.keys) if args.keys else None  # ValueError: a usage error
    scripts, problems = [], []
    for path in args.scripts:
        try:
            script = parse_file(path, _limits(args))
            keys = override
            if keys is None and script.keys is not None:
                spec, pos, base = script.keys
                try:
                    keys = open_keys(spec, base)
                except ValueError as exc:
                    raise ScriptError(f"keys {spec}: {exc}", pos) from None
            check(script, keys)
            scripts.append((script, keys))
        except ScriptError as exc:
            problems.append((path, exc))
    return scripts, problems


def _run(args, now, reporter, json_reporter, junit, err) -> int:
    import time

    from ..image import ImageError
    from .runner import Runner
    from .transport import TransportError, open_transport

    try:
        scripts, problems = _load(args)
    except ValueError as exc:
        return _usage(f"--keys: {exc}")
    if problems:
        alone = len(problems) == 1 and not problems[0][1].pos  # one file-level problem: one line says it all
        for path, exc in problems:
            if alone:
                print(f"cardos run: error: {exc.message}; nothing was sent to the card", file=err)
            else:
                print(str(exc) if exc.pos else f"cardos run: error: {exc.message}", file=err)
            if json_reporter is not None:
                json_reporter.error(exc)
            if junit is not None:
                junit.add_static_error(path, exc)
        if junit is not None:
            junit.end_run({})
        if not alone:
            print(f"cardos run: {len(problems)} script error(s); nothing was sent to the card", file=err)
        return EXIT_SCRIPT
    if args.fresh and (args.card or args.reader):
        return _usage("--fresh gives each script a new in-memory card; it does not go with --card or --reader")
    try:
        transport = open_transport(args.card, args.reader)
    except (TransportError, ImageError) as exc:  # no reader or card: 3; a missing or bad image: 2
        print(f"cardos run: error: {exc}", file=err)
        if junit is not None:
            for script, _keys in scripts:
                junit.add_static_error(script.path, exc)
            junit.end_run({})
        return EXIT_SCRIPT if isinstance(exc, ImageError) else EXIT_TRANSPORT
    started = time.perf_counter()
    from ..i18n import Messages

    runner = Runner(transport, reporter, now=now, get_response=args.get_response, keep_going=args.keep_going,
                    messages=Messages(args.lang), limits=_limits(args))
    reporter.start_run({"card": transport.label, "backend": transport.backend, "atr": transport.atr.hex().upper()})
    results = []
    try:
        for n, (script, keys) in enumerate(scripts):
            if args.fresh and n:
                transport.close()
                runner.transport = transport = open_transport()
            result = runner.run_script(script, keys)
            results.append(result)
            if result.status == "transport" or (args.fail_fast and result.status in ("failed", "error")):
                break
    finally:
        transport.close()
    code = max((r.exit_code for r in results), default=EXIT_OK)
    counts: dict = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    reporter.end_run({"scripts": len(args.scripts), "counts": counts, "apdus": sum(r.apdus for r in results),
                      "checks": sum(r.checks for r in results), "failures": sum(r.failures for r in results),
                      "seconds": round(time.perf_counter() - started, 4), "exit": code})
    return code


def _guess_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".jcsh", ".scr", ".script"):
        return "apdutool"
    if suffix == ".scriptor":
        return "scriptor"
    return "cardos"


def cmd_convert(args, out=None, err=None) -> int:
    from ..privatefile import write_failure, write_private
    from .convert import convert
    from .keysource import open_keys
    from .lexer import ScriptError

    out = out or sys.stdout
    err = err or sys.stderr
    keys = None
    if args.keys:
        try:
            keys = open_keys(args.keys)
        except ValueError as exc:
            return _usage(f"--keys: {exc}")
    limits = _limits(args)
    try:
        text = read_text(args.script, "script", limits.file_size)
    except TextFileProblem as exc:
        return _usage(f"{args.script}: {exc.problem}")
    source = args.source or _guess_format(args.script)
    try:
        result = convert(text, args.script, source, args.target, keys, limits=limits)
    except ScriptError as exc:
        print(str(exc), file=err)
        return EXIT_SCRIPT
    if args.output:
        try:
            write_private(args.output, result)  # 0600: with --keys it holds key values, and PINs anyway
        except OSError as exc:
            return _usage(f"-o {args.output}: {write_failure(exc)}")
    else:
        out.write(result)
    return EXIT_OK


def cmd_decode(args, out=None, err=None) -> int:
    from .decode_log import decode_log
    from .report import use_color

    out = out or sys.stdout
    try:
        text = sys.stdin.read() if args.file == "-" else read_text(args.file, "log")
    except TextFileProblem as exc:
        return _usage(f"{args.file}: {exc.problem}")
    except UnicodeDecodeError:
        return _usage("-: stdin is not text (not UTF-8)")
    decode_log(text, out, lang=args.lang, color=use_color(out, False if args.no_color else None),
               show_keys=args.show_keys)
    return EXIT_OK
