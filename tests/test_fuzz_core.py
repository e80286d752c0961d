"""Property tests: random APDUs against a blank and an issued card.

`transmit` never raises, always answers data ‖ SW (never an internal error),
and without the keys no random command changes a key, a protected file or a
purse — only what free rights and try counters allow.
"""
import logging

from hypothesis import given
from hypothesis import strategies as st

from cardos import Card
from cardos.commands import DISPATCH
from cardos.sample import issue_sample

from .hypothesis_profiles import fuzz

KNOWN = sorted({ins for _cls, ins in DISPATCH} | {0xC0})

byte = st.integers(0, 255)
structured = st.builds(
    lambda cla, ins, p1, p2, data, le, form: _encode(cla, ins, p1, p2, data, le, form),
    st.sampled_from([0x00, 0x04, 0x80, 0x84]) | byte,
    st.sampled_from(KNOWN) | byte,
    byte, byte,
    st.binary(max_size=300),
    st.none() | st.integers(0, 300),
    st.sampled_from(["short", "extended", "truncated", "oversized"]),
)
raw = st.binary(max_size=40)
apdus = st.lists(structured | raw, min_size=1, max_size=12)


def _encode(cla, ins, p1, p2, data, le, form):
    header = bytes((cla, ins, p1, p2))
    if form == "extended" or len(data) > 255:
        body = (b"\x00" + len(data).to_bytes(2, "big") + data) if data else b""
        if le is not None:
            body += (le % 65536).to_bytes(2, "big") if body else b"\x00" + (le % 65536).to_bytes(2, "big")
        return header + body
    body = (bytes((len(data),)) + data) if data else b""
    if le is not None:
        body += bytes((le % 256,))
    if form == "truncated":
        return (header + body)[: max(0, len(header + body) - 3)]
    if form == "oversized":
        return header + body + b"\x00\x01"
    return header + body


class _Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _run(card, sequence):
    errors = _Errors()
    logger = logging.getLogger("cardos")
    logger.addHandler(errors)
    try:
        for apdu in sequence:
            response = card.transmit(apdu)
            assert isinstance(response, bytes) and len(response) >= 2, apdu.hex()
    finally:
        logger.removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]


def _protected_state(card):
    """Everything random commands must not change: keys, protected files, purses."""
    from cardos.filesystem import BinaryEF, KeyFile, PurseEF, walk

    state = []
    for node in walk(card.mf):
        if isinstance(node, KeyFile):
            state.append(sorted((k.stored_type, k.kid, k.value, k.use, k.change, k.b3) for k in node.keys.values()))
        elif isinstance(node, BinaryEF) and node.protection:
            state.append(node.data)
        elif isinstance(node, PurseEF):
            state.append((node.balance, node.online_counter, node.offline_counter, node.overdraw_limit))
    return state, card.card_blocked


FUZZ = fuzz(150)  # HYPOTHESIS_PROFILE=long: 100× more (docs/robustness.md)


@FUZZ
@given(apdus)
def test_blank_card_answers_everything(sequence):
    card = Card.blank()
    _run(card, sequence)


@FUZZ
@given(apdus)
def test_issued_card_keeps_keys_and_protected_files(sequence):
    card = Card.blank()
    issue_sample(card.transmit)
    card.power_on()
    card.transmit(bytes.fromhex("00A4040009A00000000386980701"))
    before = _protected_state(card)
    _run(card, sequence)
    assert _protected_state(card) == before
