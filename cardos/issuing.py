"""Command-line front ends of card creation: ``cardos keys``, ``cardos issue``, ``cardos profiles``.

Errors are one line naming the file, the field and the reason. Exit codes:
0 done, 1 the card refused a step (the message names it), 2 a bad profile,
key set, image or argument, 3 no reader / no card. A card image is never
left half-issued: ``--out`` refuses an existing file and is written only
after the last step; ``--card`` issues into memory and replaces the image
atomically at the end.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import image as image_module
from . import profiles as P
from .keyset import STANDARD_ROLES, KeySet, KeySetError, load as load_keyset
from .personalize import IssueError, add_application, issue, script_header, script_text
from .privatefile import write_failure, write_private
from .redact import apdu_hex
from .textfile import write_problem
from .tries import NotBlank, check_blank


class _Fail(Exception):
    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _err(message: str) -> None:
    print(f"cardos: error: {message}", file=sys.stderr)


# -- cardos keys ------------------------------------------------------------------------------

def add_keys_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("new", help="make a key set of random master keys",
                       description="Write a new issuer key set FILE (JSON, mode 0600) with random master keys "
                                   "(Python secrets) for every standard role. Keys are not printed unless --show. "
                                   "See docs/keysets.md.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--sm4", action="store_true", help="SM4 masters (default: 2-key 3DES)")
    p.add_argument("--test", action="store_true", help="mark the key set as TEST keys (may be shared)")
    p.add_argument("--show", action="store_true", help="print the master keys")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.add_argument("--description", metavar="TEXT", default="", help="a note stored in the file")
    p = sub.add_parser("show", help="list the roles of a key set with key check values",
                       description="Validate FILE (or a shipped key set: test, test-sm4) and list its roles, "
                                   "indexes and key check values (KCV); master keys only with --show.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--show", action="store_true", help="print the master keys too")


def _print_keyset(ks: KeySet, show: bool, out) -> None:
    purposes = {role: purpose for role, _i, purpose in STANDARD_ROLES}
    print(f"{ks.path}: {ks.algorithm_name} key set{' (TEST keys)' if ks.test else ''}"
          + (f" — {ks.description}" if ks.description else ""), file=out)
    for role in ks.roles():
        for index in sorted(ks.keys[role]):
            line = f"  {role + '.' + str(index):16s} KCV {ks.kcv(role, index)}"
            if show:
                line += f"  {ks.master(role, index).hex().upper()}"
            if role in purposes and index == min(ks.keys[role]):
                line += f"  {purposes[role]}"
            print(line, file=out)


def run_keys(args, out=None) -> int:
    out = out or sys.stdout
    try:
        if args.keys_command == "new":
            ks = KeySet.generate(sm4=args.sm4, test=args.test, description=args.description)
            ks.save(args.file, overwrite=args.force)
            n = sum(len(v) for v in ks.keys.values())
            print(f"wrote {ks.algorithm_name} key set {args.file} ({len(ks.keys)} roles, {n} master keys, mode 0600"
                  f"{', TEST keys' if ks.test else ''})", file=out)
            if args.show:
                _print_keyset(ks, True, out)
            return 0
        _print_keyset(load_keyset(args.file), args.show, out)
        return 0
    except KeySetError as exc:
        _err(str(exc))
        return 2


# -- cardos profiles --------------------------------------------------------------------------

def add_profiles_arguments(parser) -> None:
    parser.add_argument("profile", nargs="?", metavar="NAME|FILE",
                        help="a shipped profile or a profile file to validate and describe")


def describe_profile(profile: P.Profile, out) -> None:
    print(f"{profile.name} ({profile.kind}): {profile.description}", file=out)
    print(f"  file {profile.path}", file=out)
    print("  parameters:", file=out)
    for name, p in profile.params.items():
        default = "(required)" if p.default is None else repr(p.default)
        print(f"    {name:18s} {p.type:6s} {default}" + (f"  {p.help}" if p.help else ""), file=out)
    for df in profile.dfs():
        title = "MF 3F00" if df.is_mf else f"{df.name} {df.fid:04X} AID {df.df_name.hex().upper()}"
        print(f"  {title}: create {df.create:02X} erase {df.erase:02X}", file=out)
        for k in df.keys:
            source = f"role {k.role}.{k.index}" if k.role else "value from parameters"
            print(f"    key {k.name:12s} {k.stored_type:02X}/{k.kid:02X} {source}"
                  + (" [secure update]" if k.secure_update else ""), file=out)
        for ef in df.files:
            print(f"    EF {ef.fid:04X} {ef.kind:8s} {ef.name}", file=out)
    if profile.lockdown:
        print(f"  lock-down: {len(profile.lockdown)} step(s)", file=out)
    print(f"  key-set roles needed: {', '.join(sorted(profile.roles()))}", file=out)


def run_profiles(args, out=None) -> int:
    out = out or sys.stdout
    if not args.profile:
        for name in P.shipped():
            profile = P.load(name)
            print(f"{name:14s} {profile.kind:12s} {profile.description}", file=out)
        return 0
    try:
        describe_profile(P.load(args.profile), out)
    except P.ProfileError as exc:
        _err(str(exc))
        return 2
    return 0


# -- cardos issue -----------------------------------------------------------------------------

def add_issue_arguments(parser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--profile", metavar="NAME|FILE", help="issue a blank card with this card profile "
                      f"(shipped: {', '.join(P.shipped())})")
    what.add_argument("--add-app", metavar="NAME|FILE", dest="add_app",
                      help="add the application(s) of this application profile to an issued card")
    parser.add_argument("--keys", metavar="FILE", required=True,
                        help="issuer key set (cardos keys new FILE; shipped test sets: test, test-sm4)")
    parser.add_argument("--issuer-keys", metavar="FILE", dest="issuer_keys",
                        help="--add-app: key set holding the MF key that grants the create right "
                             "(default: --keys); also the transport key role for --profile")
    parser.add_argument("--serial", metavar="N", help="card sequence number (the profile's serial parameter)")
    parser.add_argument("--reissue", action="store_true",
                        help="--profile on a card issued before with this key set and serial: authenticate "
                             "with its MF master key instead of the transport key, erase it, issue it again")
    parser.add_argument("--param", metavar="NAME=VALUE", action="append", default=[],
                        help="set a profile parameter (repeatable); see cardos profiles NAME")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--out", metavar="IMAGE", help="issue an emulated card into this new image file")
    target.add_argument("--card", metavar="IMAGE", help="an existing card image (a blank one from cardos new, or "
                        "an issued one for --add-app); replaced atomically when every step succeeded")
    target.add_argument("-r", "--reader", metavar="NAME",
                        help="a card in this PC/SC reader (name, unique part, or index)")
    parser.add_argument("--count", type=int, default=1, metavar="N",
                        help="issue N new cards with consecutive serials from --serial (default 1); --out then "
                             "names each image with {serial} or {n} (a format spec too: {n:04d}), e.g. --out "
                             "'cards/{serial}.card' (without --out: a dry run in memory); a progress line on a "
                             "terminal and a summary (one line per card with -v)")
    parser.add_argument("--yes", action="store_true",
                        help="--profile with --card or --reader: go on although the card is not blank "
                             "(authenticating with the transport key then spends one of its tries)")
    parser.add_argument("--save-script", metavar="FILE", dest="save_script",
                        help="also save the APDU sequence as a cardos script that recomputes MACs when run")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every APDU exchange")


def _params(args) -> dict:
    params = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _Fail(f"--param {item!r}: write NAME=VALUE")
        params[name.strip()] = value
    if args.serial is not None:
        params["serial"] = args.serial
    return params


def _open_reader(name: str):
    """A pyscard connection with ``transmit(bytes) -> bytes``."""
    from .transports.pcsc import PcscTransport, TransportError

    try:
        return PcscTransport(name)
    except TransportError as exc:
        raise _Fail(str(exc), 3) from None


def _check_writable(option: str, path: str | None) -> None:
    """Refuse an output path that cannot be written before anything is sent to a card."""
    problem = write_problem(path) if path is not None else None
    if problem:
        raise _Fail(f"{option} {path}: {problem}")


def _image_card(path: str):
    """A card image, locked, its changes kept in memory until we save them (all or nothing)."""
    from .card import Card

    return Card.open(path, autosave=False)


def _logger(out):
    def log(label, apdu, response):
        sw = response[-2:].hex().upper() if len(response) >= 2 else "----"
        shown = apdu_hex(apdu)  # a plain WRITE KEY's key value as * (docs/robustness.md)
        if len(shown) > 48:
            shown = shown[:45] + "..."
        print(f"  {label[:58]:58s} > {shown:48s} < {sw}", file=out)
    return log


def run_issue(args, out=None) -> int:
    out = out or sys.stdout
    try:
        if getattr(args, "count", 1) != 1:
            return _run_many(args, out)
        return _run_issue(args, out)
    except _Fail as exc:
        _err(str(exc))
        return exc.code
    except (P.ProfileError, KeySetError, image_module.ImageError) as exc:
        _err(str(exc))
        return 2
    except IssueError as exc:  # one line: what the card refused, and what became of the image
        if args.card:
            exc = f"{exc}; the card image {args.card} is unchanged"
        elif args.out:
            exc = f"{exc}; nothing was written to {args.out}"
        _err(str(exc))
        return 1


def _run_issue(args, out) -> int:
    if args.serial is not None and args.add_app:
        raise _Fail("--serial names a new card's number; with --add-app the card serial is read from the card "
                    "(or give --param card_serial=HEX)")
    profile = P.load(args.profile or args.add_app)
    if args.profile and profile.kind != "card":
        raise _Fail(f"{profile.path}: kind: is \"application\"; use --add-app {args.profile}")
    if args.add_app and profile.kind != "application":
        raise _Fail(f"{profile.path}: kind: is \"card\"; use --profile {args.add_app}")
    keyset = load_keyset(args.keys)
    issuer_keys = load_keyset(args.issuer_keys) if args.issuer_keys else None
    params = _params(args)
    if args.out and os.path.exists(args.out):
        raise _Fail(f"{args.out}: already exists (refusing to overwrite a card image; use --card to issue onto it)")
    if args.reissue and args.add_app:
        raise _Fail("--reissue goes with --profile (it erases the card)")
    if args.add_app and not (args.card or args.reader):
        raise _Fail("--add-app needs the issued card: --card IMAGE or --reader NAME")
    if args.save_script and issuer_keys is not None and args.add_app:
        raise _Fail("--save-script: a script names one key set; save it without --issuer-keys")
    if args.save_script and keyset.path is None:
        raise _Fail("--save-script needs a key-set file")
    for option, path in (("--out", args.out), ("--save-script", args.save_script)):
        _check_writable(option, path)

    # the card: in memory (new or loaded image) or in a reader
    reader = None
    if args.reader:
        reader = _open_reader(args.reader)
        target = reader.transmit
        where = f"the card in {getattr(reader, 'label', args.reader)}"
    else:
        from .card import Card

        card = _image_card(args.card) if args.card else Card.blank()
        card.power_on()
        target = card.transmit
        where = args.card or args.out or "a blank card in memory (dry run: nothing saved)"
    if reader is not None and keyset.test:
        print("warning: issuing a card in a reader with TEST keys (public; never for cards in the field)",
              file=sys.stderr)
    log = _logger(out) if args.verbose else None
    try:
        if args.profile and not args.reissue and (args.card or reader is not None):
            try:  # before the transport key is tried: a card that is not blank would lose a try
                shown = (f"the card in reader {getattr(reader, 'label', args.reader)!r}" if reader is not None
                         else f"the card image {args.card}")
                check_blank(target, shown, args.yes)
            except NotBlank as exc:
                raise _Fail(str(exc), 1) from None
        if args.add_app:
            plan = add_application(target, profile, keyset, params, mf_keyset=issuer_keys, log=log)
        else:
            plan = issue(target, profile, keyset, params, log=log, transport_keyset=issuer_keys,
                         reissue=args.reissue)
    finally:
        if reader is not None and hasattr(reader, "close"):
            reader.close()

    if not args.reader:
        try:
            if args.out:
                card.save_as(args.out)
            elif args.card:
                card.save()
        except OSError as exc:  # a missing directory, a read-only place, a full disk: nothing was written
            raise _Fail(f"{args.out or args.card}: cannot write the card image: {exc.strerror or exc}; "
                        "nothing was changed") from None
    apps = ", ".join(f"{a.name} ({a.df_name.hex().upper()})" for a in profile.applications)
    serial = plan.values.get("app_serial") or plan.values.get("card_serial")
    verb = "added" if args.add_app else "issued"
    print(f"{verb} {profile.name}: {apps}; serial {serial}; {plan.apdu_count} APDUs; "
          f"{plan.eeprom} bytes of EEPROM; {where}", file=out)
    if args.save_script:
        ref = _keys_ref(keyset, args.save_script)
        what = (f"add {profile.name} to the card with serial {serial}" if args.add_app
                else f"issue {profile.name} onto a blank card")
        text = script_text(plan, ref, script_header(plan, keyset, what))
        try:
            write_private(args.save_script, text)  # key references, maybe PINs: 0600 (docs/robustness.md)
        except OSError as exc:
            raise _Fail(f"--save-script {args.save_script}: {write_failure(exc)} "
                        f"(the card was {verb} all the same)") from None
        print(f"saved the APDU script {args.save_script} (run it with: cardos run {args.save_script} "
              "--card IMAGE | --reader NAME)", file=out)
    return 0


def _run_many(args, out) -> int:
    """``--count N``: N new cards, serials from ``--serial`` up, one image each (``{serial}``/``{n}`` in ``--out``)."""
    import copy
    import io
    import time

    from .ui import progress

    if args.count < 1:
        raise _Fail("--count must be at least 1")
    if args.add_app or args.card or args.reader or args.reissue or args.save_script:
        raise _Fail("--count issues new cards: use it with --profile and --out PATTERN (or no --out for a dry run)")
    try:
        first = int(args.serial) if args.serial is not None else 1
    except ValueError:
        raise _Fail(f"--serial {args.serial!r}: with --count the serial is a number (the first card's)") from None
    if args.out:
        _image_name(args.out, first, 1)  # a bad pattern is refused before the first card
    started = time.perf_counter()
    done = 0
    with progress(args.count, "issuing") as bar:
        for n in range(args.count):
            one = copy.copy(args)
            one.count, one.serial = 1, str(first + n)
            if args.out:
                one.out = _image_name(args.out, first + n, n + 1)
                parent = os.path.dirname(one.out)
                if parent:
                    os.makedirs(parent, exist_ok=True)
            buffer = io.StringIO()
            try:
                _run_issue(one, buffer)
            except BaseException:
                bar.close()
                if done:  # what was made before the error (the error itself is the next line)
                    print(f"cardos: issued {done} of {args.count} cards before serial {one.serial} failed",
                          file=sys.stderr)
                raise
            done += 1
            if args.verbose:  # one line per card (and its APDUs); otherwise the progress line and the summary
                bar.write(buffer.getvalue().rstrip("\n"), out)
            bar.advance(note=f"serial {one.serial}")
    seconds = time.perf_counter() - started
    where = f"into {args.out}" if args.out else "in memory (dry run: nothing saved)"
    print(f"issued {done} cards, serials {first}..{first + done - 1}, {where} in {seconds:.1f} s "
          f"({seconds / done * 1000:.0f} ms per card)", file=out)
    return 0


def _image_name(pattern: str, serial: int, n: int) -> str:
    """``--out`` with ``{serial}`` / ``{n}`` (format specs allowed: ``{n:04d}``) filled in for one card."""
    import string

    try:
        fields = {name for _text, name, _spec, _conv in string.Formatter().parse(pattern) if name is not None}
        if not fields & {"serial", "n"}:
            raise ValueError("no {serial} or {n}")
        return pattern.format(serial=serial, n=n)
    except (ValueError, KeyError, IndexError) as exc:
        raise _Fail(f"--out {pattern}: with --count, put {{serial}} or {{n}} in the name, e.g. --out "
                    f"'cards/{{serial}}.card' or 'cards/{{n:04d}}.card' ({exc})") from None


def _keys_ref(keyset: KeySet, script_path: str) -> str:
    from .keyset import SHIPPED_DIR

    path = Path(keyset.path)
    if path.parent.resolve() == SHIPPED_DIR.resolve():
        return path.stem
    try:
        return os.path.relpath(path.resolve(), Path(script_path).resolve().parent)
    except ValueError:  # another drive (Windows)
        return str(path.resolve())


def main(argv=None) -> int:  # pragma: no cover - convenience for python -m
    parser = argparse.ArgumentParser(prog="cardos issue")
    add_issue_arguments(parser)
    return run_issue(parser.parse_args(argv))
