"""Card images: atomic saves, survival across processes, refusal of bad images, tearing."""
import json
import stat
import subprocess
import sys
import textwrap

import pytest

from cardos import Card, ImageError
from cardos.cli import main
from cardos.sample import issue_sample

from .conftest import Terminal, hx

SELECT_ADF = "00A4040009A0000000038698070100"


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "card.json"
    Card.blank().save_as(path)
    return path


def test_cardos_new_writes_a_private_blank_image(tmp_path, capsys):
    path = tmp_path / "blank.card"
    assert main(["new", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["format"] == "cardos-card-image" and data["version"] == 1
    card = Card.open(path)
    assert card.transmit(hx("00A40000023F0000"))[-2:] == hx("9000")
    assert main(["new", str(path)]) == 2                                  # never overwrites
    assert "already exists" in capsys.readouterr().err


def test_every_state_change_is_saved(image):
    card = Card.open(image)
    before = image.read_text()
    card.transmit(hx("00A40000023F00"))                                   # read-only: no write
    assert image.read_text() == before
    issue_sample(card.transmit)
    card.close()                                                          # the process stops
    reopened = Terminal(Card.open(image))
    assert reopened.ok(SELECT_ADF)[4:13] == hx("A00000000386980701")
    assert reopened.ok("00B0950008") == hx("0000310000000000")
    assert not list(image.parent.glob(".*.tmp"))                          # no temporary file left


def test_personalized_card_survives_in_a_new_process(image):
    issue_sample(Card.open(image).transmit)
    script = textwrap.dedent(f"""
        from cardos import Card
        card = Card.open({str(image)!r})
        card.power_on()
        for apdu in ("{SELECT_ADF}", "00B095001E", "0020000003123456", "00B201C400"):
            print(card.transmit(bytes.fromhex(apdu)).hex().upper())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out[0].startswith("6F2E8409A00000000386980701") and out[0].endswith("9000")
    assert out[1].endswith("9000") and len(out[1]) == 64
    assert out[2:] == ["9000", "6A83"]


def test_security_state_is_not_persisted_but_counters_are(image):
    card = Card.open(image)
    issue_sample(card.transmit)
    t = Terminal(card)
    t.ok(SELECT_ADF)
    t.ok("0020000003 123456")
    assert t.sw("0020000003 000000") == 0x63C2
    card.close()                                                          # power off: the process ends
    t2 = Terminal(Card.open(image))
    t2.ok(SELECT_ADF)
    assert t2.sw("00B201C400") == 0x6982                                  # PIN state died with power
    assert t2.sw("0020000003 000000") == 0x63C1                           # the counter did not


@pytest.mark.parametrize("content, problem", [
    ("", "empty file"),
    ("{\"format\": \"cardos-card-image\", \"version\": 1, ", "corrupt or truncated"),
    ("[1, 2]", "expected a JSON object"),
    ("{\"format\": \"other\", \"version\": 1}", "not a cardos card image"),
    ("{\"format\": \"cardos-card-image\", \"version\": 99}", "unsupported image version 99"),
])
def test_bad_images_are_refused_and_left_alone(tmp_path, content, problem):
    path = tmp_path / "bad.card"
    path.write_text(content)
    with pytest.raises(ImageError) as exc:
        Card.open(path)
    assert str(path) in str(exc.value) and problem in str(exc.value)
    assert path.read_text() == content


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d["mf"]["children"][0].__setitem__("size", "big"), "mf.children[0].size"),
    (lambda d: d["mf"].__setitem__("name", "ZZ"), "mf.name: not valid hex"),
    (lambda d: d["mf"]["children"][0]["keys"][0].__setitem__("header", "00"), "mf.children[0].keys[0]"),
    (lambda d: d["config"].__setitem__("record_counter", "sideways"), "config: record_counter"),
    (lambda d: d["config"].__setitem__("eeprom", 5), "unknown config field"),
    (lambda d: d.__setitem__("atr", "3B"), "atr"),
    (lambda d: d["mf"].__setitem__("type", "28"), "mf"),
])
def test_malformed_trees_name_the_field(image, mutate, problem):
    data = json.loads(image.read_text())
    mutate(data)
    image.write_text(json.dumps(data))
    with pytest.raises(ImageError) as exc:
        Card.open(image)
    assert problem in str(exc.value)


def test_missing_image(tmp_path):
    with pytest.raises(ImageError, match="no such card image"):
        Card.open(tmp_path / "nope.card")


def test_durable_mode_works(image):
    card = Card.open(image, durable=True)
    issue_sample(card.transmit)
    card.close()
    assert Terminal(Card.open(image)).ok(SELECT_ADF)


def test_internal_error_leaves_the_image_untouched(image, monkeypatch):
    from cardos.commands import DISPATCH

    def broken(card, cmd):
        card.write(card.mf, "erase_right", 0x00)
        raise ValueError("bug")

    card = Card.open(image)
    before = image.read_text()
    monkeypatch.setitem(DISPATCH, (0x80, 0x0E), broken)
    assert card.transmit(hx("800E000000")) == hx("6F00")
    assert image.read_text() == before


# -- tearing: a cut at any write point leaves the state before or after -------------

STEPS = [
    ("create EF", "80E0000507 28 0010 F0 F0 FF FF", "00A40000020005"),
    ("create DF", "80E0100111 38 0400 F0 F0 95 FFFF A00000000386980701", "00A4000002100100"),
    ("write key", "80D4010115 39 F0 F0 AA 33 00112233445566778899AABBCCDDEEFF", None),
    ("erase", "800E000000", "00A40000020000"),
]


def _fresh(path):
    if path.exists():
        path.unlink()
    card = Card.blank().save_as(path)
    t = Terminal(card)
    from .conftest import transport_auth
    transport_auth(t)
    return card, t


@pytest.mark.parametrize("label, apdu, probe", STEPS)
def test_power_cut_at_every_write_point(tmp_path, label, apdu, probe):
    path = tmp_path / "torn.card"
    card, t = _fresh(path)
    t.ok(apdu)
    points = card.last_write_points
    after = path.read_text()
    assert points >= 3  # at least one write, the commit and the response
    for point in range(1, points + 1):
        card.close()
        card, t = _fresh(path)
        before = path.read_text()
        card.arm_power_cut(point)
        assert card.transmit(hx(apdu)) == b""                          # mute: power lost
        assert not card.powered
        on_disk = path.read_text()
        assert on_disk in (before, after), f"{label}: mixture after a cut at write {point}"
        card.close()
        reopened = Card.open(path)
        state = reopened.transmit(hx("00A40000023F0000"))
        assert state[-2:] == hx("9000")
        # Only the last point falls after the commit: then the command took effect.
        assert (on_disk == after) == (point == points)
        card = reopened


def test_power_cut_on_an_in_memory_card_rolls_back():
    card = Card.blank()
    t = Terminal(card)
    from .conftest import transport_auth
    transport_auth(t)
    card.arm_power_cut(1)
    assert card.transmit(hx("800E000000")) == b""
    card.power_on()
    # Not erased: the MF still holds its key file, so its create right (AA) applies.
    assert Terminal(card).sw("80E0000507 28 0010 F0 F0 FF FF") == 0x6982
