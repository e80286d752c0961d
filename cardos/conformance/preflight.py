"""Before the suite sends anything: can it start, and would its verdict mean something?

A problem here is never reported as a card failure: :func:`prepare` raises
:class:`CannotStart`, one line naming the problem and its fix, with the exit
code of docs/cli.md (2: what the user named is wrong — an image, a key set, a
factory, a serial written wrongly; 3: the transport lacks something — pcscd,
a reader, a card, the card ``--serial`` names). In order:

1. ``--serial`` is 16 hex digits or ``blank``; the key set loads (no card touched yet);
2. the target opens: the image exists and loads, the factory imports, pcscd
   runs, the reader exists, a card answers (:mod:`cardos.conformance.targets`);
3. the card's identity (MF 0005) and the serial guard;
4. when the selected tests bring the card into the baseline, whether the key
   set is the card's, spending none of the card's tries:

   * an emulated card: the baseline's issuance runs on a spare copy from the
     same factory (a wrong key costs a try of the copy, never of the card judged);
   * an issued card in a reader: INITIALIZE FOR LOAD of the city purse, whose
     MAC1 the key set's load key must verify (no key try is spent, nothing is
     written; a power cycle drops the session);
   * a blank card in a reader is not checked: only an authentication with its
     transport key would tell, which spends a try; the baseline makes that one
     attempt itself and the summary gives the reason the destructive tests skip.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields

from .baseline import Baseline, BaselineUnavailable, read_identity
from .channel import OK, CardMute, Channel, ConformanceFailure
from .targets import VPCD_FIRST_PORT, EmulatorTarget, TargetError, open_target

INPUT, TRANSPORT = 2, 3          # exit codes (docs/cli.md)
CITY_AID = bytes.fromhex("A00000000386980701")
SERIAL_PATTERN = re.compile(r"[0-9A-F]{16}")


class CannotStart(Exception):
    """The run cannot start (or would mean nothing); ``str()`` is one line with the fix."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class RunOptions:
    """What to judge and with which keys (``cardos conformance`` options, ``--cardos-*`` in pytest)."""

    card: str | None = None
    reader: str | None = None
    factory: str | None = None
    vpcd: bool = False
    vpcd_port: int = VPCD_FIRST_PORT
    keys: str | None = None
    serial: str | None = None

    @classmethod
    def from_pytest(cls, config) -> RunOptions:
        return cls(**{f.name: config.getoption(f"cardos_{f.name}") for f in fields(cls)})

    @classmethod
    def from_args(cls, args) -> RunOptions:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    @property
    def emulated(self) -> bool:
        return self.reader is None or self.vpcd


@dataclass
class Prepared:
    """An opened target that passed the checks, and what the summary header says about it."""

    target: object
    identity: str
    keys: object | None
    keys_label: str
    destructive: str
    closed: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.target.close()


def normal_serial(text: str) -> str:
    return "blank" if text.strip().lower() == "blank" else text.replace(" ", "").upper()


def prepare(options: RunOptions, workdir, uses_baseline: bool = True) -> Prepared:
    """Open the target and run the checks of the module docstring; raises :class:`CannotStart`.

    ``uses_baseline``: some selected test brings the card into the baseline (needs the keys)."""
    serial = _checked_serial(options.serial)
    keys, keys_name, keys_label = _load_keys(options)
    target = _open(options, workdir)
    try:
        who = options.card or (f"card factory {options.factory}" if options.factory else target.label)
        identity = _identity(target, who)
        if serial is not None and serial != identity:
            raise CannotStart(f"{who}: card serial does not match: the card's serial is {identity}, --serial says "
                              f"{options.serial}; put in the card it names, or pass --serial {identity} to judge "
                              f"this one; nothing was changed", TRANSPORT)
        target.destructive_ok = target.emulator or serial is not None
        if uses_baseline and target.destructive_ok and keys is not None:
            _check_keys(target, keys, keys_name, identity, who)
    except BaseException:
        target.close()
        raise
    if target.emulator:
        destructive = "yes (emulated card)"
    elif serial is not None:
        destructive = f"yes (serial {identity} confirmed)"
    else:
        destructive = f"no (pass --serial {identity} to allow them)"
    return Prepared(target, f"ATR {target.atr.hex().upper()}, serial {identity}", keys, keys_label, destructive)


def _checked_serial(given: str | None) -> str | None:
    if given is None:
        return None
    serial = normal_serial(given)
    if serial != "blank" and not SERIAL_PATTERN.fullmatch(serial):
        raise CannotStart(f"--serial {given!r}: write the card's serial as the 16 hex digits of MF 0005 "
                          f"(e.g. 3100000000000304) or 'blank'", INPUT)
    return serial


def _load_keys(options: RunOptions) -> tuple:
    """(key set, its name, its label for the summary); emulated cards default to the TEST key set."""
    from ..keyset import KeySetError, load

    name = options.keys if options.keys is not None else ("test" if options.emulated else None)
    if name is None:
        return None, None, "none"
    try:
        keys = load(name)
    except KeySetError as exc:
        raise CannotStart(str(exc), INPUT) from None
    return keys, name, f"{name} ({keys.algorithm_name}{', TEST keys' if keys.test else ''})"


def _open(options: RunOptions, workdir):
    try:
        return open_target(card=options.card, reader=options.reader, factory=options.factory, vpcd=options.vpcd,
                           vpcd_port=options.vpcd_port, workdir=workdir)
    except TargetError as exc:
        raise CannotStart(_pcscd_advice(str(exc)), exc.exit_code) from None
    except Exception as exc:  # noqa: BLE001 - a user's card factory failed while making the card
        if options.factory is None:
            raise
        raise CannotStart(f"card factory {options.factory}: {type(exc).__name__}: {exc}", INPUT) from None


def _pcscd_advice(message: str) -> str:
    """pyscard's "cannot list readers" when pcscd is down, said as what to do."""
    from ..transports.diagnose import pcscd_running, pcscd_socket_path

    if message.startswith("cannot list PC/SC readers") and not pcscd_running():
        return (f"pcscd is not running (nothing answers on {pcscd_socket_path()}): start it (`pcscd` as root, "
                f"or `systemctl start pcscd`) and retry")
    return message


def _identity(target, who: str) -> str:
    try:
        ch = Channel(target)
        ch.power_cycle()
        return read_identity(ch)
    except Exception as exc:  # noqa: BLE001 - every transport has its own errors: no card, mute card
        raise CannotStart(f"{who}: cannot read the card ({exc}); is the card inserted and powered?",
                          TRANSPORT) from None


def _check_keys(target, keys, keys_name: str, identity: str, who: str) -> None:
    factory = getattr(target, "factory", None)
    if factory is not None:
        evidence = _baseline_on_a_copy(factory, keys, who)
    elif identity != "blank":
        evidence = _load_mac1(target, keys, identity)
    else:
        return
    if evidence:
        raise CannotStart(f"{who}: the card's keys are not those of key set {keys_name} ({evidence}): pass "
                          f"--keys FILE, the key set the card was issued with", INPUT)


def _baseline_on_a_copy(factory, keys, who: str) -> str:
    """Issue a spare copy as the baseline would: why the key set is wrong, or ``""``."""
    spare = EmulatorTarget(factory, "spare copy (pre-flight key check)")
    try:
        Baseline(keys).ensure(Channel(spare), "city")
    except BaselineUnavailable as exc:
        if exc.sw is None:  # the key set cannot issue the profile at all (a role missing)
            raise CannotStart(f"{who}: {exc}", INPUT) from None
        return f"{exc.step or 'EXTERNAL AUTHENTICATE'} answered {exc.sw:04X} on a copy; no try of the card spent"
    except (ConformanceFailure, CardMute):
        pass  # the card's own answers: judging them is the suite's job, not the pre-flight's
    finally:
        spare.close()
    return ""


def _load_mac1(target, keys, identity: str) -> str:
    """INITIALIZE FOR LOAD on the city purse: ``""`` unless its MAC1 fails with this key set."""
    from ..keyset import KeySetError
    from .purse import EP, PurseTerminal

    ch = Channel(target)
    try:
        if ch.send(b"\x00\xa4\x04\x00" + bytes((len(CITY_AID),)) + CITY_AID + b"\x00").sw != OK:
            return ""  # no city application: nothing to compare with
        PurseTerminal(ch, keys, bytes.fromhex(identity)).initialize(0x00, EP, 1, 1)
    except ConformanceFailure as exc:
        # only a MAC1 that does not verify speaks about the keys; another refusal is for the suite to judge
        return "MAC1 of INITIALIZE FOR LOAD does not verify with it; no try spent" if exc.message.startswith("MAC1") \
            else ""
    except (CardMute, KeySetError):
        return ""
    finally:
        try:
            ch.power_cycle()  # drop the load session
        except CardMute:
            pass
    return ""
