"""Bringing the card under test into a known state, and telling cards apart.

**Identity** (the serial guard): the application serial in MF EF 0005
bytes 8..15 (``00 B0 85 08 08``, free to read on cardos-issued cards),
as 16 hex digits; ``"blank"`` when the card has no readable 0005 (a blank
card, an erased one, or a card with another layout).

**Baseline**: the card issued with a shipped profile (``city`` by default)
and the key set, keeping its serial (a blank card gets
:data:`DEFAULT_SERIAL`), plus the *scratch DF* — a DF under the MF with
free create and erase rights, where the core-command tests build the files
and keys they need after an ``ERASE DF``. Issuing:

* a card with a serial is re-issued: its MF master key (role
  ``card_master`` diversified with the serial) opens ``ERASE DF``;
* a blank card is issued with its transport key (the key set's
  ``transport`` role, else FF×8);
* an erased card (MF without key file: free access) is issued without
  authentication.

Tests that leave the card in another state (a blocked application, another
profile) mark the baseline dirty; the next test that needs it issues again.
"""
from __future__ import annotations

from datetime import date

from .apdus import FREE, SELECT_MF, add_key, apdu, counter, create_df, create_key_file, key_record, select_fid
from .channel import OK, Channel, ConformanceFailure, command_label, hexs, sw_text

DEFAULT_SERIAL = "3100000000000304"
PIN = "123456"
HOLDER = "CONFORMANCE"
SERIAL_APDU = bytes.fromhex("00B0850808")

SCRATCH_FID = 0xDF20
SCRATCH_NAME = b"\xf0CONFORM"
SCRATCH_SPACE = 0x0800


class BaselineUnavailable(Exception):
    """The card cannot be brought into the baseline (no key set, wrong keys, no space).

    ``sw``: the ``63CX`` a wrong key got (the key set is not the card's), else None;
    ``step``: the personalization step that got it."""

    def __init__(self, message: str, sw: int | None = None, step: str = ""):
        super().__init__(message)
        self.sw = sw
        self.step = step


def read_identity(ch: Channel) -> str:
    """The card's serial (16 hex digits) from MF 0005, or ``"blank"``."""
    r = ch.send(SELECT_MF)
    if r.sw not in (OK, 0x6283):
        return "blank"
    r = ch.send(SERIAL_APDU)
    if r.sw == OK and len(r.data) == 8:
        return hexs(r.data)
    return "blank"


def external_authenticate(ch: Channel, kid: int, key: bytes, algorithm=None, why: str = "") -> None:
    from ..terminal.secure import external_auth_cryptogram

    challenge = ch.challenge()
    kwargs = {"algorithm": algorithm} if algorithm is not None else {}
    ch.ok(apdu(0x00, 0x82, 0x00, kid, external_auth_cryptogram(key, challenge, **kwargs)),
          why or f"external authentication with key 39/{kid:02X}")


class Baseline:
    """The issued card the destructive tests work on (one per test session)."""

    def __init__(self, keys, today: date | None = None):
        self.keys = keys
        self.today = today
        self.profile: str | None = None
        self.plan = None
        self.serial: bytes | None = None
        self.dirty = False
        self.issues = 0
        self.unavailable = ""
        self.refused: ConformanceFailure | None = None

    # -- issuing ------------------------------------------------------------------------------
    def ensure(self, ch: Channel, profile: str = "city") -> Baseline:
        """Issue ``profile`` (and the scratch DF) unless the card already is in that state."""
        if self.profile == profile and not self.dirty:
            return self
        if self.keys is None:
            raise BaselineUnavailable("bringing the card into a known state needs the issuer key set (--keys)")
        if self.refused is not None:  # the card refused a personalization step before: do not try again
            raise ConformanceFailure(self.refused.command, f"(as before) {self.refused.message}")
        try:
            self.issue(ch, profile)
        except ConformanceFailure as exc:
            self.refused = exc
            raise
        return self

    def ensure_any(self, ch: Channel) -> Baseline:
        """Issue the default profile unless some profile is already on the card."""
        if self.profile is not None and not self.dirty:
            return self
        return self.ensure(ch, "city")

    def issue(self, ch: Channel, profile: str) -> None:
        from ..personalize import Authenticate, IssueError, compile_card, run

        ch.power_cycle()
        identity = read_identity(ch)
        if identity != "blank":
            serial = identity
        else:  # a blank or erased card keeps the serial it had earlier in this run
            serial = hexs(self.serial) if self.serial else DEFAULT_SERIAL
        params = {"app_serial": serial, "pin": PIN, "holder_name": HOLDER}
        log = self._log(ch)
        ch.note(f"issuing profile {profile} (serial {serial}, {'re-issue' if identity != 'blank' else 'blank card'})")
        self.profile, self.dirty = None, True
        try:
            plan = compile_card(_profile(profile), self.keys, params, self.today, reissue=identity != "blank")
        except Exception as exc:  # noqa: BLE001 - ProfileError, KeySetError: the key set lacks a role
            raise BaselineUnavailable(f"cannot issue profile {profile} with this key set: {exc}") from None
        try:
            try:
                run(plan.steps, ch.target.transmit, log)
            except IssueError as exc:
                if identity == "blank" and exc.sw in (0x6A82, 0x6A88) and exc.step == plan.steps[1].label:
                    # an erased MF: no key file, free access - issue without authentication
                    ch.note("the MF has no key file (erased card): issuing without authentication")
                    run([s for i, s in enumerate(plan.steps) if not (i == 1 and isinstance(s, Authenticate))],
                        ch.target.transmit, log)
                else:
                    raise
        except IssueError as exc:
            if exc.sw is not None and exc.sw >> 4 == 0x63C:
                raise BaselineUnavailable(f"{exc} (the card was issued with another key set?)", exc.sw,
                                          exc.step) from None
            command = command_label(exc.apdu) if exc.apdu else "personalization"
            raise ConformanceFailure(command, f"issuing profile {profile}: {exc}") from None
        self.plan = plan
        self.serial = bytes.fromhex(serial)
        self._create_scratch(ch)
        ch.power_cycle()
        self.profile, self.dirty = profile, False
        self.issues += 1

    @staticmethod
    def _log(ch: Channel):
        def log(label, apdu_bytes, response):
            ch.trace.add(apdu_bytes, response, label)
        return log

    def _create_scratch(self, ch: Channel) -> None:
        self.mf_authenticate(ch)
        ch.ok(create_df(SCRATCH_FID, SCRATCH_NAME, SCRATCH_SPACE, create=FREE, erase=FREE, app_file_id=0x01),
              "create the scratch DF")
        ch.ok(SELECT_MF)

    # -- keys of the issued card ---------------------------------------------------------------
    def card_key(self, df: str, name: str) -> bytes:
        return self.plan.card_key(df, name)

    def mf_authenticate(self, ch: Channel) -> None:
        """SELECT MF and authenticate with the card master (MF register := its state)."""
        ch.ok(SELECT_MF)
        external_authenticate(ch, 0x00, self.card_key("mf", "master"), why="MF master key")


def _profile(name: str):
    from .. import profiles

    return profiles.load(name)


class Scratch:
    """The scratch DF: erased at the start of each test that uses it.

    After :meth:`fresh` the DF is current and empty, so the empty-DF rule
    gives free access until the DF is left: the test creates its key file,
    keys and files, then calls :meth:`enter` (select MF, select the DF
    again), after which every access right is enforced.
    """

    FID = SCRATCH_FID
    NAME = SCRATCH_NAME

    def __init__(self, ch: Channel):
        self.ch = ch

    def fresh(self) -> Scratch:
        ch = self.ch
        ch.ok(SELECT_MF, "select MF")
        ch.ok(select_fid(self.FID), "select the scratch DF")
        ch.ok("800E000000", "ERASE DF of the scratch DF")
        return self

    def enter(self) -> Scratch:
        """Leave and re-enter the DF: security registers 0, rights enforced."""
        self.ch.ok(SELECT_MF, "select MF")
        self.ch.ok(select_fid(self.FID), "select the scratch DF")
        return self

    def key_file(self, size: int = 0x0200, add: int = FREE) -> Scratch:
        self.ch.ok(create_key_file(size, 0x01, add), "create the key file")
        return self

    def key(self, key_type: int, kid: int, value: bytes, use: int = FREE, change: int = FREE, b3: int = 0x01,
            b4: int = counter(3)) -> Scratch:
        self.ch.ok(add_key(kid, key_record(key_type, use, change, b3, b4, value)),
                   f"add key {key_type:02X}/{kid:02X}")
        return self

    def auth_key(self, kid: int, value: bytes, state: int, tries: int = 3, use: int = FREE,
                 change: int = FREE) -> Scratch:
        """An external-authentication key (type 39) giving ``state``."""
        return self.key(0x39, kid, value, use, change, state, counter(tries))

    def create(self, apdu_bytes: bytes, why: str = "create a file") -> Scratch:
        self.ch.ok(apdu_bytes, why)
        return self

    def authenticate(self, kid: int, value: bytes) -> None:
        external_authenticate(self.ch, kid, value)


def explain_sw(sw: int) -> str:
    return sw_text(sw)
