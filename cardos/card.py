"""The card: power, the APDU interpreter loop, and atomic commits.

``Card.transmit(bytes) -> bytes`` is the whole interface to the card OS;
transports (vpcd, pyscard, scripts) are thin adapters around it.
"""
from __future__ import annotations

import logging
import random
import secrets
from pathlib import Path

from . import image
from .apdu import CardError, Command, parse
from .commands import DISPATCH, KNOWN_INS, WORKS_WHEN_APP_BLOCKED
from .config import CardConfig
from .filesystem import DF, MF_DEFAULT_NAME, MF_FID, KeyFile, attach
from .keys import Key, KeyType
from .nvm import Journal, PowerCut
from .redact import apdu_hex
from .security import SecurityState
from .store import ImageStore, NotDurable
from .sw import SW, bytes_available, exact_length

log = logging.getLogger(__name__)

TRANSPORT_KEY = b"\xff" * 8
HISTORICAL_BYTES = b"CARDOS CJ304"


def make_atr(historical: bytes = HISTORICAL_BYTES) -> bytes:
    """ATR offering T=0 and T=1 (``3B 8x 80 01 … TCK``)."""
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes((tck,))


DEFAULT_ATR = make_atr()
_OK = int(SW.OK)
_SW_BYTES = {}


def _sw_bytes(sw: int) -> bytes:
    out = _SW_BYTES.get(sw)
    if out is None:
        out = _SW_BYTES[sw] = sw.to_bytes(2, "big")
    return out


def blank_mf() -> DF:
    """MF 3F00 as on a new FMCOS card: key file with transport key 39/00 = FF×8.

    Create and erase need the state (A) that external authentication with
    the transport key gives; after ERASE DF the empty MF is free again.
    """
    mf = DF(MF_FID, MF_DEFAULT_NAME, 0xFFFF, 0xAA, 0xAA, 0x01)
    key_file = KeyFile(0x0000, 0x0050, 0x01, 0xAA, 0xFF, 0xFF)
    transport = Key(KeyType.EXTERNAL_AUTH, 0x00, 0xF0, 0xAA, 0xAA, 0xFF, TRANSPORT_KEY)
    key_file.keys[(transport.base_type, transport.kid)] = transport
    mf.children[key_file.fid] = key_file
    attach(mf, key_file)
    return mf


class Card:
    """An emulated CJ/T 304-style (FMCOS 2.0 family) city card."""

    def __init__(self, mf: DF, *, config: CardConfig | None = None, atr: bytes = DEFAULT_ATR,
                 card_blocked: bool = False, store: ImageStore | None = None):
        self.mf = mf
        self.config = config or CardConfig()
        self.atr = atr
        self.card_blocked = card_blocked
        self.journal = Journal()
        self.security = SecurityState()
        self._store = store
        self.autosave = True
        self._random = secrets.token_bytes
        self.powered = False
        self.last_write_points = 0
        self._reset_volatile()

    # -- construction ----------------------------------------------------
    @classmethod
    def blank(cls, config: CardConfig | None = None) -> "Card":
        """A new blank card held in memory."""
        return cls(blank_mf(), config=config)

    @classmethod
    def open(cls, path, durable: bool = False, autosave: bool = True) -> "Card":
        """A card backed by the image at ``path``; every state change is saved to it.

        The image is locked for this card until :meth:`close` (or the card is
        garbage-collected, or the process ends): another opener, in this
        process or any other, gets :class:`cardos.store.ImageBusy`. With
        ``autosave=False`` changes stay in memory until :meth:`save` (all or
        nothing, as ``cardos issue --card`` needs), the image locked meanwhile.
        """
        store, (atr, config, blocked, mf) = ImageStore.open(path, durable, image.load_card_state)
        card = cls(mf, config=config, atr=atr, card_blocked=blocked, store=store)
        card.autosave = autosave
        return card

    def save_as(self, path, durable: bool = False) -> "Card":
        """Write this card to a new image file (locked, as by :meth:`open`) and keep saving every change there."""
        store = ImageStore.create(path, image.dumps(self), durable)
        if self._store is not None:
            self._store.close()
        self._store = store
        return self

    def save(self) -> None:
        """Write the card's state to its image now (raises :class:`OSError` when it cannot)."""
        if self._store is None:
            raise ValueError("this card has no image: use save_as(path)")
        self._store.write(image.dumps(self))

    def close(self) -> None:
        """Stop saving to the image and release its lock (an in-memory card is unaffected)."""
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> "Card":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def path(self) -> Path | None:
        return self._store.path if self._store else None

    # -- randomness --------------------------------------------------------
    def seed_random(self, seed) -> None:
        """Make challenges and purse randoms deterministic (tests; Python API only)."""
        self._random = random.Random(seed).randbytes

    def set_random_source(self, source) -> None:
        """``source(n) -> bytes`` supplies every random the card draws (tests only)."""
        self._random = source

    def random(self, n: int) -> bytes:
        return self._random(n)

    # -- power -----------------------------------------------------------
    def _reset_volatile(self) -> None:
        self.security.reset()
        self.current_df = self.mf
        self.current_ef = None
        self.current_record = 0
        self.free_access = self.mf.empty
        self.session = None
        self.prior_session = None
        self.challenge = None
        self._pending = b""

    def power_on(self) -> bytes:
        """Cold or warm reset: volatile state cleared, MF selected; returns the ATR."""
        self._reset_volatile()
        self.powered = True
        return self.atr

    reset = power_on

    def power_off(self) -> None:
        self._reset_volatile()
        self.powered = False

    # -- test hooks --------------------------------------------------------
    def arm_power_cut(self, write_point: int) -> None:
        """Cut power at the given write point (1-based) of the next command.

        The command's write points are its journaled writes, then the commit
        (for an image: after the temporary file, before the rename), then one
        after the commit (power lost before the response left the card).
        After a cut ``transmit`` returns ``b""`` (mute card) and the card is
        powered off. ``last_write_points`` tells how many points a command had.
        """
        self.journal.arm_power_cut(write_point)

    # -- the interpreter ---------------------------------------------------
    def transmit(self, apdu: bytes) -> bytes:
        """Execute one command APDU; returns response data ‖ SW1 SW2.

        Never raises: an internal error answers ``6F00`` with the state
        before the command; a simulated power cut answers ``b""``.
        """
        try:
            return self._transmit(bytes(apdu))
        except Exception:  # the last guard: no exception leaves the card
            log.exception("internal error")
            return b"\x6f\x00"

    def _transmit(self, apdu: bytes) -> bytes:
        if not self.powered:
            self.power_on()
        journal = self.journal
        journal.begin()
        security = self.security
        before = (security.mf_level, security.df_level, self.current_df, self.current_ef, self.current_record,
                  self.free_access)
        try:
            data, sw = self._execute(apdu)
            if journal.dirty or journal.forced:
                self._commit()
        except PowerCut:
            journal.rollback()
            self.last_write_points = journal.writes
            self.power_off()
            return b""
        except NotDurable as exc:  # the new image is in place: keep it, but do not claim success
            journal.forget()
            self._fail_closed(before)
            log.warning("command %s: %s; answering 6581 (GET TRANSACTION PROOF finds a purse transaction)",
                        apdu_hex(apdu), exc.strerror)
            data, sw = b"", SW.EEPROM_FAILURE
        except OSError as exc:  # the image could not be saved: the EEPROM write failed
            journal.rollback()
            journal.keep_unsaved()
            self._fail_closed(before)
            log.error("command %s: the card image could not be saved (%s); state rolled back",
                      apdu_hex(apdu), exc.strerror or exc)
            data, sw = b"", SW.EEPROM_FAILURE
        except Exception:
            journal.rollback()
            journal.keep_unsaved()
            self._fail_closed(before)
            log.exception("command %s failed; state rolled back", apdu_hex(apdu))
            data, sw = b"", SW.INVALID_DATA
        finally:
            journal.disarm()
        self.last_write_points = journal.writes
        return data + _sw_bytes(sw) if data else _sw_bytes(sw)

    def _fail_closed(self, before) -> None:
        """A command that did not complete raises nothing: security registers, selection and
        the empty-DF rule as before it; it opens no purse session and leaves no response."""
        security = self.security
        (security.mf_level, security.df_level, self.current_df, self.current_ef, self.current_record,
         self.free_access) = before
        self.session = None
        self._pending = b""

    def _commit(self) -> None:
        journal = self.journal
        if self._store is not None and self.autosave:
            self._store.write(image.dumps(self), journal.tick)
        else:
            journal.tick()
        journal.forget()
        journal.tick_committed()  # committed, but the response has not left the card yet

    def _execute(self, apdu: bytes):
        try:
            cmd = parse(apdu)
        except CardError as exc:
            cmd = None
            sw = exc.sw
        if cmd is not None and cmd.ins == 0xC0 and cmd.cla & 0xF0 == 0x00:
            return self._get_response(cmd)  # transparent to challenge and purse session
        # Any other command, even a malformed one, uses up the previous
        # command's challenge, purse session and pending response.
        self._pending = b""
        self.challenge, self.security.challenge = self.security.challenge, None
        self.prior_session, self.session = self.session, None
        if cmd is None:
            return b"", sw
        cla_class = cmd.cla & 0xF0
        if self.card_blocked:
            return b"", SW.FUNCTION_NOT_SUPPORTED
        if cla_class not in (0x00, 0x80) or cmd.cla & 0x0B:
            return b"", SW.CLA_NOT_SUPPORTED
        key = (cla_class, cmd.ins)
        handler = DISPATCH.get(key)
        if handler is None:
            return b"", SW.CLA_NOT_SUPPORTED if cmd.ins in KNOWN_INS else SW.INS_NOT_SUPPORTED
        if type(handler) is dict:
            handler = handler.get(cmd.p1)
            if handler is None:
                return b"", SW.WRONG_P1P2
        if self.current_df.block and key not in WORKS_WHEN_APP_BLOCKED:
            return b"", SW.FUNCTION_NOT_SUPPORTED
        try:
            result = handler(self, cmd)
        except CardError as exc:
            return b"", exc.sw
        if type(result) is tuple:
            data, sw = result
        else:
            data, sw = result, _OK
        if not data:
            return b"", sw
        return self._fit_le(cmd, data, sw)

    def _fit_le(self, cmd: Command, data: bytes, sw: int):
        le = cmd.le
        if le is None:
            if self.config.t0_get_response:
                self._pending = data
                return b"", bytes_available(len(data))
            return data, sw
        if cmd.le_consumed:
            return data, sw
        if cmd.le_zero:
            if len(data) > le:
                self._pending = data[le:]
                return data[:le], bytes_available(len(self._pending))
            return data, sw
        if len(data) == le or self.journal.dirty:  # never hold back a committed result
            return data, sw
        return b"", exact_length(len(data))

    def _get_response(self, cmd: Command):
        if cmd.p1 or cmd.p2:
            return b"", SW.WRONG_P1P2
        pending = self._pending
        if not pending:
            return b"", SW.CONDITIONS_NOT_SATISFIED
        if cmd.le is None:
            return b"", SW.WRONG_LENGTH
        n = min(cmd.le, len(pending)) if cmd.le_zero else cmd.le
        if n > len(pending):
            return b"", exact_length(len(pending))
        self._pending = rest = pending[n:]
        return pending[:n], bytes_available(len(rest)) if rest else _OK

    # -- helpers for command handlers ---------------------------------------
    def write(self, obj, attr: str, value) -> None:
        """Change a persistent attribute (journaled, atomically committed)."""
        self.journal.set(obj, attr, value)

    def require(self, right: int) -> None:
        """Raise 6982 unless the access right is met (or the DF is still empty)."""
        if not self.free_access and not self.security.satisfied(right):
            raise CardError(SW.SECURITY_NOT_SATISFIED)

    def enter_df(self, df: DF) -> None:
        self.current_df = df
        self.current_ef = None
        self.current_record = 0
        self.security.enter_df(df.is_mf)
        self.free_access = df.empty

    def key_file(self) -> KeyFile:
        key_file = self.current_df.key_file
        if key_file is None:
            raise CardError(SW.FILE_NOT_FOUND)
        return key_file
