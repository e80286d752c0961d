"""Property tests, part 2 (part 1, blank and sample cards: ``test_fuzz_core.py``).

Random APDUs — every CLA/INS/P1/P2, Lc/Le/data shape, truncated, oversized,
lying about their length, aimed at the card's real files and purses, and
mutations of real issuance and transaction APDUs — against

* an issued card: the shipped ``city`` profile with the shipped TEST key set,
  both purses loaded, one purchase made;
* that card in the middle of a purse session: after INITIALIZE FOR LOAD,
  INITIALIZE FOR PURCHASE (EP), VERIFY PIN + INITIALIZE FOR PURCHASE (ED),
  INITIALIZE FOR CAPP PURCHASE + UPDATE CAPP DATA CACHE;
* a blank card (shapes only; its guarded state is checked in part 1).

The property, stated for a terminal that holds no key, no session key and
does not know the PIN, starting in security state S0 (MF register ``mf0``,
current-DF register ``df0``). Without a secret the registers cannot rise, so
the states it can reach are (mf0, d) for d in {df0, mf0, 0}; a right is
*free* when one of them satisfies it. Then, for every sequence:

1. ``transmit`` never raises and always answers data ‖ SW1 SW2 with a status
   word the card defines (never ``6F00``), and nothing is logged as an error.
2. Keys: no key is added, removed or changed (type, header, value) in a key
   file whose add right and the key's change right are not free; try
   counters never go up.
3. Files: an EF that is line-protected, or whose write right is not free,
   keeps its content, as long as the erase rights above it are not free.
4. Purses: balance, online and offline counters, overdraw limit, transaction
   proofs and the transaction log never change; MAC-failure counters never
   go down.
5. Blocks: the card never becomes blocked; nothing is unblocked; a block
   only becomes stricter, and only permanent (the consequence of failed MACs).
6. A command answered with an error status writes nothing but try counters,
   purse MAC-failure counters and the block that follows them.
7. A power cut at any write point of a command leaves exactly the state
   before the command, or (cut after the commit) the state after it.

Bounded for CI; ``HYPOTHESIS_PROFILE=long`` runs 100× more (docs/robustness.md).
"""
from __future__ import annotations

import json
import logging
from datetime import date, datetime
from functools import lru_cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardos import Card, image
from cardos.apdu import build
from cardos.commands import DISPATCH
from cardos.filesystem import BLOCK_PERMANENT, DF, BinaryEF, KeyFile, PurseEF, RecordEF, walk
from cardos.keyset import load as load_keyset
from cardos.nvm import Journal
from cardos.personalize import issue
from cardos.security import right_satisfied
from cardos.sw import SW
from cardos.terminal import purse as T
from cardos.terminal.host import LoadHost
from cardos.terminal.psam import PSAM

from .hypothesis_profiles import fuzz
from .test_fuzz_core import raw, structured

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # long reprs

KEYS = load_keyset("test")
PIN = bytes.fromhex("123456")
TERMINAL = bytes.fromhex("112233445566")
WHEN = datetime(2026, 5, 1, 8, 30, 0)
CITY_AID = bytes.fromhex("A00000000386980701")
CAPP_RECORD = bytes.fromhex("012E") + bytes(range(46))  # 001A record 01 (46 bytes of value)

# -- the cards ------------------------------------------------------------------------------


class RecordingJournal(Journal):
    """A journal that also remembers what each command wrote: (kind of object, attribute)."""

    __slots__ = ("log",)

    def __init__(self):
        super().__init__()
        self.log = []

    def set(self, obj, attr, value):
        self.log.append((type(obj).__name__, attr))
        super().set(obj, attr, value)

    def set_item(self, container, key, value):
        self.log.append(("dict", key))
        super().set_item(container, key, value)

    def del_item(self, container, key):
        self.log.append(("dict", key))
        super().del_item(container, key)


CORPUS: list[bytes] = []  # every APDU of the issuance and the transactions below


def corpus() -> list[bytes]:
    issued_image()
    return CORPUS


@lru_cache(maxsize=None)
def issued_image() -> str:
    """The issued card's image text (built once): city profile, TEST keys, purses loaded."""
    card = Card.blank()
    card.power_on()

    def transmit(apdu: bytes) -> bytes:
        CORPUS.append(bytes(apdu))
        return card.transmit(apdu)

    issue(transmit, "city", KEYS, {"serial": 7}, today=date(2026, 5, 1))
    card.power_on()
    serial = T.select_application(transmit)
    T.verify_pin(transmit, PIN)
    host, psam = LoadHost(KEYS), PSAM(KEYS, bytes.fromhex("010203040506"))
    T.load(transmit, host, 100_000, terminal=TERMINAL, purse=T.EP, serial=serial, when=WHEN)
    T.load(transmit, host, 50_000, terminal=TERMINAL, purse=T.ED, serial=serial, when=WHEN)
    T.purchase(transmit, psam, 150, purse=T.EP, serial=serial, when=WHEN)
    T.purchase(transmit, psam, 250, purse=T.ED, serial=serial, when=WHEN)
    T.capp_purchase(transmit, psam, 100, [T.CappUpdate(0x1A, 0x01, CAPP_RECORD)],
                    serial=serial, when=WHEN)
    card.power_off()
    return image.dumps(card)


def clone(text: str) -> Card:
    atr, config, blocked, mf = image.card_state_from_dict(json.loads(text))
    card = Card(mf, config=config, atr=atr, card_blocked=blocked)
    card.journal = RecordingJournal()
    card.seed_random(1)
    return card


def _ok(card, apdu: bytes) -> bytes:
    data, sw = T.send(card, apdu)
    assert sw == 0x9000, f"{apdu.hex().upper()} -> {sw:04X}"
    return data


def _select_app(card) -> None:
    _ok(card, build(0x00, 0xA4, 0x04, 0x00, CITY_AID, 0))


def _init(p1: int, purse: int, amount: int, le: int) -> bytes:
    return build(0x80, 0x50, p1, purse, b"\x01" + amount.to_bytes(4, "big") + TERMINAL, le)


SETUPS = {
    "issued": lambda card: None,
    "in application": _select_app,
    "load session": lambda card: (_select_app(card), _ok(card, _init(0x00, 0x02, 500, 0x10))),
    "EP purchase session": lambda card: (_select_app(card), _ok(card, _init(0x01, 0x02, 300, 0x0F))),
    "ED purchase session": lambda card: (_select_app(card), T.verify_pin(card, PIN),
                                         _ok(card, _init(0x01, 0x01, 300, 0x0F))),
    "CAPP session": lambda card: (_select_app(card), _ok(card, _init(0x03, 0x02, 300, 0x0F)),
                                  _ok(card, build(0x80, 0xDC, 0x01, 0xD0, CAPP_RECORD[:2] + b"\x11" * 46))),
}


def card_in(setup: str) -> Card:
    card = clone(issued_image())
    card.power_on()
    SETUPS[setup](card)
    card.journal.log.clear()
    return card


# -- what must not change ---------------------------------------------------------------------

def reachable_levels(card) -> tuple[int, tuple[int, ...]]:
    mf0, df0 = card.security.mf_level, card.security.df_level
    return mf0, (df0, mf0, 0)


def free(right: int, reach) -> bool:
    mf0, dfs = reach
    return any(right_satisfied(right, mf0, d) for d in dfs)


def guarded(card, reach) -> dict:
    """Everything the terminal without keys must not be able to change (the property's 2-5)."""
    out = {"card_blocked": card.card_blocked}

    def visit(df: DF, path: str, erasable: bool):
        erasable = erasable or free(df.erase_right, reach)
        for fid, node in df.children.items():
            where = f"{path}/{fid:04X}"
            if isinstance(node, DF):
                visit(node, where, erasable)
            elif isinstance(node, KeyFile):
                if not free(node.add_right, reach) and not erasable:
                    out[where] = sorted((k.stored_type, k.kid, k.use, k.change, k.b3,
                                         k.b4 >> 4 if k.counted else k.b4, k.value)
                                        for k in node.keys.values() if not free(k.change, reach))
            elif isinstance(node, PurseEF):
                out[where] = (node.balance, node.online_counter, node.offline_counter, node.overdraw_limit,
                              sorted(node.proofs.items()))
            elif not erasable and (node.protection or not free(node.write_right, reach)):
                out[where] = node.data if isinstance(node, BinaryEF) else node.records
        for purse in (n for n in df.children.values() if isinstance(n, PurseEF)):
            log = df.find_sfi(purse.log_sfi)
            if isinstance(log, RecordEF):
                out[f"{path}/log of {purse.fid:04X}"] = log.records

    visit(card.mf, "", False)
    return out


def monotone(card) -> dict:
    """Counters that may move one way only: try counters (down), MAC failures (up), blocks (up)."""
    out = {}
    for node in walk(card.mf):
        if isinstance(node, KeyFile):
            for k in node.keys.values():
                if k.counted:
                    out[("tries", id(node), k.base_type, k.kid)] = -(k.b4 & 0x0F)
        elif isinstance(node, PurseEF):
            out[("mac_failures", id(node))] = node.mac_failures
        elif isinstance(node, DF):
            out[("block", id(node))] = node.block
    return out


def check_monotone(before: dict, after: dict) -> None:
    for key, old in before.items():
        new = after.get(key, old)
        assert new >= old, f"{key[0]} went the wrong way: {old} -> {new}"
        if key[0] == "block" and new != old:
            assert new == BLOCK_PERMANENT, "a block became stricter, but not permanent"


ERROR_WRITES = {("Key", "b4"), ("PurseEF", "mac_failures"), ("DF", "block")}
SW_KNOWN = {int(s) for s in SW} - {int(SW.INVALID_DATA)}


def sw_known(sw: int) -> bool:
    return sw in SW_KNOWN or sw >> 8 in (0x61, 0x6C) or sw & 0xFFF0 == 0x63C0


class _Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def run_checked(card, actions) -> None:
    """Run ``actions`` on ``card``, checking properties 1, 5 (monotone part), 6 and 7 on the way."""
    errors = _Errors()
    logger = logging.getLogger("cardos")
    logger.addHandler(errors)
    try:
        for action in actions:
            kind, apdu = action[0], action[1]
            before_counters = monotone(card)
            if kind == "cut":
                _cut(card, apdu, action[2])
                continue
            if kind == "power":
                card.power_off()
            card.journal.log.clear()
            response = card.transmit(apdu)
            assert isinstance(response, bytes) and len(response) >= 2, apdu.hex()
            sw = int.from_bytes(response[-2:], "big")
            assert sw_known(sw), f"{apdu.hex().upper()} -> unknown status {sw:04X}"
            if len(response) > 2:
                assert sw == 0x9000 or sw >> 8 in (0x61, 0x62, 0x63), f"data with {sw:04X}"
            if sw != 0x9000 and sw >> 8 != 0x61:
                stray = [w for w in card.journal.log if w not in ERROR_WRITES]
                assert not stray, f"{apdu.hex().upper()} -> {sw:04X} but wrote {stray}"
            check_monotone(before_counters, monotone(card))
    finally:
        logger.removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]


def _cut(card, writer, point: int) -> None:
    """Property 7: cut power at write point ``point`` (scaled into the command's write points).

    ``writer`` is (prefix APDUs, APDU), or ("purchase" | "load", purse, amount): a transaction
    made with the keys, cut in its completing command. A twin of the card (same image, same
    volatile state, same randoms) runs the command uncut to learn the state after it.
    """
    twin = clone(image.dumps(card))
    card.security.challenge, card.session, card._pending = None, None, b""  # (volatile state the twin cannot share)
    twin.powered, twin.free_access, twin.current_record = card.powered, card.free_access, card.current_record
    twin.security.mf_level, twin.security.df_level = card.security.mf_level, card.security.df_level
    twin.current_df, twin.current_ef = _same_node(twin, card.current_df), _same_node(twin, card.current_ef)
    card.seed_random(point)
    twin.seed_random(point)
    if isinstance(writer[0], str):
        apdu = _transaction(card, twin, *writer)
    else:
        prefix, apdu = writer
        for a in prefix:
            assert card.transmit(a) == twin.transmit(a)
    if apdu is None:
        return
    before = state_of(card)
    twin.transmit(apdu)
    points = twin.last_write_points
    after = state_of(twin)
    if not points:
        return
    point = 1 + point % points
    card.arm_power_cut(point)
    response = card.transmit(apdu)
    assert response == b"" and not card.powered, "an armed power cut did not happen"
    state = state_of(card)
    if point == points:
        assert state == after, f"cut after the commit of {apdu.hex().upper()} lost the command"
    else:
        assert state == before, f"cut at write point {point}/{points} of {apdu.hex().upper()} left a mixture"


def state_of(card) -> dict:
    """The card's persistent state (as its image holds it; dict order aside)."""
    return json.loads(image.dumps(card))


def _transaction(card, twin, kind: str, purse: int, amount: int) -> bytes | None:
    """Bring card and twin to the completing command of a valid load or purchase; return it."""
    for c in (card, twin):
        c.transmit(build(0x00, 0xA4, 0x04, 0x00, CITY_AID))
        if purse == T.ED:
            c.transmit(build(0x00, 0x20, 0x00, 0x00, PIN))
    data, sw = T.send(card, bytes.fromhex("00B0950000"))
    serial = data[12:20]
    init = _init_apdu(0x00 if kind == "load" else 0x01, purse, 1, amount)
    response = card.transmit(init)
    assert twin.transmit(init) == response
    if response[-2:] != b"\x90\x00" or sw != 0x9000:
        return None  # blocked, not enough money, over the maximum balance …
    r = response[:-2]
    date_time = bytes.fromhex("20260501083000")
    if kind == "load":
        mac2 = LoadHost(KEYS).authorize_load(
            serial, key_index=1, tx_type=T.ED_LOAD if purse == T.ED else T.EP_LOAD,
            balance=int.from_bytes(r[:4], "big"), counter=int.from_bytes(r[4:6], "big"), random=r[8:12],
            mac1=r[12:16], amount=amount, terminal=TERMINAL, date_time=date_time)
        return build(0x80, 0x52, 0x00, 0x00, date_time + mac2, 4)
    tsn, mac1 = PSAM(KEYS, TERMINAL).init_purchase(
        serial, key_index=1, tx_type=T.ED_PURCHASE if purse == T.ED else T.EP_PURCHASE,
        counter=int.from_bytes(r[4:6], "big"), random=r[11:15], amount=amount, date_time=date_time)
    return build(0x80, 0x54, 0x01, 0x00, tsn + date_time + mac1, 8)


def _same_node(twin, node):
    """The node of ``twin`` at the path of ``node`` in the other card."""
    if node is None:
        return None
    path = []
    while node.parent is not None:
        path.append(node.fid)
        node = node.parent
    found = twin.mf
    for fid in reversed(path):
        found = found.children[fid]
    return found


# -- APDU strategies --------------------------------------------------------------------------

byte = st.integers(0, 255)
cla = st.sampled_from([0x00, 0x04, 0x80, 0x84]) | byte
FIDS = [0x3F00, 0x0000, 0x0001, 0x0002, 0x0005, 0x0015, 0x0016, 0x0018, 0x001A, 0x1001, 0xFFFF, 0x3FFF]
SFIS = [0x01, 0x02, 0x05, 0x15, 0x16, 0x18, 0x1A, 0x1F]
NAMES = [CITY_AID, b"1PAY.SYS.DDF01", CITY_AID[:5], CITY_AID + b"\x00"]


def _apdu(c, ins, p1, p2, data=b"", le=None):
    return build(c, ins, p1, p2, data, le)


sfi_p1 = st.sampled_from(SFIS).map(lambda s: 0x80 | s) | byte
record_p2 = st.builds(lambda s, m: (s << 3) | m, st.sampled_from(SFIS + [0]), st.integers(0, 7)) | byte
le = st.none() | st.integers(0, 256)
small_data = st.binary(max_size=40)

targeted = st.one_of(
    st.builds(lambda c, p1, p2, fid, le_: _apdu(c, 0xA4, p1, p2, fid.to_bytes(2, "big"), le_),
              st.sampled_from([0x00, 0x04]), st.sampled_from([0x00, 0x02]), st.sampled_from([0x00, 0x02, 0x0C]),
              st.sampled_from(FIDS), le),
    st.builds(lambda c, name, p2, le_: _apdu(c, 0xA4, 0x04, p2, name, le_),
              st.sampled_from([0x00, 0x04]), st.sampled_from(NAMES) | st.binary(max_size=17),
              st.sampled_from([0x00, 0x02, 0x0C]), le),
    st.builds(lambda c, p1, p2, le_: _apdu(c, 0xB0, p1, p2, b"", le_), cla, sfi_p1, byte, le),
    st.builds(lambda c, p1, p2, d: _apdu(c, 0xD6, p1, p2, d), cla, sfi_p1, byte, small_data),
    st.builds(lambda c, p1, p2, d, le_: _apdu(c, 0xB2, p1, p2, d, le_), cla, byte, record_p2,
              st.sampled_from([b"", b"\x00\x00\x00\x00"]) | small_data, le),
    st.builds(lambda c, ins, p1, p2, d: _apdu(c, ins, p1, p2, d), cla, st.sampled_from([0xDC, 0xE2]), byte,
              record_p2, small_data),
    st.builds(lambda p1, p2, d, le_: _apdu(0x80, 0x50, p1, p2, d, le_), st.integers(0, 6),
              st.sampled_from([0x01, 0x02, 0x00, 0x03]),
              st.binary(min_size=7, max_size=11) | small_data, st.none() | st.sampled_from([0x0F, 0x10, 0x13, 0])),
    st.builds(lambda ins, p1, d, le_: _apdu(0x80, ins, p1, 0x00, d, le_), st.sampled_from([0x52, 0x54, 0x58]),
              st.sampled_from([0x00, 0x01, 0x03]),
              st.integers(0, 20).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
              st.none() | st.sampled_from([0x04, 0x08, 0])),
    st.builds(lambda p2, d, le_: _apdu(0x80, 0x5A, 0x00, p2, d, le_), byte, st.binary(min_size=2, max_size=2),
              st.none() | st.just(8)),
    st.builds(lambda p2, le_: _apdu(0x80, 0x5C, 0x00, p2, b"", le_), st.sampled_from([0x01, 0x02]) | byte,
              st.none() | st.just(4)),
    st.builds(lambda c, p1, p2, d: _apdu(c, 0xDC, p1, p2, d), st.sampled_from([0x80, 0x84]), byte, record_p2,
              small_data),
    st.builds(lambda c, p2, d: _apdu(c, 0x20, 0x00, p2, d), st.sampled_from([0x00, 0x04]), st.integers(0, 2),
              st.binary(min_size=0, max_size=10)),
    st.builds(lambda p1, d: _apdu(0x80, 0x5E, p1, 0x00, d), st.integers(0, 2), small_data),
    st.builds(lambda c, p1, p2, d: _apdu(c, 0x24, p1, p2, d), st.sampled_from([0x80, 0x84]), st.integers(0, 1),
              st.integers(0, 1), st.binary(max_size=24)),
    st.builds(lambda n: _apdu(0x00, 0x84, 0x00, 0x00, b"", n), st.sampled_from([4, 8, 16, 0, 5])),
    st.builds(lambda kid, d: _apdu(0x00, 0x82, 0x00, kid, d), st.integers(0, 2), st.binary(min_size=8, max_size=16)),
    st.builds(lambda p1, p2, d: _apdu(0x00, 0x88, p1, p2, d), st.integers(0, 3), st.integers(0, 1), small_data),
    st.builds(lambda c, p1, p2, d: _apdu(c, 0xD4, p1, p2, d), st.sampled_from([0x80, 0x84]),
              st.sampled_from([0x01, 0x39, 0x36, 0x3A, 0x3E, 0xF9]) | byte, st.integers(0, 2) | byte,
              st.binary(min_size=5, max_size=29)),
    st.builds(lambda c, ins, p2, d: _apdu(c, ins, 0x00, p2, d), st.sampled_from([0x80, 0x84]),
              st.sampled_from([0x1E, 0x18, 0x16]), st.integers(0, 1), st.binary(max_size=8)),
    st.builds(lambda p1, p2, d: _apdu(0x80, 0xE0, p1, p2, d), byte, byte, st.binary(max_size=30)),
    st.builds(lambda d: _apdu(0x80, 0x0E, 0x00, 0x00, d), st.binary(max_size=2)),
    st.builds(lambda n: bytes((0x00, 0xC0, 0x00, 0x00, n)), byte),
)


@st.composite
def lying_lengths(draw):
    """Lc that does not match the data, extended forms with zero or missing fields."""
    header = bytes((draw(cla), draw(st.sampled_from(sorted({i for _c, i in DISPATCH}))), draw(byte), draw(byte)))
    data = draw(st.binary(max_size=20))
    form = draw(st.integers(0, 5))
    if form == 0:
        return header + bytes(((len(data) + draw(st.integers(1, 5))) % 256,)) + data
    if form == 1:
        return header + b"\x00" + data                              # Lc 00 followed by data
    if form == 2:
        return header + b"\x00\x00\x00" + data                      # extended Lc 0000
    if form == 3:
        return header + b"\x00" + len(data).to_bytes(2, "big") + data + b"\x00"  # extended with a 1-byte Le
    if form == 4:
        return header + b"\x00" + draw(st.binary(min_size=1, max_size=2))
    return header[:draw(st.integers(0, 3))]


@st.composite
def mutated(draw):
    """A real APDU of the issuance or the transactions, changed a little."""
    apdu = bytearray(draw(st.sampled_from(corpus())))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.integers(0, 4))
        at = draw(st.integers(0, max(0, len(apdu) - 1)))
        if op == 0 and apdu:
            apdu[at] ^= 1 << draw(st.integers(0, 7))
        elif op == 1 and apdu:
            apdu[at] = draw(byte)
        elif op == 2:
            del apdu[at:]
        elif op == 3:
            apdu += draw(st.binary(min_size=1, max_size=4))
        elif apdu:
            del apdu[at]
    return bytes(apdu)


# Protocol-shaped sequences: the precondition done right (a challenge, an INITIALIZE), then
# the protected command with the right shape and a random MAC / cryptogram / PIN.
mac4 = st.binary(min_size=4, max_size=4)
challenge = st.sampled_from([4, 8]).map(lambda n: bytes((0x00, 0x84, 0x00, 0x00, n)))
select_app = st.just(build(0x00, 0xA4, 0x04, 0x00, CITY_AID))
select_mf = st.just(bytes.fromhex("00A40000023F00"))
protected = st.one_of(
    st.builds(lambda p1, d, m: build(0x04, 0xD6, p1, 0x00, d + m), st.sampled_from([0x95, 0x96, 0x85]),
              st.binary(min_size=1, max_size=30), mac4),
    st.builds(lambda p1, kid, d: build(0x84, 0xD4, p1, kid, d), st.sampled_from([0x01, 0x39, 0x36, 0x3E, 0x3F]),
              st.integers(0, 2), st.sampled_from([8, 16, 24, 32]).flatmap(lambda n: st.binary(min_size=n + 4,
                                                                                            max_size=n + 4))),
    st.builds(lambda ins, p2, m: build(0x84, ins, 0x00, p2, m), st.sampled_from([0x1E, 0x18, 0x16]),
              st.integers(0, 1), mac4),
    st.builds(lambda n, d: build(0x84, 0x24, 0x00, 0x01, d[:n]), st.sampled_from([12, 20]), st.binary(min_size=20,
                                                                                                         max_size=20)),
    st.builds(lambda pin, m: build(0x04, 0x20, 0x00, 0x00, pin + m), st.binary(min_size=2, max_size=6), mac4),
    st.builds(lambda pin, m: build(0x80, 0x5E, 0x00, 0x00, pin + m), st.binary(min_size=2, max_size=6), mac4),
    st.builds(lambda kid, c: build(0x00, 0x82, 0x00, kid, c), st.integers(0, 1), st.binary(min_size=8, max_size=8)),
    st.builds(lambda p1, p2, m: build(0x04, 0xB2, p1, p2, m, 0), st.integers(1, 3), st.sampled_from([0xC4, 0xD4]), mac4),
    st.builds(lambda p1, m: build(0x04, 0xB0, p1, 0x00, m, 0), st.sampled_from([0x95, 0x96, 0x85]), mac4),
)
amount = st.integers(0, 2000) | st.integers(0, 2**32 - 1)
key_index = st.sampled_from([1, 2]) | st.integers(0, 255)
date_time = st.binary(min_size=7, max_size=7)


def _init_apdu(p1, purse, kid, amt):
    return build(0x80, 0x50, p1, purse, bytes((kid,)) + amt.to_bytes(4, "big") + TERMINAL, 0)


purse_pairs = st.one_of(
    st.builds(lambda purse, kid, amt, dt, m: [_init_apdu(0x00, purse, kid, amt), build(0x80, 0x52, 0, 0, dt + m, 4)],
              st.sampled_from([1, 2]), key_index, amount, date_time, mac4),
    st.builds(lambda p1, purse, kid, amt, tsn, dt, m: [_init_apdu(p1, purse, kid, amt),
                                                       build(0x80, 0x54, 0x01, 0, tsn + dt + m, 8)],
              st.sampled_from([0x01, 0x02, 0x03]), st.sampled_from([1, 2]), key_index, amount,
              st.binary(min_size=4, max_size=4), date_time, mac4),
    st.builds(lambda kid, amt, dt, m: [_init_apdu(0x05, 0x01, kid, amt), build(0x80, 0x54, 0x03, 0, dt + m, 4)],
              key_index, amount, date_time, mac4),
    st.builds(lambda kid, limit, dt, m: [build(0x80, 0x50, 0x04, 0x01, bytes((kid,)) + TERMINAL, 0),
                                         build(0x80, 0x58, 0, 0, limit + dt + m, 4)],
              key_index, st.binary(min_size=3, max_size=3), date_time, mac4),
    st.builds(lambda kid, amt, rec, tsn, dt, m: [_init_apdu(0x03, 0x02, kid, amt),
                                                 build(0x80, 0xDC, 0x01, 0xD0, rec),
                                                 build(0x80, 0x54, 0x01, 0, tsn + dt + m, 8)],
              key_index, amount, st.just(CAPP_RECORD[:2]).map(lambda h: h + bytes(46)) | st.binary(max_size=50),
              st.binary(min_size=4, max_size=4), date_time, mac4),
)
verify_pin = st.builds(lambda c, pin: build(c, 0x20, 0x00, 0x00, pin), st.sampled_from([0x00]),
                       st.binary(min_size=2, max_size=6))
shaped = st.one_of(
    st.tuples(challenge, protected).map(list),
    st.tuples(select_mf, challenge, protected).map(list),
    st.tuples(select_app, challenge, protected).map(list),
    purse_pairs,
    st.tuples(select_app, verify_pin).map(list),
    st.tuples(select_app, purse_pairs).map(lambda t: [t[0]] + t[1]),
)

any_apdu = st.one_of(structured, raw, targeted, targeted, mutated(), mutated(), lying_lengths())
action = st.one_of(
    st.tuples(st.just("apdu"), any_apdu).map(lambda a: [a]),
    st.tuples(st.just("apdu"), any_apdu).map(lambda a: [a]),
    st.tuples(st.just("power"), any_apdu).map(lambda a: [a]),
    shaped.map(lambda apdus: [("apdu", a) for a in apdus]),
    shaped.map(lambda apdus: [("apdu", a) for a in apdus]),
)
actions = st.lists(action, min_size=1, max_size=10).map(lambda groups: [a for g in groups for a in g])


# -- the properties ---------------------------------------------------------------------------

@pytest.mark.parametrize("setup", list(SETUPS))
@fuzz(200)
@given(sequence=actions)
def test_no_way_around_the_access_rules(setup, sequence):
    card = card_in(setup)
    reach = reachable_levels(card)
    before = guarded(card, reach)
    run_checked(card, sequence)
    assert guarded(card, reach) == before


SESSIONS = {
    "load session": st.builds(lambda dt, m, le_: build(0x80, 0x52, 0, 0, dt + m, le_), date_time, mac4,
                              st.none() | st.just(4)),
    "EP purchase session": st.builds(lambda tsn, dt, m, le_: build(0x80, 0x54, 0x01, 0, tsn + dt + m, le_),
                                     st.binary(min_size=4, max_size=4), date_time, mac4, st.none() | st.just(8)),
    "CAPP session": st.builds(lambda tsn, dt, m: build(0x80, 0x54, 0x01, 0, tsn + dt + m, 8),
                              st.binary(min_size=4, max_size=4), date_time, mac4),
}
SESSIONS["ED purchase session"] = SESSIONS["EP purchase session"]


@st.composite
def session_start(draw):
    setup = draw(st.sampled_from(sorted(SESSIONS)))
    first = draw(st.one_of(SESSIONS[setup], SESSIONS[setup], targeted, mutated()))
    return setup, first


@fuzz(400)
@given(start=session_start(), sequence=actions)
def test_completing_a_session_without_keys(start, sequence):
    """The command right after INITIALIZE, while the session is live: right shape, random MAC."""
    setup, first = start
    card = card_in(setup)
    reach = reachable_levels(card)
    before = guarded(card, reach)
    run_checked(card, [("apdu", first)] + sequence)
    assert guarded(card, reach) == before


@fuzz(200)
@given(sequence=actions)
def test_blank_card_shapes(sequence):
    card = Card.blank()
    card.journal = RecordingJournal()
    run_checked(card, sequence)


# Commands that write even without keys (free 001A records, wrong PINs, wrong MACs and
# cryptograms), and complete valid transactions (marked "purchase"/"load": made with the keys).
writers = st.one_of(
    st.builds(lambda p1, rec: ([], build(0x00, 0xDC, p1, 0xD4, rec)), st.just(1),
              st.binary(min_size=46, max_size=46).map(lambda v: CAPP_RECORD[:2] + v)),
    st.builds(lambda rec: ([], build(0x00, 0xE2, 0x00, 0xD0, rec)),
              st.binary(min_size=0, max_size=11).map(lambda v: bytes((0x02, len(v))) + v)),
    st.builds(lambda pin: ([], build(0x00, 0x20, 0x00, 0x00, pin)), st.binary(min_size=2, max_size=6)),
    st.builds(lambda c, p: ([c], p), challenge, protected),
    purse_pairs.map(lambda apdus: (apdus[:-1], apdus[-1])),
    st.builds(lambda kind, purse, amt: (kind, purse, amt), st.sampled_from(["purchase", "load"]),
              st.sampled_from([1, 2]), st.integers(1, 5000)),
    st.one_of(targeted, mutated(), structured).map(lambda a: ([], a)),
)
cut_action = st.builds(lambda w, point: ("cut", w, point), writers, st.integers(1, 1000))


@fuzz(300)
@given(setup=st.sampled_from(sorted(set(SETUPS) - {"issued"})), prefix=actions, cut=cut_action,
       rest=st.lists(action, max_size=3).map(lambda groups: [a for g in groups for a in g]))
def test_power_cut_at_any_write_point(setup, prefix, cut, rest):
    card = card_in(setup)
    run_checked(card, prefix + [cut] + rest)


def test_the_property_is_not_vacuous():
    """The guarded state covers every key, protected file and purse of the card — and a
    terminal *with* the keys does change it (so the comparison can see a change)."""
    card = card_in("in application")
    reach = reachable_levels(card)
    state = guarded(card, reach)
    assert state["/0000"] and state["/1001/0000"]                    # MF and ADF keys
    assert {"/0005", "/1001/0015", "/1001/0016", "/1001/0018"} <= set(state)
    assert {"/1001/0001", "/1001/0002"} <= set(state)                # ED, EP
    T.purchase(card, PSAM(KEYS, bytes.fromhex("010203040506")), 1, purse=T.EP, when=WHEN)
    assert guarded(card, reach) != state
