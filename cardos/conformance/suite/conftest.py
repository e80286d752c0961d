"""Fixtures of the conformance suite.

``prepared`` / ``target`` / ``issuer_keys`` (session)
    The card under test (:mod:`cardos.conformance.targets`) and the key set,
    checked once before the first test (:mod:`cardos.conformance.preflight`:
    reachable, the serial guard, the key set is the card's).
``card``
    A :class:`~cardos.conformance.channel.Channel` to the target, after a power
    cycle; its APDU trace goes to the report. Where destructive tests may run
    the card is first brought into the baseline (issued) state.
``issued``
    The baseline (:class:`~cardos.conformance.baseline.Baseline`): the card
    issued with the ``city`` profile and the key set. Destructive.
``scratch``
    The scratch DF, erased and current (:class:`~cardos.conformance.baseline.Scratch`).
``city`` / ``purse``
    The city application selected / its purse terminal (:class:`~cardos.conformance.purse.PurseTerminal`).
``interconnect``
    The card issued with the ``interconnect`` profile, its application selected.
``emulator_card`` / ``spare_card``
    In-process emulator only: the card object (power-cut hook) / a second
    card from the same factory as a channel (irreversible tests).
"""
from __future__ import annotations

import pytest

from cardos.conformance import baseline as B
from cardos.conformance.channel import Channel, Trace
from cardos.conformance.plugin import state, uses_baseline
from cardos.conformance.preflight import CITY_AID, INPUT, CannotStart, RunOptions, prepare
from cardos.conformance.purse import PurseTerminal
from cardos.conformance.targets import EmulatorTarget

INTERCONNECT_AID = bytes.fromhex("A000000632010105")


@pytest.fixture(scope="session")
def prepared(request, tmp_path_factory):
    """The target, checked before the first test (:mod:`cardos.conformance.preflight`).

    ``cardos conformance`` opens and checks it before pytest starts (a problem is one line there);
    run from pytest directly, the same checks run here and a problem stops the run."""
    st = state(request.config)
    ready = st.prepared
    if ready is None:
        try:
            ready = prepare(RunOptions.from_pytest(request.config), tmp_path_factory.mktemp("cards"),
                            uses_baseline=any(uses_baseline(item) for item in request.session.items))
        except CannotStart as exc:
            pytest.exit(f"cardos conformance: {exc}", returncode=4 if exc.exit_code == INPUT else 3)
    st.target, st.kind, st.identity = ready.target.label, ready.target.kind, ready.identity
    st.keys, st.destructive = ready.keys_label, ready.destructive
    yield ready
    ready.close()


@pytest.fixture(scope="session")
def target(prepared):
    return prepared.target


@pytest.fixture(scope="session")
def issuer_keys(prepared):
    return prepared.keys


@pytest.fixture(scope="session")
def baseline(issuer_keys):
    return B.Baseline(issuer_keys)


@pytest.fixture
def card(request, target, baseline):
    trace = Trace()
    request.node.cardos_trace = trace
    ch = Channel(target, trace)
    ch.power_cycle()
    if target.destructive_ok and baseline.keys is not None and not baseline.unavailable:
        _ensure(ch, baseline, None)
    return ch


def _ensure(ch, baseline, profile):
    try:
        if profile is None:
            baseline.ensure_any(ch)
        else:
            baseline.ensure(ch, profile)
    except B.BaselineUnavailable as exc:
        baseline.unavailable = str(exc)
        pytest.skip(f"the card cannot be brought into the baseline: {exc}")


def require_destructive(target, baseline) -> None:
    if not target.destructive_ok:
        pytest.skip("destructive: on a card in a reader this runs only with --serial matching the card")
    if baseline.keys is None:
        pytest.skip("needs the issuer key set (--keys)")
    if baseline.unavailable:
        pytest.skip(f"the card cannot be brought into the baseline: {baseline.unavailable}")


@pytest.fixture
def issued(card, target, baseline):
    require_destructive(target, baseline)
    _ensure(card, baseline, "city")
    return baseline


@pytest.fixture
def scratch(issued, card):
    return B.Scratch(card).fresh()


def _versions(profile: str) -> dict:
    if profile == "city":
        return {("load", 1): 1, ("load", 2): 2, ("purchase", 1): 1, ("purchase", 2): 2, ("unload", 1): 1,
                ("overdraw", 1): 1}
    return {("load", 1): 1, ("purchase", 1): 1}


def _terminal(card, baseline, profile: str) -> PurseTerminal:
    keys = baseline.keys
    alg_id = 0x04 if keys.algorithm_name == "SM4" else 0x00
    return PurseTerminal(card, keys, baseline.serial, _versions(profile), alg_id)


@pytest.fixture
def city(issued, card, target, baseline):
    select = bytes.fromhex("00A4040009") + CITY_AID + b"\x00"
    if card.send(select).sw in (0x6283, 0x6A81):  # left blocked by an earlier (failed) test
        baseline.dirty = True
        _ensure(card, baseline, "city")
    card.ok(select, "select the city application")
    return issued


@pytest.fixture
def purse(city, card) -> PurseTerminal:
    return _terminal(card, city, "city")


@pytest.fixture
def interconnect(card, target, baseline):
    require_destructive(target, baseline)
    _ensure(card, baseline, "interconnect")
    card.ok(bytes.fromhex("00A4040008") + INTERCONNECT_AID + b"\x00", "select the interconnect application")
    return _terminal(card, baseline, "interconnect")


@pytest.fixture
def emulator_card(target, issued):
    if not isinstance(target, EmulatorTarget) or not hasattr(target.card, "arm_power_cut"):
        pytest.skip("needs the emulated card in this process (power-cut hook)")
    return target.card


@pytest.fixture
def spare_card(request, target, baseline):
    """A second emulated card, issued with the baseline profile, as a channel."""
    if not isinstance(target, EmulatorTarget) or baseline.keys is None:
        pytest.skip("irreversible: only on a spare emulated card in this process")
    spare = EmulatorTarget(target.factory, "spare card")
    trace = Trace()
    request.node.cardos_trace = trace
    ch = Channel(spare, trace)
    base = B.Baseline(baseline.keys)
    try:
        base.ensure(ch, "city")
    except B.BaselineUnavailable as exc:
        pytest.skip(f"the spare card cannot be brought into the baseline: {exc}")
    ch.base = base
    return ch
