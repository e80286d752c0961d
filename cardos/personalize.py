"""The personalization engine: profile + key set + per-card parameters → APDUs.

:func:`compile_card` turns a ``card`` profile into the exact command sequence
a personalization machine sends to a blank card (reference §5.4):

1. SELECT MF, EXTERNAL AUTHENTICATE with the transport key, ERASE DF,
   re-create the MF with the profile's rights;
2. per DF (MF first, then each application selected by AID): the key file,
   the keys (master first; secure key update = CLA 84, encrypted and MAC'd
   under the DF master key), every EF followed by its initial content
   (line-protected UPDATE BINARY / APPEND RECORD where the file demands it),
   the DF's extra APDUs; the MF also creates the ADFs;
3. lock-down: each locked DF is re-entered, authenticated with its master
   key and the listed keys are rewritten with their final rights; finally
   SELECT MF, which ends the empty-DF free access everywhere.

:func:`compile_application` does the same for an ``application`` profile
added to an issued card under the MF's create right.

Steps that need a card challenge (authentication, line protection, secure
key update) are computed when they are sent: :func:`run` works against any
``transmit(bytes) -> bytes`` (an in-process :class:`cardos.Card`, a pyscard
connection); :func:`script_text` turns a plan into an APDU script that
recomputes them when it runs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from . import profiles as P
from .apdu import build
from .crypto import DES, Algorithm
from .keys import Key, KeyType
from .keyset import KeySet, KeySetError
from .redact import apdu_hex
from .sw import describe
from .terminal.secure import external_auth_cryptogram, protected_apdu
from .tries import wrong_key

TRANSPORT_KEY = b"\xff" * 8
CHUNK = 200  # data bytes per UPDATE BINARY (leaves room for LD, padding and MAC)
SELECT_MF = bytes.fromhex("00A40000023F00") + b"\x00"


class IssueError(Exception):
    """A personalization step failed; names the step, the APDU and the status word."""

    def __init__(self, message: str, step: str = "", apdu: bytes = b"", sw: int | None = None):
        super().__init__(message)
        self.step = step
        self.apdu = apdu
        self.sw = sw


# -- steps ------------------------------------------------------------------------------

@dataclass
class Send:
    label: str
    apdu: bytes
    expect: tuple = ("9000",)
    script: str = ""  # the APDU in script syntax when it carries keys (key-set references, not values)


@dataclass
class Authenticate:
    """GET CHALLENGE, then EXTERNAL AUTHENTICATE with ``key`` (id ``kid``)."""

    label: str
    key: bytes
    kid: int
    algorithm: Algorithm = DES
    role: str = ""
    expect: tuple = ("9000",)
    script_key: str = ""  # the key as a script expression


@dataclass
class Protected:
    """GET CHALLENGE, then the command with a line-protection MAC (and encrypted data)."""

    label: str
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    key: bytes
    algorithm: Algorithm = DES
    encrypt: bool = False
    key_label: str = ""
    expect: tuple = ("9000",)
    script_key: str = ""
    script_data: str = ""


@dataclass
class Plan:
    """A compiled issuance: the steps plus what they put on the card."""

    profile: P.Profile
    values: dict
    steps: list
    card_keys: dict = field(default_factory=dict)  # (df name, key name) -> bytes
    serials: dict = field(default_factory=dict)  # df name -> diversification serial
    space: dict = field(default_factory=dict)  # df name -> bytes reserved
    eeprom: int = 0  # bytes the issuance takes from the MF

    def card_key(self, df: str, name: str) -> bytes:
        """The per-card key written as ``name`` in DF ``df`` (tests and diagnostics)."""
        return self.card_keys[(df, name)]

    @property
    def apdu_count(self) -> int:
        return sum(2 if isinstance(s, (Authenticate, Protected)) else 1 for s in self.steps)


# -- compiling ------------------------------------------------------------------------------

def _rendered(template: str, values: dict, where: str, profile: P.Profile, what: str = "hex") -> bytes:
    text = P.render(template, values).replace(" ", "")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise P.ProfileError(profile.path, where, f"{what} {text!r} is not valid hex") from None


def _content(content: P.Content, values: dict, profile: P.Profile) -> bytes:
    try:
        return P.render_content(content, values)
    except ValueError as exc:
        raise P.ProfileError(profile.path, content.where, str(exc)) from None


def dir_record(aid: bytes, label: str = "") -> bytes:
    """A DIR entry ``61 L 4F L AID [50 L label]`` (reference §1.4)."""
    body = bytes((0x4F, len(aid))) + aid
    if label:
        raw = label.encode("ascii")
        body += bytes((0x50, len(raw))) + raw
    return bytes((0x61, len(body))) + body


def _hexsp(data: bytes) -> str:
    return data.hex().upper()


def _var(df_name: str) -> str:
    return "serial_" + df_name.replace("-", "_")


class _Compiler:
    def __init__(self, profile: P.Profile, keyset: KeySet, values: dict, mf_keyset: KeySet | None = None,
                 reissue: bool = False):
        self.reissue = reissue
        self.profile = profile
        self.keyset = keyset
        self.mf_keyset = mf_keyset or keyset
        self.values = values
        self.steps: list = []
        self.card_keys: dict = {}
        self.serials: dict = {}
        self.space: dict = {}
        self.key_objects: dict = {}  # (df, key name) -> cardos.keys.Key as written
        self.key_exprs: dict = {}  # (df, key name) -> the key as a script expression

    def fail(self, where: str, reason: str):
        raise P.ProfileError(self.profile.path, where, reason)

    def add(self, step) -> None:
        self.steps.append(step)

    # -- keys ------------------------------------------------------------------------------
    def _serial(self, df: P.DFSpec) -> bytes | None:
        if df.serial is None:
            return None
        serial = _rendered(df.serial, self.values, f"{df.where}.serial", self.profile, "serial")
        if not serial:
            self.fail(f"{df.where}.serial", "renders empty")
        return serial

    def key_value(self, df: P.DFSpec, k: P.KeySpec, serial: bytes | None) -> bytes:
        if k.type == KeyType.PIN:
            pin = P.render(k.value, self.values)
            if not re.fullmatch(r"\d{4,12}", pin):
                self.fail(f"{k.where}.value", "a PIN is 4 to 12 decimal digits")
            return P.pin_bytes(pin)
        keyset = self.keyset
        if not keyset.has(k.role, k.index):
            raise KeySetError(keyset.path or "<key set>", f"keys.{k.role}.{k.index}",
                              f"missing: profile {self.profile.name} needs it for {df.name} key {k.name} "
                              f"({k.where})")
        if not k.diversify:
            return keyset.master(k.role, k.index)
        return keyset.card_key(k.role, k.index, serial)

    def key_expr(self, df: P.DFSpec, k: P.KeySpec, value: bytes) -> str:
        if k.type == KeyType.PIN:
            return _hexsp(value)
        ref = f"@{k.role}.{k.index}"
        return f"card_key({ref}, ${_var(df.name)})" if k.diversify else ref

    def key_record(self, k: P.KeySpec, value: bytes, stored_type=None) -> Key:
        b4 = k.b4
        if b4 is None:
            b4 = 0x04 if self.keyset.sm4 else 0x00
        return Key(k.stored_type if stored_type is None else stored_type, k.kid, k.use, k.change, k.b3, b4, value)

    def _key_write(self, label: str, p1: int, key: Key, expr: str, master: Key | None, master_expr: str,
                   secure: bool, df_name: str) -> None:
        header = _hexsp(key.encode()[:5])
        if secure:
            self.add(Protected(label, 0x84, 0xD4, p1, key.kid, key.encode(), master.value, master.algorithm, True,
                               f"{df_name} master key 39/00", script_key=master_expr,
                               script_data=f"{header} {expr}"))
        else:
            self.add(Send(label, build(0x80, 0xD4, p1, key.kid, key.encode()),
                          script=f"80 D4 {p1:02X} {key.kid:02X} {{lc}} {header} {expr}"))

    def keys(self, df: P.DFSpec, serial: bytes | None) -> None:
        ordered = sorted(df.keys, key=lambda k: 0 if (k.type == KeyType.EXTERNAL_AUTH and k.kid == 0) else 1)
        master = master_expr = None
        for k in ordered:
            value = self.key_value(df, k, serial)
            expr = self.key_expr(df, k, value)
            self.card_keys[(df.name, k.name)] = value
            self.key_exprs[(df.name, k.name)] = expr
            key = self.key_record(k, value)
            label = f"{df.name}: key {k.name} {k.stored_type:02X}/{k.kid:02X}" + (
                f" ({k.role}{'' if k.index == 1 else ' ' + str(k.index)}{', diversified' if k.diversify else ''})"
                if k.role else "")
            if master is None:  # the DF master: plain, then (if secure) modified under itself
                plain = self.key_record(k, value, stored_type=k.type)
                self._key_write(label, 0x01, plain, expr, None, "", False, df.name)
                if k.secure_update:
                    self._key_write(f"{label}: secure update from now on", k.type, key, expr, plain, expr, True,
                                    df.name)
                master, master_expr = key, expr
            else:
                self._key_write(label + (" [secure update]" if k.secure_update else ""), 0x01, key, expr,
                                master, master_expr, k.secure_update, df.name)
            self.key_objects[(df.name, k.name)] = key

    # -- files -----------------------------------------------------------------------------
    def line_key(self, df: P.DFSpec, kid: int) -> tuple:
        for (d, name), key in self.key_objects.items():
            if d == df.name and key.base_type == KeyType.LINE_PROTECTION and key.kid == kid:
                return key, self.key_exprs[(d, name)]
        self.fail(f"{df.where}.keys", f"no line-protection key id {kid}")

    def create_ef(self, df: P.DFSpec, ef: P.EFSpec) -> None:
        if ef.kind == "purse":
            data = bytes((0x2F, 0x02, 0x08, ef.read, ef.tac_key, 0xFF, ef.log & 0x1F))
        elif ef.kind in ("binary", "variable"):
            data = bytes((ef.type_byte,)) + ef.size.to_bytes(2, "big") + bytes((ef.read, ef.write, 0xFF, ef.key_byte))
        else:
            data = bytes((ef.type_byte, ef.count, ef.record_length, ef.read, ef.write, 0xFF, ef.key_byte))
        self.add(Send(f"{df.name}: create {ef.kind} EF {ef.fid:04X} {ef.name}",
                      build(0x80, 0xE0, ef.fid >> 8, ef.fid & 0xFF, data)))

    def _write(self, df: P.DFSpec, ef: P.EFSpec, label: str, cla: int, ins: int, p1: int, p2: int,
               data: bytes) -> None:
        if ef.protection:
            key, expr = self.line_key(df, 3 - (ef.key_byte & 0x03))
            self.add(Protected(label + " [line protection]", cla | 0x04, ins, p1, p2, data, key.value,
                               key.algorithm, bool(ef.protection & 0x40),
                               f"{df.name} line-protection key 36/{key.kid:02X}", script_key=expr))
        else:
            self.add(Send(label, build(cla, ins, p1, p2, data)))

    def _select_ef(self, df: P.DFSpec, ef: P.EFSpec) -> None:
        self.add(Send(f"{df.name}: select {ef.fid:04X}", build(0x00, 0xA4, 0x00, 0x00, ef.fid.to_bytes(2, "big"))))

    def write_ef(self, df: P.DFSpec, ef: P.EFSpec, dir_entries: list) -> None:
        sfi = ef.fid if ef.fid <= 0x1F else 0
        if ef.kind == "binary" and ef.content is not None:
            data = _content(ef.content, self.values, self.profile)
            if len(data) > ef.size:
                self.fail(ef.content.where, f"is {len(data)} bytes, the file is {ef.size}")
            data += bytes((ef.fill,)) * (ef.size - len(data))
            by_sfi = sfi and ef.size <= 256
            if not by_sfi:
                self._select_ef(df, ef)
            for offset in range(0, len(data), CHUNK):
                p1, p2 = (0x80 | sfi, offset) if by_sfi else (offset >> 8, offset & 0xFF)
                self._write(df, ef, f"{df.name}: write {ef.fid:04X} {ef.name}"
                            + (f" @{offset}" if len(data) > CHUNK else ""), 0x00, 0xD6, p1, p2,
                            data[offset:offset + CHUNK])
        elif ef.kind not in ("binary", "purse") and ef.records:
            records = dir_entries if ef.records == "dir" else [
                (c.where, _content(c, self.values, self.profile)) for c in ef.records]
            if ef.kind == "variable" and sum(len(r) + 1 for _w, r in records) > ef.size:
                self.fail(f"{ef.where}.size", f"{ef.size} bytes cannot hold its records "
                                              f"({sum(len(r) + 1 for _w, r in records)} with 1 byte each)")
            if not sfi:
                self._select_ef(df, ef)
            for i, (where, data) in enumerate(records):
                if ef.kind == "variable":
                    if len(data) < 2 or data[1] != len(data) - 2:
                        self.fail(where, f"a variable-length record is tag ‖ length ‖ value; {data.hex().upper()} "
                                         "is not (use {\"tag\": .., \"content\": ..})")
                elif len(data) != ef.record_length:
                    self.fail(where, f"is {len(data)} bytes, records of {ef.fid:04X} are {ef.record_length}")
                self._write(df, ef, f"{df.name}: append record {i + 1} to {ef.fid:04X} {ef.name}",
                            0x00, 0xE2, 0x00, sfi << 3, data)

    def apdus(self, df_name: str, items: list) -> None:
        for a in items:
            apdu = _rendered(a.apdu, self.values, f"{a.where}.apdu", self.profile, "APDU")
            if len(apdu) < 4:
                self.fail(f"{a.where}.apdu", "an APDU is at least 4 bytes")
            self.add(Send(a.label or f"{df_name}: {apdu_hex(apdu)}", apdu, a.expect))

    def df_body(self, df: P.DFSpec, dir_entries: list) -> None:
        serial = self._serial(df)
        if serial is not None:
            self.serials[df.name] = serial
        if df.keys:
            size = sum(self._value_length(df, k) + 8 for k in df.keys) + df.key_file_spare
            self.add(Send(f"{df.name}: create key file ({size} bytes)",
                          build(0x80, 0xE0, 0x00, 0x00, bytes((0x3F,)) + size.to_bytes(2, "big")
                                + bytes((df.app_file_id, df.key_file_add, 0xFF, 0xFF)))))
            self.keys(df, serial)
        for ef in df.files:
            self.create_ef(df, ef)
            self.write_ef(df, ef, dir_entries)
        self.apdus(df.name, df.apdus)

    def _value_length(self, df: P.DFSpec, k: P.KeySpec) -> int:
        return len(self.key_value(df, k, None)) if k.type == KeyType.PIN else 16

    def space_of(self, df: P.DFSpec) -> int:
        if df.space is not None:
            return df.space
        pin = next((k for k in df.keys if k.type == KeyType.PIN), None)
        pin_len = len(self.key_value(df, pin, None)) if pin else 6
        return P.df_space(df, pin_len)

    def create_adf(self, app: P.DFSpec) -> None:
        space = self.space_of(app)
        self.space[app.name] = space
        data = (bytes((0x38,)) + space.to_bytes(2, "big") + bytes((app.create, app.erase, app.app_file_id))
                + b"\xff\xff" + app.df_name)
        self.add(Send(f"mf: create application {app.name} {app.fid:04X} AID {app.df_name.hex().upper()}"
                      f" ({space} bytes)", build(0x80, 0xE0, app.fid >> 8, app.fid & 0xFF, data)))

    def select_df(self, df: P.DFSpec) -> None:
        if df.is_mf:
            self.add(Send("select MF", SELECT_MF))
        else:
            self.add(Send(f"select {df.name} by AID", build(0x00, 0xA4, 0x04, 0x00, df.df_name, 0)))

    # -- lock-down ---------------------------------------------------------------------------
    def lockdown(self) -> None:
        current = None
        for step in self.profile.lockdown:
            if isinstance(step, P.Apdu):
                if step.df and step.df != current:
                    self.select_df(self.profile.df(step.df))
                    current = step.df
                self.apdus(step.df or "card", [step])
                continue
            df = self.profile.df(step.df)
            if step.df != current:
                self.select_df(df)
                current = step.df
            master_name = df.master().name
            master, master_expr = self.key_objects[(df.name, master_name)], self.key_exprs[(df.name, master_name)]
            self.add(Authenticate(f"lock-down {df.name}: authenticate with its master key", master.value, 0,
                                  master.algorithm, f"{df.name} master", script_key=master_expr))
            for name in step.keys:
                old = self.key_objects[(df.name, name)]
                new = Key(old.stored_type, old.kid, step.use if step.use is not None else old.use,
                          step.change if step.change is not None else old.change, old.b3, old.b4, old.value)
                label = (f"lock-down {df.name}: key {name} {old.stored_type:02X}/{old.kid:02X} "
                         f"use {new.use:02X} change {new.change:02X}")
                self._key_write(label + (" [secure update]" if old.secure_update else ""), old.stored_type, new,
                                self.key_exprs[(df.name, name)], master, master_expr, old.secure_update, df.name)
                self.key_objects[(df.name, name)] = new
                if new.base_type == KeyType.EXTERNAL_AUTH and new.kid == 0:
                    master = new

    # -- whole plans -------------------------------------------------------------------------
    def transport(self) -> tuple:
        if self.reissue:  # an issued card: its MF master (same profile roles and serial) opens ERASE
            mf = self.profile.mf
            k = mf.master()
            serial = self._serial(mf)
            return self.key_value(mf, k, serial), self.key_expr(mf, k, b""), f"card's MF master key ({k.role})"
        role = self.profile.transport_role
        if self.mf_keyset.has(role):
            return self.mf_keyset.master(role), f"@{role}", role
        return TRANSPORT_KEY, _hexsp(TRANSPORT_KEY), "transport key FF×8"

    def card(self) -> list:
        profile, mf = self.profile, self.profile.mf
        self.add(Send("select MF", SELECT_MF))
        key, expr, role = self.transport()
        self.add(Authenticate(f"external authentication with the {role}", key, 0,
                              Key(0x39, 0, 0, 0, 0, 0, key).algorithm, role, script_key=expr))
        self.add(Send("erase the card (ERASE DF in the MF)", bytes.fromhex("800E000000")))
        data = (bytes((0x38, 0xFF, 0xFF, mf.create, mf.erase, mf.app_file_id)) + b"\xff\xff" + mf.df_name)
        self.add(Send(f"re-create the MF (create {mf.create:02X}, erase {mf.erase:02X})",
                      build(0x80, 0xE0, 0x3F, 0x00, data)))
        dir_entries = [(f"{a.where}", dir_record(a.df_name, a.label)) for a in profile.applications]
        self.df_body(mf, dir_entries)
        for app in profile.applications:
            self.create_adf(app)
        for app in profile.applications:
            self.select_df(app)
            self.df_body(app, [])
        self.lockdown()
        self.add(Send("select MF (ends the personalization session's free access)", SELECT_MF))
        return self.steps

    def application(self, card_serial: bytes, dir_sfi: int | None) -> list:
        auth = self.profile.authorize
        if not self.mf_keyset.has(auth.role, auth.index):
            raise KeySetError(self.mf_keyset.path or "<key set>", f"keys.{auth.role}.{auth.index}",
                              f"missing: profile {self.profile.name} authenticates to the MF with it")
        mf_key = self.mf_keyset.card_key(auth.role, auth.index, card_serial)
        self.serials["mf"] = card_serial
        self.add(Send("select MF", SELECT_MF))
        self.add(Authenticate(f"MF: external authentication with key 39/{auth.kid:02X} ({auth.role}) "
                              "for the MF create right", mf_key, auth.kid,
                              Key(0x39, auth.kid, 0, 0, 0, 0, mf_key).algorithm, auth.role,
                              script_key=f"card_key(@{auth.role}.{auth.index}, ${_var('mf')})"))
        for app in self.profile.applications:
            self.create_adf(app)
        if dir_sfi:
            for app in self.profile.applications:
                self.add(Send(f"mf: append DIR record for {app.name}",
                              build(0x00, 0xE2, 0x00, dir_sfi << 3, dir_record(app.df_name, app.label))))
        for app in self.profile.applications:
            self.select_df(app)
            self.df_body(app, [])
        self.lockdown()
        self.add(Send("select MF (ends the personalization session's free access)", SELECT_MF))
        return self.steps


def compile_card(profile: P.Profile, keyset: KeySet, params: dict | None = None, today: date | None = None,
                 transport_keyset: KeySet | None = None, reissue: bool = False) -> Plan:
    """The APDU plan that issues ``profile`` onto a blank card.

    ``params`` overrides profile parameters (e.g. ``{"serial": 5}``).
    ``reissue``: the card was issued before with the same key set and MF
    serial; its MF master key (instead of the transport key) opens ERASE DF.
    """
    if profile.kind != "card":
        raise P.ProfileError(profile.path, "kind", "is \"application\": add it to an issued card "
                                                   "(cardos issue --add-app)")
    values = P.resolve_params(profile, params, today)
    c = _Compiler(profile, keyset, values, transport_keyset, reissue)
    steps = c.card()
    plan = Plan(profile, values, steps, c.card_keys, c.serials, c.space)
    plan.eeprom = _mf_usage(c, profile)
    return plan


def _mf_usage(c: _Compiler, profile: P.Profile) -> int:
    mf = profile.mf
    used = sum(f.cost() for f in mf.files) if mf else 0
    if mf and mf.keys:
        used += sum(len(v) for (d, _n), v in c.card_keys.items() if d == "mf") + 8 * len(mf.keys) \
            + mf.key_file_spare + 8
    return used + sum(c.space[a.name] + 16 for a in profile.applications)


def compile_application(profile: P.Profile, keyset: KeySet, card_serial: bytes, params: dict | None = None,
                        mf_keyset: KeySet | None = None, dir_sfi: int | None = 1,
                        today: date | None = None) -> Plan:
    """The APDU plan that adds the applications of ``profile`` to an issued card.

    ``card_serial`` diversifies the MF key that grants the create right
    (read from the card by :func:`add_application`); ``mf_keyset`` holds
    that key's master when it is not in ``keyset``.
    """
    if profile.kind != "application":
        raise P.ProfileError(profile.path, "kind", "is \"card\": issue it onto a blank card (cardos issue --profile)")
    given = dict(params or {})
    given.setdefault("card_serial", card_serial.hex().upper())
    values = P.resolve_params(profile, given, today)
    c = _Compiler(profile, keyset, values, mf_keyset)
    steps = c.application(card_serial, dir_sfi)
    plan = Plan(profile, values, steps, c.card_keys, c.serials, c.space)
    plan.eeprom = sum(c.space[a.name] + 16 for a in profile.applications)
    return plan


# -- running ----------------------------------------------------------------------------------

def sw_matches(sw: int, patterns) -> bool:
    text = f"{sw:04X}"
    return any(all(p in "X" or p == t for p, t in zip(pattern, text)) for pattern in patterns)


class _Link:
    """One transmit function with T=0 GET RESPONSE handling and logging."""

    def __init__(self, transmit, log=None):
        self.transmit = transmit
        self.log = log
        self.count = 0

    def exchange(self, label: str, apdu: bytes) -> tuple:
        response = self._raw(label, apdu)
        data, sw = response[:-2], int.from_bytes(response[-2:], "big")
        while sw >> 8 == 0x61:  # T=0: fetch what is waiting
            more = self._raw(f"{label}: GET RESPONSE", bytes((0x00, 0xC0, 0x00, 0x00, sw & 0xFF)))
            data, sw = data + more[:-2], int.from_bytes(more[-2:], "big")
        if sw >> 8 == 0x6C and len(apdu) == 5:  # wrong Le: resend with the right one
            response = self._raw(f"{label}: again with Le {sw & 0xFF:02X}", apdu[:4] + bytes((sw & 0xFF,)))
            data, sw = response[:-2], int.from_bytes(response[-2:], "big")
        return data, sw

    def _raw(self, label: str, apdu: bytes) -> bytes:
        response = bytes(self.transmit(apdu))
        self.count += 1
        if self.log:
            self.log(label, apdu, response)
        if len(response) < 2:
            raise IssueError(f"{label}: the card did not answer {apdu_hex(apdu)} (removed? power lost?)",
                             label, apdu)
        return response

    def challenge(self, label: str) -> bytes:
        data, sw = self.exchange(f"{label}: GET CHALLENGE", bytes.fromhex("0084000004"))
        if sw != 0x9000 or len(data) != 4:
            raise IssueError(f"{label}: GET CHALLENGE answered {sw:04X} ({describe(sw)})", label,
                             bytes.fromhex("0084000004"), sw)
        return data


def run(steps, transmit, log=None) -> int:
    """Send every step through ``transmit``; returns the number of APDUs sent.

    ``log(label, apdu, response)`` sees every exchange (GET CHALLENGE and
    GET RESPONSE included). The first unexpected status word raises
    :class:`IssueError`.
    """
    link = _Link(transmit, log)
    for step in steps:
        if isinstance(step, Send):
            apdu = step.apdu
        elif isinstance(step, Authenticate):
            challenge = link.challenge(step.label)
            apdu = build(0x00, 0x82, 0x00, step.kid, external_auth_cryptogram(step.key, challenge, step.algorithm))
        else:
            challenge = link.challenge(step.label)
            apdu = protected_apdu(step.cla, step.ins, step.p1, step.p2, step.data, step.key, challenge,
                                  step.encrypt, step.algorithm)
        _data, sw = link.exchange(step.label, apdu)
        if not sw_matches(sw, step.expect):
            hint = ""
            if isinstance(step, Authenticate) and wrong_key(sw):
                hint = f" — {wrong_key(sw)} (is the card blank / issued with this key set and serial?)"
            elif sw == 0x6A84:
                hint = " — no space left on the card"
            raise IssueError(f"{step.label}: {apdu_hex(apdu)} answered {sw:04X} ({describe(sw)}), "
                             f"expected {'|'.join(step.expect)}{hint}", step.label, apdu, sw)
    return link.count


# -- reading an issued card (for adding applications) -------------------------------------------

def _tlv_find(data: bytes, tag: int) -> bytes | None:
    """Find a one-byte tag in a BER-TLV blob, descending into constructed 6F / A5."""
    i = 0
    while i + 2 <= len(data):
        t = data[i]
        if t & 0x1F == 0x1F:  # two-byte tag
            t = (t << 8) | data[i + 1]
            i += 1
        length = data[i + 1]
        value = data[i + 2:i + 2 + length]
        if t == tag:
            return value
        if t in (0x6F, 0xA5):
            found = _tlv_find(value, tag)
            if found is not None:
                return found
        i += 2 + length
    return None


def probe_card(transmit, profile: P.Profile, log=None) -> tuple:
    """What adding an application needs from the card: ``(card_serial, dir_sfi)``.

    Refuses (``IssueError``) when an application of the profile is already
    on the card, before anything is written.
    """
    link = _Link(transmit, log)
    fci, sw = link.exchange("select MF", SELECT_MF)
    if sw != 0x9000:
        raise IssueError(f"select MF answered {sw:04X} ({describe(sw)}): not an issued card?", "select MF",
                         SELECT_MF, sw)
    dir_value = _tlv_find(fci, 0x88)
    dir_sfi = dir_value[0] if dir_value else None
    for app in profile.applications:
        apdu = build(0x00, 0xA4, 0x04, 0x00, app.df_name, 0)
        _fci, sw = link.exchange(f"is {app.name} already there?", apdu)
        if sw in (0x9000, 0x6283):
            raise IssueError(f"the card already has an application with AID {app.df_name.hex().upper()} "
                             f"({app.name})", app.name, apdu, sw)
        link.exchange("select MF", SELECT_MF)
    auth = profile.authorize
    apdu = bytes((0x00, 0xB0, 0x80 | auth.serial_sfi, auth.serial_offset, auth.serial_length))
    data, sw = link.exchange(f"read the card serial from SFI {auth.serial_sfi:02X}", apdu)
    serial = data if sw == 0x9000 and len(data) == auth.serial_length else None
    return serial, dir_sfi


# -- scripts --------------------------------------------------------------------------------------

def _spaced(data: bytes) -> str:
    return " ".join(f"{b:02X}" for b in data)


def _apdu_text(apdu: bytes) -> str:
    """``CLA INS P1 P2 {lc} data [Le]`` (Lc recomputed by the runner)."""
    head = _spaced(apdu[:4])
    if len(apdu) == 4:
        return head
    if len(apdu) == 5:
        return f"{head} {apdu[4]:02X}"
    lc = apdu[4]
    data = apdu[5:5 + lc]
    rest = apdu[5 + lc:]
    return f"{head} {{lc}} {data.hex().upper()}" + (f" / {_spaced(rest)}" if rest else "")


def script_text(plan: Plan, keys_ref: str, header: list | None = None) -> str:
    """The plan as a cardos APDU script (docs/scripts.md) that recomputes every cryptogram and MAC at
    run time: keys are key-set references (``card_key(@app_master.1, $serial_city)``), never values.

    ``keys_ref`` is what the script's ``keys`` line names (a key-set file or shipped name).
    Run it on a blank card with ``cardos run FILE --card IMAGE`` or ``--reader NAME``.
    """
    out = [f"# {line}" if line else "#" for line in (header or [])]
    out.append(f"keys {keys_ref}")
    for df_name, serial in plan.serials.items():
        out.append(f"{_var(df_name)} = {serial.hex().upper()}")
    out.append("reset")
    for step in plan.steps:
        out.append("")
        out.append(f"# {step.label}")
        expect = " => " + "|".join(step.expect)
        if isinstance(step, Send):
            out.append((step.script or _apdu_text(step.apdu)) + expect)
        elif isinstance(step, Authenticate):
            out.append("00 84 00 00 04 => 9000 -> challenge=data")
            if step.algorithm.block == 16:
                crypt = f"sm4_ecb({step.script_key}, $challenge 000000000000000000000000)"
            else:
                crypt = f"ext_auth({step.script_key}, $challenge)"
            out.append(f"00 82 00 {step.kid:02X} {{lc}} {crypt}{expect}")
        else:
            flags = ("encrypt " if step.encrypt else "") + ("sm4 " if step.algorithm.block == 16 else "")
            data = step.script_data or step.data.hex().upper()
            out.append(f"protect {flags}{step.script_key} {step.cla:02X} {step.ins:02X} {step.p1:02X} {step.p2:02X} "
                       f"{{lc}} {data}{expect}")
    return "\n".join(out) + "\n"


def script_header(plan: Plan, keyset: KeySet, what: str) -> list:
    p = plan.profile
    lines = [f"cardos personalization script: {what}",
             f"profile {p.name} ({p.path}), {len(plan.steps)} steps",
             "parameters: " + ", ".join(f"{k}={v}" for k, v in plan.values.items() if k != "pin"),
             f"key set: {keyset.algorithm_name}{', TEST keys' if keyset.test else ''}; "
             "card keys are key-set references, cryptograms and MACs are computed when it runs",
             "the initial PIN and every file content are in clear below: keep this file as private as the card data"]
    return lines


# -- the whole job -----------------------------------------------------------------------------------

def _transmit_of(target):
    return target.transmit if hasattr(target, "transmit") else target


def issue(target, profile, keyset: KeySet, params: dict | None = None, *, log=None,
          today: date | None = None, transport_keyset: KeySet | None = None, reissue: bool = False) -> Plan:
    """Personalize a blank card (anything with ``transmit``, or a transmit callable) with ``profile``.

    ``profile`` is a :class:`cardos.profiles.Profile`, a shipped profile
    name or a path. Returns the executed :class:`Plan`.

    >>> from cardos import Card
    >>> from cardos.keyset import KeySet
    >>> card = Card.blank()
    >>> plan = issue(card, "city", KeySet.generate(test=True), {"serial": 42})
    >>> plan.values["app_serial"]
    '3100000000000042'
    """
    if not isinstance(profile, P.Profile):
        profile = P.load(profile)
    plan = compile_card(profile, keyset, params, today, transport_keyset, reissue)
    run(plan.steps, _transmit_of(target), log)
    return plan


def add_application(target, profile, keyset: KeySet, params: dict | None = None, *, mf_keyset: KeySet | None = None,
                    log=None, today: date | None = None) -> Plan:
    """Add the applications of an ``application`` profile to an issued card.

    The card serial that diversifies the MF key granting the create right is
    read from the card (MF 0005) unless ``params["card_serial"]`` gives it;
    the new application's DIR entry goes to the DIR file the MF's FCI names.
    Nothing is written when an application with the same AID is already there.
    """
    if not isinstance(profile, P.Profile):
        profile = P.load(profile)
    if profile.kind != "application":
        raise P.ProfileError(profile.path, "kind", "is \"card\": issue it onto a blank card (cardos issue --profile)")
    transmit = _transmit_of(target)
    serial, dir_sfi = probe_card(transmit, profile, log)
    given = dict(params or {})
    if "card_serial" in given:
        serial = bytes.fromhex(str(given["card_serial"]))
    elif serial is None:
        auth = profile.authorize
        raise IssueError(f"cannot read the card serial from SFI {auth.serial_sfi:02X} of the MF; give it with "
                         "--param card_serial=HEX")
    plan = compile_application(profile, keyset, serial, given, mf_keyset, dir_sfi, today)
    run(plan.steps, transmit, log)
    return plan
