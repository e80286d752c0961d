"""``cardos serve IMAGE… [--vpcd HOST:PORT]…``: cards inside a real pcscd.

Each image becomes the card in one vpcd slot. Without ``--vpcd`` the cards
go to ``localhost:35963``, ``:35964``, …; one ``--vpcd`` gives the first
port of consecutive slots; otherwise give one ``--vpcd`` per image.

While serving: SIGUSR1 pulls every card out of its reader, or puts them
back; ``--control PATH`` opens a socket for per-slot removal, tear and
status (:mod:`cardos.transports.control`). SIGTERM, SIGINT and SIGHUP
remove the cards cleanly and exit 0. Every acknowledged command is already
committed to the image, so even SIGKILL loses nothing that a terminal saw.

Exit codes: 0 stopped by a signal, 2 usage or image error, 3 pcscd/vpcd
cannot be reached (one line on stderr says why and how to fix it).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from .control import ControlServer
from .diagnose import VpcdError
from .vpcd import DEFAULT_HOST, DEFAULT_PORT, Slot, VpcdServer, parse_address

log = logging.getLogger("cardos.serve")

EXIT_USAGE = 2


def add_arguments(parser) -> None:
    parser.epilog = ("While serving, SIGUSR1 pulls the card(s) out of the reader or puts them back; SIGTERM, SIGINT "
                     "and SIGHUP remove them and exit 0. Exit codes: 2 usage or image error, 3 pcscd/vpcd "
                     "unreachable (one line says why and how to fix it).")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="card image(s) to serve (see `cardos new`)")
    parser.add_argument("--vpcd", action="append", metavar="HOST:PORT",
                        help=f"vpcd slot to connect to (default {DEFAULT_HOST}:{DEFAULT_PORT}); repeat once per "
                             "image, or give one for consecutive ports")
    parser.add_argument("--control", metavar="SOCKET",
                        help="Unix socket for remove/insert/toggle/tear/status/stop commands (see docs/pcsc.md)")
    parser.add_argument("--wait", action="store_true",
                        help="keep retrying until pcscd and its vpcd slot are there, instead of failing at once")
    parser.add_argument("--timeout", type=seconds, default=3.0, metavar="SECONDS",
                        help="how long to wait for vpcd to accept and poll the card before calling the slot busy "
                             "(default 3)")
    parser.add_argument("--durable", action="store_true",
                        help="fsync every commit (survives a host power loss, not only a crash)")
    parser.add_argument("--trace", metavar="FILE",
                        help="write every APDU decoded (name, fields, SW meaning, duration) with a timestamp, and "
                             "the power and insert/remove events, to FILE (mode 0600; `cardos decode FILE` reads it)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="the same decoded trace on stderr, and connection details (never vpcd's ATR polls)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def open_trace(args):
    """The decoded APDU trace of ``--trace FILE`` and/or ``-v`` (stderr), or None."""
    if not args.trace and not args.verbose:
        return None
    from .trace import ApduTrace

    return ApduTrace.open(args.trace, echo=sys.stderr if args.verbose else None, title=", ".join(args.images),
                          labelled=len(args.images) > 1)


def assign_addresses(n_images: int, vpcd: list[str] | None) -> list[tuple[str, int]]:
    """Addresses for ``n_images`` cards from the ``--vpcd`` options.

    >>> assign_addresses(2, None)
    [('localhost', 35963), ('localhost', 35964)]
    >>> assign_addresses(2, ["10.0.0.5:35964", ":35963"])
    [('10.0.0.5', 35964), ('localhost', 35963)]
    """
    if not vpcd:
        return [(DEFAULT_HOST, DEFAULT_PORT + i) for i in range(n_images)]
    parsed = [parse_address(text) for text in vpcd]
    if len(parsed) == 1:
        host, port = parsed[0]
        if port + n_images - 1 > 65535:
            raise ValueError(f"no room for {n_images} consecutive ports from {port}")
        return [(host, port + i) for i in range(n_images)]
    if len(parsed) != n_images:
        raise ValueError(f"{n_images} image(s) but {len(parsed)} --vpcd option(s): give one per image, "
                         "or one for consecutive ports")
    if len(set(parsed)) != len(parsed):
        raise ValueError("two images for the same vpcd slot")
    return parsed


def _setup_logging(args) -> None:
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    root = logging.getLogger("cardos")
    for old in [h for h in root.handlers if getattr(h, "_cardos_serve", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("cardos serve: %(message)s"))
    handler._cardos_serve = True
    root.addHandler(handler)
    root.setLevel(level)


def run(args) -> int:
    from ..card import Card

    try:
        addresses = assign_addresses(len(args.images), args.vpcd)
    except ValueError as exc:
        print(f"cardos serve: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    resolved = [os.path.realpath(image) for image in args.images]
    if len(set(resolved)) != len(resolved):
        print("cardos serve: error: the same image twice (one card cannot sit in two readers)", file=sys.stderr)
        return EXIT_USAGE
    _setup_logging(args)

    cards: list = []
    trace = None
    control = None
    server = None
    # Block the signals in every thread and take them synchronously here: a
    # process signal may otherwise land on a slot thread blocked in recv()
    # and never wake the main thread.
    signals = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    waiter = threading.get_ident()
    try:
        for image in args.images:
            cards.append(Card.open(image, durable=args.durable))  # locked until closed (cardos/store.py)
        try:
            trace = open_trace(args)
        except OSError as exc:
            print(f"cardos serve: error: --trace {args.trace}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        slots = [Slot(card, host, port, connect_timeout=args.timeout, poll_timeout=args.timeout, trace=trace)
                 for card, (host, port) in zip(cards, addresses)]
        server = VpcdServer(slots)
        if args.control:
            try:
                control = ControlServer(args.control, slots, args.images,
                                        on_stop=lambda: signal.pthread_kill(waiter, signal.SIGTERM))
            except OSError as exc:
                print(f"cardos serve: error: control socket {args.control}: {exc.strerror or exc}", file=sys.stderr)
                return EXIT_USAGE
            control.start()
        try:
            server.start(fail_fast=not args.wait)
        except VpcdError as exc:
            print(f"cardos serve: error: {exc}", file=sys.stderr)
            return exc.exit_code
        verb = "waiting for vpcd at" if args.wait else "serving at"
        for image, slot in zip(args.images, slots):
            print(f"{image}: {verb} {slot.label} (pid {os.getpid()})", flush=True)
        while True:
            signum = signal.sigwait(signals)
            if signum == signal.SIGUSR1:
                for slot in slots:
                    slot.toggle()
            else:
                log.info("stopping (%s): removing the card(s)", signal.Signals(signum).name)
                return 0
    finally:
        if control is not None:
            control.close()
        if server is not None:
            server.stop()
        for card in cards:
            card.close()
        if trace is not None:
            trace.close()
        while signals & signal.sigpending():  # do not let a late signal hit the default action
            signal.sigwait(signals & signal.sigpending())
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

