"""A sample FMCOS-style issuance (reference §5.4), driven through APDUs only.

This is what a personalization machine sends to a blank card: transport-key
external authentication, ERASE DF, MF key file and keys, DIR and 0005, the
住建部 public-transport ADF 1001 (AID ``A00000000386980701``) with its key
file, every key type, 0015/0016 written under line protection, the 0018
transaction log, EP 0002, ED 0001 and a composite (CAPP) record file 001A.

The keys below are **TEST KEYS**, published here; never use them for real
cards. Shipped issuance profiles with diversified keys are ``cardos issue``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .apdu import build
from .redact import apdu_hex
from .terminal.secure import external_auth_cryptogram, protected_apdu
from .tries import wrong_key

TRANSPORT_KEY = bytes.fromhex("FFFFFFFFFFFFFFFF")
CITY_AID = bytes.fromhex("A00000000386980701")
MF_DIR_RECORD = bytes.fromhex("61114F09A00000000386980701500450424F43")


def _k(text: str) -> bytes:
    return bytes.fromhex(text)


@dataclass
class SampleKeys:
    """TEST KEYS for the sample card (16-byte 2-key 3DES)."""

    mf_master: bytes = _k("4D464D4153544552204B455920303031")
    mf_line: bytes = _k("4D464C494E452050524F544543543031")
    app_master: bytes = _k("4150504D4153544552204B4559203031")
    app_line: bytes = _k("4150504C494E452050524F5445435431")
    pin_unblock: bytes = _k("50494E20554E424C4F434B204B455931")
    pin_reload: bytes = _k("50494E2052454C4F4144204B45592031")
    purchase: bytes = _k("505552434841534520204B4559203031")
    load: bytes = _k("4C4F414420204B455920202020203031")
    unload: bytes = _k("554E4C4F414420204B45592020203031")
    overdraw: bytes = _k("4F564552445241572020204B45593031")
    tac: bytes = _k("544143204B4559202020202020203031")
    internal_encrypt: bytes = _k("494E5445524E414C20454E43204B4559")
    pin: bytes = _k("123456")


@dataclass
class SampleCard:
    """What the sample issuance writes (application serial, dates, …)."""

    serial: bytes = _k("3100000000000001")
    issuer: bytes = _k("0000")
    city: bytes = _k("3100")
    keys: SampleKeys = field(default_factory=SampleKeys)

    @property
    def ef0015(self) -> bytes:
        # issuer 2 ‖ city 2 ‖ industry 2 ‖ RFU 2 ‖ app type 1 ‖ version 1 ‖
        # interconnect flag 2 ‖ serial 8 ‖ start 4 ‖ expiry 4 ‖ main 1 ‖ sub 1
        return (self.issuer + self.city + _k("0000") + _k("0000") + _k("01") + _k("01") + _k("0000")
                + self.serial + _k("20260101") + _k("20351231") + _k("01") + _k("00"))

    @property
    def ef0005(self) -> bytes:
        return (self.issuer + self.city + _k("0000") + _k("0000") + self.serial + _k("0100")
                + _k("20260101") + _k("000000000001") + _k("0001"))

    @property
    def ef0016(self) -> bytes:
        name = "TEST HOLDER".encode().ljust(20, b"\x00")
        return _k("00") + _k("00") + name + b"0" * 16 + _k("00")


class IssueError(Exception):
    """A personalization step did not answer 9000."""


def _key_record(key_type: int, use: int, change: int, b3: int, b4: int, value: bytes) -> bytes:
    return bytes((key_type, use, change, b3, b4)) + value


def sample_steps(card: SampleCard):
    """Yield ``(description, apdu or callable(challenge) -> apdu, needs_challenge)``."""
    k = card.keys
    yield "select MF", _k("00A40000023F00"), None
    yield "external auth with transport key", None, ("auth", TRANSPORT_KEY)
    yield "erase MF", _k("800E000000"), None
    yield "create MF key file", _k("80E00000073F005001AAFFFF"), None
    yield "MF master key 39/00", build(0x80, 0xD4, 0x01, 0x00, _key_record(0x39, 0xF0, 0x02, 0xAA, 0x33, k.mf_master)), None
    yield "MF line-protection key 36/00", build(0x80, 0xD4, 0x01, 0x00, _key_record(0x36, 0xF0, 0x02, 0xFF, 0x33, k.mf_line)), None
    yield "create DIR 0001 (variable records)", _k("80E00001072C0040F0F0FFFF"), None
    yield "append DIR record", build(0x00, 0xE2, 0x00, 0x08, MF_DIR_RECORD), None
    yield "create 0005 (MAC-protected binary)", _k("80E0000507A8001EF0F0FFFF"), None
    yield "write 0005 with MAC", None, ("mac", (0x04, 0xD6, 0x85, 0x00, card.ef0005, k.mf_line))
    yield "create ADF 1001", build(0x80, 0xE0, 0x10, 0x01, _k("380500AAAA95FFFF") + CITY_AID), None
    yield "select ADF by AID", build(0x00, 0xA4, 0x04, 0x00, CITY_AID, 0), None
    yield "create ADF key file", _k("80E00000073F018F95AAFFFF"), None
    for label, record in (
        ("app master key 39/00", _key_record(0x39, 0xF0, 0x02, 0xAA, 0x33, k.app_master)),
        ("line-protection key 36/00", _key_record(0x36, 0xF0, 0x02, 0xFF, 0x33, k.app_line)),
        ("PIN-unblock key 37/00", _key_record(0x37, 0xF0, 0x02, 0xFF, 0x33, k.pin_unblock)),
        ("PIN-reload key 38/00", _key_record(0x38, 0xF0, 0x02, 0xFF, 0x33, k.pin_reload)),
        ("PIN 3A/00", _key_record(0x3A, 0xF0, 0xEF, 0x01, 0x33, k.pin)),
        ("internal encrypt key 30/00", _key_record(0x30, 0xF0, 0x02, 0x01, 0x00, k.internal_encrypt)),
        ("TAC key 34/00", _key_record(0x34, 0xF0, 0x02, 0x01, 0x00, k.tac)),
    ):
        kid = 0x00
        yield label, build(0x80, 0xD4, 0x01, kid, record), None
    for label, key_type, value in (("purchase key 3E/01", 0x3E, k.purchase), ("load key 3F/01", 0x3F, k.load),
                                   ("unload key 3D/01", 0x3D, k.unload), ("overdraw key 3C/01", 0x3C, k.overdraw)):
        yield label, build(0x80, 0xD4, 0x01, 0x01, _key_record(key_type, 0xF0, 0x02, 0x01, 0x00, value)), None
    yield "create 0015 (MAC-protected binary)", _k("80E0001507A8001EF0F0FFFF"), None
    yield "write 0015 with MAC", None, ("mac", (0x04, 0xD6, 0x95, 0x00, card.ef0015, k.app_line))
    yield "create 0016", _k("80E0001607A80027F0F0FFFF"), None
    yield "write 0016 with MAC", None, ("mac", (0x04, 0xD6, 0x96, 0x00, card.ef0016, k.app_line))
    yield "create 0018 transaction log", _k("80E00018072E0A17F1EFFFFF"), None
    yield "create 001A composite records", _k("80E0001A072C0100F0F0FFFF"), None
    yield "create EP 0002", _k("80E00002072F0208F000FF18"), None
    yield "create ED 0001", _k("80E00001072F0208F100FF18"), None


def issue_sample(transmit, card: SampleCard | None = None, log=None) -> SampleCard:
    """Personalize a blank card through ``transmit``; returns what was written."""
    card = card or SampleCard()
    for label, apdu, special in sample_steps(card):
        if special is not None:
            challenge_response = transmit(_k("0084000004"))
            if challenge_response[-2:] != b"\x90\x00":
                raise IssueError(f"{label}: GET CHALLENGE answered {challenge_response[-2:].hex().upper()}")
            challenge = challenge_response[:-2]
            kind, arg = special
            if kind == "auth":
                apdu = build(0x00, 0x82, 0x00, 0x00, external_auth_cryptogram(arg, challenge))
            else:
                cla, ins, p1, p2, data, key = arg
                apdu = protected_apdu(cla, ins, p1, p2, data, key, challenge)
        response = transmit(apdu)
        if log:
            log(label, apdu, response)
        if response[-2:] != b"\x90\x00" and response[-2:-1] != b"\x61":
            tries = wrong_key(int.from_bytes(response[-2:], "big"))
            raise IssueError(f"{label}: {apdu_hex(apdu)} answered {response[-2:].hex().upper()}"
                             + (f" ({tries})" if tries else ""))
    return card
