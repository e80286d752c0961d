"""Every script in apdu_scripts/ passes: in-process on a fresh emulated card, and through a real
pcscd (vpcd driver) on a card served into a vpcd slot. Also: the sample personalization script
makes the same card as cardos.sample, and the profile scripts are current."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cardos import Card, image
from cardos.cli import main
from cardos.sample import issue_sample

try:  # the real-PC/SC fixtures (pcscd + vpcd slots) live in tests/pcsc_fixtures.py
    from .pcsc_fixtures import FIRST_PORT, reader_name
except ImportError:  # pragma: no cover - a tree without them
    FIRST_PORT = None

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "apdu_scripts"
# scripts that continue a card another script made (run in this order on one card)
PRECONDITIONS = {"personalize/campus.apdu": ["personalize/multi.apdu"]}
NOW = "2026-03-01T09:30:00"


def script_names() -> list:
    return sorted(str(p.relative_to(SCRIPTS)) for p in SCRIPTS.rglob("*.apdu"))


def command(name: str) -> list:
    return [str(SCRIPTS / n) for n in PRECONDITIONS.get(name, [])] + [str(SCRIPTS / name)]


def test_the_library_has_what_the_issue_asks_for():
    names = set(script_names())
    for wanted in ("sample/personalize.apdu", "personalize/city.apdu", "personalize/interconnect.apdu",
                   "personalize/multi.apdu", "personalize/campus.apdu", "purse/load.apdu",
                   "purse/purchase.apdu", "purse/capp_purchase.apdu", "pin.apdu", "line_protection.apdu",
                   "negative.apdu", "scriptor/blank_card.apdu"):
        assert wanted in names
    negative = (SCRIPTS / "negative.apdu").read_text(encoding="utf-8")
    for sw in ("9302", "9401", "6901", "6982", "9403", "9406", "6988", "6A82", "6D00", "6E00", "6700"):
        assert f"=> {sw}" in negative, sw


@pytest.mark.parametrize("name", script_names())
def test_script_passes_in_process(name, tmp_path, capsys):
    junit = tmp_path / "report.xml"
    code = main(["run", *command(name), "--now", NOW, "--no-color", "--junit-xml", str(junit)])
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:] + out.err
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and root.get("errors") == "0"
    assert int(root.get("tests")) > 0


def test_all_standalone_scripts_in_one_run_with_fresh_cards(capsys):
    """What apdu_scripts/README.md suggests: each script on its own fresh card, one run."""
    names = [n for n in script_names() if n not in PRECONDITIONS]
    code = main(["run", "--fresh", "-q", *(str(SCRIPTS / n) for n in names)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{len(names)} script(s): {len(names)} passed" in out


def serve_blank(request) -> str:
    """A blank card in a vpcd slot of a real pcscd; returns its reader name. Tries the second slot
    first (the first is the one other suites use), then the first."""
    from cardos.transports.diagnose import VpcdError

    if FIRST_PORT is None:
        pytest.skip("no PC/SC fixtures (tests/pcsc_fixtures.py) in this tree")
    vpcd = request.getfixturevalue("vpcd")

    error = None
    for port in (FIRST_PORT + 1, FIRST_PORT):
        try:
            vpcd.serve(Card.blank(), port=port)
            return reader_name(port)
        except VpcdError as exc:  # the slot is busy
            error = exc
    raise error


@pytest.mark.parametrize("name", script_names())
def test_script_passes_through_pcscd(name, request, tmp_path, capsys):
    reader = serve_blank(request)
    events_path = tmp_path / "events.jsonl"
    code = main(["run", *command(name), "--reader", reader, "--now", NOW, "-q", "--json", str(events_path)])
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:] + out.err
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    assert events[0]["event"] == "run" and events[0]["backend"] == "card" and events[0]["card"] == reader
    assert any(e["event"] == "exchange" for e in events)
    assert events[-1]["event"] == "summary" and events[-1]["exit"] == 0


def test_real_scriptor_runs_the_plain_scriptor_script(request):
    """The scriptor/ example is plain pcsc-tools syntax: pcsc-tools' own scriptor runs it too."""
    if shutil.which("scriptor") is None:
        pytest.skip("pcsc-tools scriptor is not installed")
    reader = serve_blank(request)
    proc = subprocess.run(["scriptor", "-r", reader, str(SCRIPTS / "scriptor" / "blank_card.apdu")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "61 17" in proc.stdout  # the SELECT
    assert "6F 15 84 0E" in proc.stdout and "90 00" in proc.stdout  # the GET RESPONSE sent by hand
    assert "6A 82" in proc.stdout  # READ RECORD of the missing DIR
    assert "3F 01" not in proc.stdout  # nothing after exit


def test_sample_script_makes_the_sample_card(tmp_path):
    scripted = tmp_path / "scripted.img"
    Card.blank().save_as(scripted)
    assert main(["run", str(SCRIPTS / "sample" / "personalize.apdu"), "--card", str(scripted), "-q"]) == 0
    reference = Card.blank()
    issue_sample(reference.transmit)
    assert json.loads(scripted.read_text()) == json.loads(image.dumps(reference))


def test_profile_scripts_are_current():
    spec = importlib.util.spec_from_file_location("regenerate", SCRIPTS / "personalize" / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered = module.render()
    assert rendered, "no shipped profiles?"
    for file_name, text in rendered.items():
        path = SCRIPTS / "personalize" / file_name
        assert path.read_text(encoding="utf-8") == text, \
            f"{path} is out of date: run .venv/bin/python apdu_scripts/personalize/regenerate.py"


def test_profile_script_makes_the_card_cardos_issue_makes(tmp_path):
    """Running personalize/city.apdu gives the card `cardos issue` gives with the same parameters."""
    from datetime import date

    from cardos import keyset, personalize

    scripted = tmp_path / "scripted.img"
    Card.blank().save_as(scripted)
    assert main(["run", str(SCRIPTS / "personalize" / "city.apdu"), "--card", str(scripted), "-q"]) == 0
    issued = Card.blank()
    personalize.issue(issued, "city", keyset.load("test"), {"serial": 1}, today=date(2026, 1, 1))
    assert json.loads(scripted.read_text()) == json.loads(image.dumps(issued))
