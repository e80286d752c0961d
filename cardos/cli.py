"""The ``cardos`` command line.

Each subcommand's handler is a ``_cmd_*`` function or a lazily imported ``run`` (:func:`_lazy`),
registered in :func:`build_parser`.
Errors are one line naming the file and the problem; exit codes (docs/cli.md): 0 done, 1 a check
failed or the card said no, 2 usage or input (a missing, unreadable or corrupt file), 3 transport.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .image import ImageError
from .transports.pcsc import TransportError


def _cmd_new(args) -> int:
    from .card import Card

    try:
        Card.blank().save_as(args.path)
    except OSError as exc:  # a missing directory, a read-only place (not the temporary file's name)
        raise ImageError(args.path, f"cannot write: {exc.strerror}") from None
    print(f"wrote blank card image {args.path}")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(out=sys.stdout, image=args.image, reader=args.reader, yes=args.yes)


def _lazy(module: str, name: str = "run"):
    """The handler ``module.name(args)``, imported only when its subcommand runs
    (``cardos --help`` and light subcommands don't load pyscard, the bench, ...)."""
    def handler(args) -> int:
        return getattr(importlib.import_module(module, __package__), name)(args)
    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cardos", description="cardos: a CJ/T 304 / FMCOS 2.0 city-card emulator. Make key sets and cards, "
        "serve them to PC/SC software, run APDU scripts, explore and inspect cards.",
        epilog="`cardos COMMAND --help` shows a command's options and examples. Start with docs/tutorial.md.")
    parser.add_argument("--version", action="version", version=f"cardos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("new", help="write a blank card image", description="Write a blank card image "
                       "(MF 3F00 with the transport key FF×8) to PATH; refuses to overwrite a file.")
    p.add_argument("path", metavar="PATH")
    p.set_defaults(func=_cmd_new)

    p = sub.add_parser("demo", help="issue a demo card, top it up and spend from it",
                       description="Personalize a blank card through APDUs, load it and make a purchase, "
                       "printing every step. By default the card is a fresh emulated card in the embedded "
                       "in-process pyscard reader; --reader uses a PC/SC reader instead.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--image", metavar="PATH", help="keep the embedded demo card in this new image file")
    where.add_argument("-r", "--reader", metavar="NAME", help="a PC/SC reader by name, index or substring "
                       "(e.g. a slot filled by `cardos serve`); its card must be blank (transport key FF×8)")
    p.add_argument("--yes", action="store_true", help="with --reader: go on although the card is not blank "
                   "(authenticating with the transport key then spends one of its tries)")
    p.set_defaults(func=_cmd_demo)

    from .transports.serve import add_arguments as add_serve_arguments

    p = sub.add_parser("serve", help="put card images into a real pcscd (vpcd reader slots)",
                       description="Connect to the vpcd driver of a running pcscd as the card in a "
                       "reader slot (default localhost:35963), until SIGTERM/SIGINT. See docs/pcsc.md.")
    add_serve_arguments(p)
    p.set_defaults(func=_lazy(".transports.serve"))

    from .terminal.settle import add_arguments as add_settle_arguments

    p = sub.add_parser("settle", help="check the TACs of uploaded transaction records (clearing)",
                       description="Verify the TAC of every record in FILE (JSON lines or CSV) with the "
                       "issuer's TAC master key; report forged, altered, unreadable and replayed records. "
                       "Exit 0 when all are accepted, 1 when any is rejected. See docs/purse.md.")
    add_settle_arguments(p)
    p.set_defaults(func=_lazy(".terminal.settle"))

    from .issuing import add_issue_arguments, add_keys_arguments, add_profiles_arguments

    p = sub.add_parser("keys", help="issuer key sets: make one, list one",
                       description="Issuer key sets (master keys the card keys are diversified from). "
                       "See docs/keysets.md.")
    add_keys_arguments(p)
    p.set_defaults(func=_lazy(".issuing", "run_keys"))

    p = sub.add_parser("issue", help="personalize a card from a profile and a key set (发卡)",
                       description="Issue a blank card with a card profile (--profile), or add an application "
                       "profile to an issued card (--add-app), through APDUs: an emulated card (--out / --card) "
                       "or a card in a PC/SC reader (--reader). See docs/profiles.md.")
    add_issue_arguments(p)
    p.set_defaults(func=_lazy(".issuing", "run_issue"))

    p = sub.add_parser("profiles", help="list the shipped issuance profiles, or check and describe one",
                       description="Without an argument, list the shipped profiles; with one, validate it "
                       "(exit 2 naming the file, field and reason when it is bad) and describe it.")
    add_profiles_arguments(p)
    p.set_defaults(func=_lazy(".issuing", "run_profiles"))

    from .conformance.runner import add_arguments as add_conformance_arguments

    p = sub.add_parser("conformance", help="judge a card (emulated, through pcscd, or in any reader) with the "
                       "conformance suite", description="Run the CJ/T 304 conformance suite (pytest) against an "
                       "emulated card, the emulator behind pcscd (--vpcd) or a card in a PC/SC reader, and print "
                       "a per-command pass/fail table. See docs/conformance.md.")
    add_conformance_arguments(p)
    p.set_defaults(func=_lazy(".conformance.runner"))

    from .bench import add_arguments as add_bench_arguments

    p = sub.add_parser("bench", help="benchmarks: speed and scale, side by side with vicc and the transport floor",
                       description="In-process, through a real pcscd + vpcd, and at scale; prints a table with "
                       "targets (pass/miss) and writes JSON with --json. See docs/performance.md.")
    add_bench_arguments(p)
    p.set_defaults(func=_lazy(".bench"))

    from .scripting.cli import add_parsers as add_script_parsers

    add_script_parsers(sub)  # run, convert, decode (docs/scripts.md)

    from .inspect import add_parser as add_inspect_parser
    from .shell import add_parser as add_shell_parser
    from .ui import finish_parser

    add_inspect_parser(sub)  # inspect IMAGE: tree, keys, purses, history
    add_shell_parser(sub)  # shell: an interactive card shell (docs/cli.md)
    finish_parser(parser)  # help layout and examples of every subcommand (cardos/ui.py)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ImageError as exc:
        print(f"cardos: error: {exc}", file=sys.stderr)
        return 2
    except TransportError as exc:  # no reader, no card, the card stopped answering
        print(f"cardos: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` & co.: stop quietly
        sys.stderr.close()
        return 0
    except OSError as exc:  # last resort: a file a command could not read or write (never a traceback)
        if exc.filename is None:  # a socket or device: the way to the card
            print(f"cardos: error: {exc.strerror or exc}", file=sys.stderr)
            return 3
        print(f"cardos: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
