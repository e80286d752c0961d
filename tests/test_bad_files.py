"""Bad files (issue 9): corrupt, truncated, wrong-version and hostile card images, profiles,
key sets and scripts are refused with one message naming the file and the problem, and
never damage an existing image.

* Card images: a table of hostile trees (huge numbers, deep nesting, wrong types, duplicate
  FIDs and keys, keys of impossible lengths, records longer than their file, …); every
  truncation; and random hostile mutations of an issued image (hypothesis): the loader
  either refuses the file (``ImageError`` naming it) or the card it builds answers every
  command without an internal error and saves and reloads. Opening never writes the file.
* Through the CLI: every command that takes an image refuses a bad one (exit code, one line
  naming the file) and leaves it byte for byte; a bad profile, key set or script leaves the
  good image it was aimed at byte for byte.
* Profiles, key sets, scripts: hostile tables and random mutations: only ``ProfileError``,
  ``KeySetError``, ``ScriptError`` (naming the file), never another exception.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import subprocess
import sys
from datetime import date
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from cardos import Card, ImageError, image
from cardos import keyset as K
from cardos import profiles as P
from cardos.personalize import IssueError, issue
from cardos.sample import issue_sample
from cardos.scripting import ScriptError, check, parse_text

from .hypothesis_profiles import fuzz

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
ROOT = Path(__file__).resolve().parents[1]


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@lru_cache(maxsize=None)
def issued_text() -> str:
    """An issued sample card with purse history (both purses, proofs, the log)."""
    from .purse_util import sample_card
    from cardos.terminal import purse as T
    from cardos.terminal.host import LoadHost
    from cardos.terminal.keys import IssuerKeys
    from cardos.terminal.psam import PSAM
    from cardos.sample import SampleKeys

    card, t, _ = sample_card()
    k = SampleKeys()
    keys = IssuerKeys(load=k.load, purchase=k.purchase, tac=k.tac, diversify=False)
    T.load(card, LoadHost(keys), 5000, terminal=bytes(6))
    T.purchase(card, PSAM(keys, bytes(6)), 100)
    return image.dumps(card)


def issued_dict() -> dict:
    return json.loads(issued_text())


def node(d: dict, *fids: str) -> dict:
    for fid in fids:
        d = next(c for c in d["children"] if c["fid"] == fid)
    return d


ADF = ("1001",)


def _nest(depth: int) -> dict:
    out = {"fid": "1234", "type": "38", "name": "AA", "space": 10, "create": "00", "erase": "00",
           "app_file_id": "01", "reserved": "FFFF", "block": 0, "children": []}
    for _ in range(depth):
        out = {**out, "children": [copy.deepcopy(out)]}
    return out


HOSTILE_IMAGES = [
    ("a huge number", lambda d: node(d["mf"], *ADF, "0002").__setitem__("balance", 10 ** 30), "balance"),
    ("a negative balance", lambda d: node(d["mf"], *ADF, "0002").__setitem__("balance", -1), "balance"),
    ("a float counter", lambda d: node(d["mf"], *ADF, "0002").__setitem__("online_counter", 1.5), "online_counter"),
    ("a boolean as a number", lambda d: d["mf"].__setitem__("space", True), "mf.space"),
    ("a string flag", lambda d: d.__setitem__("card_blocked", "no"), "card_blocked"),
    ("deep DF nesting", lambda d: d["mf"]["children"].append(_nest(3)), "nest at most 3 levels"),
    ("a key with 3 bytes", lambda d: node(d["mf"], "0000")["keys"][0].__setitem__("value", "112233"),
     "not a valid length"),
    ("an SM4 key of 8 bytes", lambda d: node(d["mf"], *ADF, "0000")["keys"][-1].update(
        type="3E", header="F0020104", value="11" * 8), "not a valid length"),
    ("an empty key", lambda d: node(d["mf"], "0000")["keys"][0].__setitem__("value", ""), "not a valid length"),
    ("a PIN of 9 bytes", lambda d: next(k for k in node(d["mf"], *ADF, "0000")["keys"] if k["type"] == "3A")
     .__setitem__("value", "12" * 9), "not a valid length"),
    ("a key type out of range", lambda d: node(d["mf"], "0000")["keys"][0].__setitem__("type", "1FF"), "type"),
    ("an unknown key type", lambda d: node(d["mf"], "0000")["keys"][0].__setitem__("type", "20"), "not a key type"),
    ("a key id FF", lambda d: node(d["mf"], "0000")["keys"][0].__setitem__("id", "FF"), "key id"),
    ("a negative key id", lambda d: node(d["mf"], "0000")["keys"][0].__setitem__("id", "-1"), "key id"),
    ("a duplicate key", lambda d: node(d["mf"], "0000")["keys"].append(node(d["mf"], "0000")["keys"][0]),
     "duplicate key"),
    ("keys as an object", lambda d: node(d["mf"], "0000").__setitem__("keys", {"a": 1}), "keys: expected a list"),
    ("a duplicate FID", lambda d: d["mf"]["children"].append(copy.deepcopy(node(d["mf"], "0005"))),
     "duplicate FID 0005"),
    ("a second key file", lambda d: d["mf"]["children"].append({**copy.deepcopy(node(d["mf"], "0000")),
                                                                 "fid": "0009"}), "second key file"),
    ("a child with FID 3F00", lambda d: node(d["mf"], "0005").__setitem__("fid", "3F00"), "3F00"),
    ("an MF that is not 3F00", lambda d: d["mf"].__setitem__("fid", "1234"), "mf.fid"),
    ("a 17-byte DF name", lambda d: d["mf"].__setitem__("name", "41" * 17), "DF name"),
    ("binary data longer than the file", lambda d: node(d["mf"], "0005").__setitem__("data", "00" * 31),
     "expected 30 byte"),
    ("a record longer than the file's records", lambda d: node(d["mf"], *ADF, "0018")["records"].__setitem__(
        0, "00" * 24), "the records are 23"),
    ("more records than the file holds", lambda d: node(d["mf"], *ADF, "0018").__setitem__(
        "records", ["00" * 23] * 11), "holds 10"),
    ("variable records beyond the file", lambda d: node(d["mf"], "0001").__setitem__(
        "records", ["61" + "3E" + "00" * 62] * 2), "do not fit"),
    ("a record that is not TLV", lambda d: node(d["mf"], "0001")["records"].__setitem__(0, "6105"), "not a TLV"),
    ("a record length of 0", lambda d: node(d["mf"], *ADF, "0018").update(record_length=0, records=[]),
     "impossible record"),
    ("a proof that is not hex", lambda d: node(d["mf"], *ADF, "0002")["proofs"].__setitem__("06:0000", "ZZ"),
     "proofs"),
    ("a proof of 4 bytes", lambda d: node(d["mf"], *ADF, "0002")["proofs"].__setitem__("06:0000", "00" * 4),
     "proofs"),
    ("fci_extra not hex", lambda d: d["mf"].__setitem__("fci_extra", "XY"), "fci_extra"),
    ("an unknown config field", lambda d: d["config"].__setitem__("turbo", True), "unknown config field"),
    ("an ATR of 40 bytes", lambda d: d.__setitem__("atr", "3B" * 40), "atr"),
    ("children as a string", lambda d: d["mf"].__setitem__("children", "none"), "children"),
    ("no MF", lambda d: d.pop("mf"), "mf: expected an object"),
]


@pytest.mark.parametrize("label, mutate, problem", HOSTILE_IMAGES, ids=[h[0] for h in HOSTILE_IMAGES])
def test_hostile_image_is_refused_naming_file_and_field(tmp_path, label, mutate, problem):
    d = issued_dict()
    mutate(d)
    path = tmp_path / "hostile.card"
    path.write_text(json.dumps(d))
    before = digest(path)
    with pytest.raises(ImageError) as exc:
        Card.open(path)
    assert str(exc.value).startswith(f"{path}: ") and problem in str(exc.value), str(exc.value)
    assert digest(path) == before


@pytest.mark.parametrize("label, text, problem", [
    ("deep JSON", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("a 10000-digit number", '{"format": "cardos-card-image", "version": ' + "9" * 10_000 + "}", "not a card image"),
    ("NaN", '{"format": "cardos-card-image", "version": NaN}', "unsupported image version"),
    ("binary garbage", "\x00\x01\x02", "corrupt or truncated"),
    ("wrong version", '{"format": "cardos-card-image", "version": 2}', "unsupported image version 2"),
    ("version as a string", '{"format": "cardos-card-image", "version": "1"}', "unsupported image version"),
])
def test_hostile_image_text_is_refused(tmp_path, label, text, problem):
    path = tmp_path / "hostile.card"
    path.write_text(text)
    with pytest.raises(ImageError) as exc:
        Card.open(path)
    assert str(path) in str(exc.value) and problem in str(exc.value), str(exc.value)


def test_not_utf8_and_unreadable_images(tmp_path):
    path = tmp_path / "latin1.card"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ImageError, match="not a text file"):
        Card.open(path)
    with pytest.raises(ImageError, match="is a directory"):
        Card.open(tmp_path)


def test_every_truncation_is_refused(tmp_path):
    text = issued_text()
    path = tmp_path / "torn.card"
    for cut in range(0, len(text.rstrip()), 97):
        path.write_text(text[:cut])
        with pytest.raises(ImageError):
            Card.open(path)


# -- random hostile mutations of an image --------------------------------------------------------

def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@lru_cache(maxsize=None)
def image_paths() -> list:
    return list(_paths(issued_dict()))


hostile_value = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.integers(-2, 300),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.binary(max_size=40).map(lambda b: b.hex().upper()), st.sampled_from(["", "FF", "3F00", "38", "3A", "04"]),
    st.lists(st.integers(0, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2),
)


def _set(d, path, value):
    if not path:
        return value
    target = d
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return d


def _drop(d, path):
    if path:
        target = d
        for k in path[:-1]:
            target = target[k]
        if isinstance(target, dict):
            target.pop(path[-1], None)
        elif isinstance(target, list) and target:
            target.pop(path[-1])
    return d


def _get(d, path):
    for k in path:
        d = d[k]
    return d


def plausible(draw, old):
    """A value of the same kind as ``old``: hex of another length, a nearby or extreme integer, …"""
    if isinstance(old, bool):
        return not old
    if isinstance(old, int):
        return draw(st.sampled_from([0, 1, 255, 256, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF, old + 1, old - 1])
                    | st.integers(0, max(0, 2 * old + 2)))
    if isinstance(old, str):
        try:
            n = len(bytes.fromhex(old))
        except ValueError:
            return draw(st.text(max_size=8))
        size = draw(st.sampled_from([n, n, n, n, 0, 1, max(0, n - 1), n + 1, 2 * n + 3]))
        return draw(st.binary(min_size=size, max_size=size)).hex().upper()
    if isinstance(old, list) and old:
        return old + [copy.deepcopy(old[draw(st.integers(0, len(old) - 1))])]
    return draw(hostile_value)


@st.composite
def hostile_images(draw):
    d = issued_dict()
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.integers(0, 5))
        paths = [p for p in _paths(d) if how < 3 or not isinstance(_get(d, p), (dict, list))] or [()]
        path = draw(st.sampled_from(paths))
        if how == 0:
            d = _drop(d, path)
        elif how <= 2:
            d = _set(d, path, draw(hostile_value))
        else:
            d = _set(d, path, plausible(draw, _get(d, path)))
    return d


BATTERY = [bytes.fromhex(a) for a in (
    "00A40000023F0000", "00B0850000", "00B2010C00", "00A4040009A0000000038698070100", "00B0950000", "00B0960000",
    "00B201C400", "00B201D400", "805C000204", "805C000104", "0020000003123456", "805C000104",
    "805001020B0100000001000000000000000F", "805000020B01000000010000000000000010", "805A0006020000",
    "0084000004", "0082000008" + "00" * 8, "00A4000002001500", "00A4000002001800", "00B2011C00",
    "80DC01D030" + "01" + "2E" + "00" * 46, "00E200D00C020A" + "00" * 10, "800E000000", "00A40000023F0000",
    "80E00009072800 10F0F0FFFF".replace(" ", ""), "0084000008",
)]


class _Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


@fuzz(150)
@given(d=hostile_images())
def test_a_mutated_image_is_refused_or_works(tmp_path_factory, d):
    path = tmp_path_factory.mktemp("mut") / "card.json"
    try:
        text = json.dumps(d)
    except ValueError:
        return  # not representable as JSON
    path.write_text(text)
    try:
        card = Card.open(path)
    except ImageError as exc:
        event("refused")
        assert str(exc).startswith(f"{path}: ")
        assert path.read_text() == text                                 # refused: left alone
        return
    event("accepted")
    assert path.read_text() == text                                     # opening never writes
    errors = _Errors()
    logging.getLogger("cardos").addHandler(errors)
    try:
        for apdu in BATTERY:
            response = card.transmit(apdu)
            assert len(response) >= 2 and response[-2:] != b"\x6f\x00", apdu.hex()
    finally:
        logging.getLogger("cardos").removeHandler(errors)
    assert not errors.records, errors.records
    card.close()
    Card.open(path).close()                                             # what it saved loads again


# -- bad files through the CLI never touch the image ---------------------------------------------

def cardos(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cardos.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture
def bad_files(tmp_path):
    """A good issued image, and one bad file of each kind."""
    good = tmp_path / "good.card"
    card = Card.blank().save_as(good)
    issue_sample(card.transmit)
    d = issued_dict()
    node(d["mf"], "0000")["keys"][0]["value"] = "1122"
    (tmp_path / "bad.card").write_text(json.dumps(d))
    (tmp_path / "torn.card").write_text(good.read_text()[:500])
    profile = json.loads((P.SHIPPED_DIR / "city.json").read_text())
    profile["applications"][0]["files"][0]["type"] = ["binary"]
    (tmp_path / "bad-profile.json").write_text(json.dumps(profile))
    (tmp_path / "bad-keys.json").write_text(json.dumps({"format": "cardos-keyset", "version": 1,
                                                        "algorithm": ["3DES"], "keys": {}}))
    (tmp_path / "bad.apdu").write_text("00 A4 04 00 {lc} A00000000386980701\n80 D4 " + "(" * 5000 + "\n")
    (tmp_path / "good.apdu").write_text("00 A4 00 00 02 3F00 => 9000\n")
    return tmp_path


@pytest.mark.parametrize("args, code, problem", [
    (("serve", "bad.card", "--vpcd", "127.0.0.1:9"), 2, "bad.card: mf.children[0].keys[0].value"),
    (("serve", "torn.card", "--vpcd", "127.0.0.1:9"), 2, "torn.card: corrupt or truncated image"),
    (("inspect", "bad.card"), 2, "bad.card: mf.children[0].keys[0].value"),
    (("issue", "--add-app", "campus", "--keys", "test", "--card", "bad.card"), 2, "bad.card: mf.children[0]"),
    (("issue", "--profile", "city", "--keys", "test", "--card", "torn.card"), 2, "torn.card: corrupt"),
    (("run", "--card", "bad.card", "bad.apdu"), 2, "bad.apdu:2:"),
    (("run", "--card", "bad.card", "good.apdu"), 2, "bad.card: mf.children[0].keys[0].value"),
    (("inspect", "torn.card"), 2, "torn.card: corrupt or truncated image"),
    (("shell", "--card", "torn.card"), 2, "torn.card: corrupt"),
    (("conformance", "--card", "bad.card", "-k", "select"), 2, "bad.card"),
])
def test_cli_refuses_a_bad_image_and_leaves_it_alone(bad_files, args, code, problem):
    before = {name: digest(bad_files / name) for name in ("bad.card", "torn.card")}
    result = cardos(*args, cwd=bad_files)
    assert result.returncode == code, result.stderr
    assert problem in result.stderr + result.stdout, result.stderr + result.stdout
    assert {name: digest(bad_files / name) for name in before} == before


@pytest.mark.parametrize("args, problem", [
    (("issue", "--profile", "bad-profile.json", "--keys", "test", "--card", "good.card"),
     "bad-profile.json: applications.city.files.0015.type"),
    (("issue", "--profile", "city", "--keys", "bad-keys.json", "--card", "good.card"), "bad-keys.json: algorithm"),
    (("issue", "--add-app", "campus", "--keys", "bad-keys.json", "--card", "good.card"), "bad-keys.json"),
    (("run", "--card", "good.card", "bad.apdu"), "bad.apdu:2:"),
    (("run", "--card", "good.card", "--keys", "bad-keys.json", "bad.apdu"), "bad-keys.json"),
    (("profiles", "bad-profile.json"), "bad-profile.json"),
    (("keys", "show", "bad-keys.json"), "bad-keys.json: algorithm"),
])
def test_a_bad_profile_key_set_or_script_leaves_the_image_alone(bad_files, args, problem):
    before = digest(bad_files / "good.card")
    result = cardos(*args, cwd=bad_files)
    assert result.returncode == 2, result.stderr
    assert problem in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert digest(bad_files / "good.card") == before


# -- profiles, key sets and scripts --------------------------------------------------------------

def _profile(**changes) -> dict:
    d = json.loads((P.SHIPPED_DIR / "city.json").read_text())
    for dotted, value in changes.items():
        target = d
        keys = dotted.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        target[keys[-1]] = value
    return d


@pytest.mark.parametrize("profile, field", [
    (_profile(parameters=[1, 2]), "parameters"),
    (_profile(applications__0__files__0__type={"a": 1}), "applications.city.files.0015.type"),
    (_profile(applications__0__label="L" * 40), "label"),
    (_profile(applications__0__label="中文"), "label"),
    (_profile(lockdown="all"), "lockdown"),
    (_profile(applications__0__files__0__content="ZZ"), "content"),
    (_profile(applications=[{"from": "F" * 5000}]), "applications[0].from"),
    (_profile(applications=[{"from": "nul\x00name"}]), "applications[0].from"),
    (_profile(applications__0__keys__0__id=10 ** 40), "id"),
])
def test_hostile_profiles_are_refused(tmp_path, profile, field):
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(profile))
    with pytest.raises(P.ProfileError) as exc:
        P.load(str(path))
    assert str(exc.value).startswith(f"{path}: ") and field in str(exc.value), str(exc.value)


@pytest.mark.parametrize("text, problem", [
    ("[" * 100_000, "nested too deeply"),
    ('{"format": "cardos-profile", "version": ' + "9" * 10_000 + "}", "not a profile"),
    ("\x00", "not valid JSON"),
])
def test_hostile_profile_text(tmp_path, text, problem):
    path = tmp_path / "hostile.json"
    path.write_text(text)
    with pytest.raises(P.ProfileError, match=problem):
        P.load(str(path))


def _mutated(draw, base):
    d = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(d))))
        d = _drop(d, path) if draw(st.integers(0, 4)) == 0 else _set(d, path, draw(hostile_value))
    return d


@lru_cache(maxsize=None)
def shipped_profiles() -> dict:
    return {name: json.loads((P.SHIPPED_DIR / f"{name}.json").read_text()) for name in P.shipped()}


@fuzz(150)
@given(data=st.data())
def test_a_mutated_profile_is_refused_or_issues(data):
    name = data.draw(st.sampled_from(sorted(shipped_profiles())))
    d = _mutated(data.draw, shipped_profiles()[name])
    try:
        profile = P.from_dict(d, f"{name}.json")
    except P.ProfileError as exc:
        assert str(exc).startswith(f"{name}.json")
        return
    if profile.kind != "card":
        return
    card = Card.blank()
    try:
        issue(card, profile, K.load("test"), {}, today=date(2026, 5, 1))
    except (IssueError, P.ProfileError, K.KeySetError):
        pass


@pytest.mark.parametrize("content, field", [
    ({"format": "cardos-keyset", "version": 1, "algorithm": ["3DES"], "keys": {}}, "algorithm"),
    ({"format": "cardos-keyset", "version": 1, "algorithm": {"x": 1}, "keys": {}}, "algorithm"),
    ({"format": "cardos-keyset", "version": 1, "algorithm": "3DES", "keys": {"load": {"1": "11" * 8}}},
     "keys.load.1"),
    ({"format": "cardos-keyset", "version": 1, "algorithm": "3DES", "keys": {"load": {"99": "11" * 16}}},
     "keys.load.99"),
    ({"format": "cardos-keyset", "version": 1, "algorithm": "3DES", "keys": {"LOAD": {"1": "11" * 16}}},
     "keys.LOAD"),
    ({"format": "cardos-keyset", "version": 1, "algorithm": "3DES", "keys": [1]}, "keys"),
    ({"format": "cardos-keyset", "version": 10 ** 30, "keys": {}}, "version"),
])
def test_hostile_key_sets_are_refused(tmp_path, content, field):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(content))
    os.chmod(path, 0o600)
    with pytest.raises(K.KeySetError) as exc:
        K.load(path)
    assert str(exc.value).startswith(f"{path}: {field}"), str(exc.value)


@pytest.mark.parametrize("text, problem", [
    ("[" * 100_000, "nested too deeply"), ('{"version": ' + "1" * 10_000 + "}", "not a key set"), ("", "not valid JSON"),
])
def test_hostile_key_set_text(tmp_path, text, problem):
    path = tmp_path / "keys.json"
    path.write_text(text)
    with pytest.raises(K.KeySetError, match=problem):
        K.load(path)


@fuzz(200)
@given(data=st.data())
def test_a_mutated_key_set_is_refused_or_loads(data):
    d = _mutated(data.draw, json.loads((K.SHIPPED_DIR / "test.json").read_text()))
    try:
        K.KeySet.from_dict(d, "ks.json")
    except K.KeySetError as exc:
        assert str(exc).startswith("ks.json")


@pytest.mark.parametrize("text, problem", [
    ("00 A4 " + "(" * 5000, "hostile.apdu:1:1: error: nested too deeply"),
    ("set x = " + "f(" * 3000 + "1" + ")" * 3000, "hostile.apdu:1:1: error: nested too deeply"),
    ("00 A4 04 00 {lc} " + "A0" * 70_000, "hostile.apdu:1:13: error: 70000 bytes of data do not fit an APDU"),
    ("include hostile.apdu", "hostile.apdu:1:1: error: include cycle"),
    ("\x00\x01\x02", "hostile.apdu:1:1: error: unexpected character"),
    ("keys /nonexistent/key/set.json\n00 A4 04 00", "hostile.apdu:1:6: error: keys /nonexistent/key/set.json"),
    (b"\xff\xfe\x00", "hostile.apdu: not a text file"),
])
def test_hostile_scripts_are_refused_before_anything_is_sent(tmp_path, text, problem):
    Card.blank().save_as(tmp_path / "card.json").close()
    before = digest(tmp_path / "card.json")
    path = tmp_path / "hostile.apdu"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = cardos("run", "--card", "card.json", "hostile.apdu", cwd=tmp_path)
    assert result.returncode == 2 and problem in result.stderr + result.stdout, result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert digest(tmp_path / "card.json") == before


def _script_corpus() -> list[str]:
    return [line for p in sorted((ROOT / "apdu_scripts").rglob("*.apdu"))
            for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


@fuzz(300)
@given(data=st.data())
def test_mutated_script_lines_are_refused_or_parse(data):
    lines = data.draw(st.lists(st.sampled_from(_script_corpus()), min_size=1, max_size=4))
    text = "\n".join(lines)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + data.draw(st.text(alphabet="0123456789ABCDEF ()[]{}$@=>-<|,.:'\"\\#*/;x\n",
                                              max_size=6)) + text[at + data.draw(st.integers(0, 3)):]
    try:
        check(parse_text(text, "fuzz.apdu"))
    except ScriptError as exc:
        assert exc.pos is None or exc.pos.file == "fuzz.apdu"
