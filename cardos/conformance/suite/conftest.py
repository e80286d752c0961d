"""Fixtures of the conformance suite.

``target`` (session)
    The card under test (:mod:`cardos.conformance.targets`); checks the serial
    guard once: ``--cardos-serial`` that does not match the card stops the run.
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
from cardos.conformance.plugin import state
from cardos.conformance.purse import PurseTerminal
from cardos.conformance.targets import EmulatorTarget, TargetError, open_target

CITY_AID = bytes.fromhex("A00000000386980701")
INTERCONNECT_AID = bytes.fromhex("A000000632010105")


def _normal_serial(text: str) -> str:
    return text.replace(" ", "").upper() if text.lower() != "blank" else "blank"


@pytest.fixture(scope="session")
def target(request, tmp_path_factory):
    opt = request.config.getoption
    st = state(request.config)
    try:
        t = open_target(card=opt("cardos_card"), reader=opt("cardos_reader"), factory=opt("cardos_factory"),
                        vpcd=opt("cardos_vpcd"), vpcd_port=opt("cardos_vpcd_port"),
                        workdir=tmp_path_factory.mktemp("cards"))
    except TargetError as exc:
        pytest.exit(f"cardos conformance: {exc}", returncode=3)
    st.target, st.kind = t.label, t.kind
    try:
        ch = Channel(t)
        ch.power_cycle()
        identity = B.read_identity(ch)
    except Exception as exc:  # noqa: BLE001 - transport problems: no card, mute card
        t.close()
        pytest.exit(f"cardos conformance: {t.label}: cannot read the card ({exc})", returncode=3)
    st.identity = f"ATR {t.atr.hex().upper()}, serial {identity}"
    given = opt("cardos_serial")
    if given is not None and _normal_serial(given) != identity:
        t.close()
        pytest.exit(f"cardos conformance: card serial does not match: the card in {t.label} has serial {identity}, "
                    f"--serial says {given}; nothing was changed", returncode=3)
    t.destructive_ok = t.emulator or given is not None
    if t.emulator:
        st.destructive = "yes (emulated card)"
    elif given is not None:
        st.destructive = f"yes (serial {identity} confirmed)"
    else:
        st.destructive = f"no (pass --serial {identity} to allow them)"
    yield t
    t.close()


@pytest.fixture(scope="session")
def issuer_keys(request, target):
    from cardos.keyset import KeySetError, load

    st = state(request.config)
    name = request.config.getoption("cardos_keys")
    if name is None and target.emulator:
        name = "test"
    if name is None:
        st.keys = "none"
        return None
    try:
        keys = load(name)
    except KeySetError as exc:
        pytest.exit(f"cardos conformance: {exc}", returncode=4)
    st.keys = f"{name} ({keys.algorithm_name}{', TEST keys' if keys.test else ''})"
    return keys


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
    base.ensure(ch, "city")
    ch.base = base
    return ch
