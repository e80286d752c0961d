"""Transport level: class and instruction dispatch, response length handling (Le, 61XX, 6CXX),
GET RESPONSE, reset. Non-destructive: runs on any card."""
import pytest

from cardos.conformance.apdus import SELECT_MF, tlv_find

pytestmark = pytest.mark.family("transport")


@pytest.mark.command("any command")
def test_unknown_class_is_refused(card):
    """Reference §3.13: 6E00 for a class the card does not support (GSM class A0)."""
    card.expect("A0A40000023F00", "6E00", why="class A0")


@pytest.mark.command("any command")
def test_unknown_instruction_is_refused(card):
    """Reference §3.13: 6D00 for an unknown instruction (00 02 is not assigned)."""
    card.expect("0002000000", "6D00")


@pytest.mark.command("any command")
def test_instruction_in_the_wrong_class_is_refused(card):
    """SELECT sent in the proprietary class: refused (6E00 or 6D00)."""
    card.expect("80A40000023F00", "6E00", "6D00", why="SELECT with CLA 80")


@pytest.mark.command("reset")
def test_reset_answers_an_atr(card):
    atr = card.power_cycle()
    card.check(len(atr) >= 2 and atr[0] in (0x3B, 0x3F), "reset", f"ATR {atr.hex().upper()} does not start with 3B/3F")
    card.ok(SELECT_MF, "the MF is selectable after reset")


@pytest.mark.command("GET RESPONSE")
def test_response_without_le_is_available(card):
    """A command sent without Le answers its data at once, or ``61XX`` and the data through
    GET RESPONSE (T=0 style, reference §1.6); in pieces if asked in pieces."""
    full = card.send(SELECT_MF).data
    r = card.raw("00A40000023F00")
    if r.sw == 0x9000:
        card.check(r.data == full, "SELECT", "the FCI differs between Le 00 and no Le")
        return
    card.check(r.sw >> 8 == 0x61 and not r.data, "SELECT", f"no Le: answered {r.sw:04X}, expected 9000 or 61XX")
    card.check(r.sw & 0xFF == len(full), "SELECT", f"61{r.sw & 0xFF:02X} but the FCI has {len(full)} bytes")
    first = card.raw("00C0000004")
    card.check(first.data == full[:4], "GET RESPONSE", "the first 4 bytes are not the FCI's")
    rest = len(full) - 4
    card.check(first.sw == 0x6100 | rest, "GET RESPONSE", f"after 4 bytes answered {first.sw:04X}, expected 61{rest:02X}")
    last = card.raw(bytes((0x00, 0xC0, 0x00, 0x00, rest)))
    card.check(last.sw == 0x9000 and last.data == full[4:], "GET RESPONSE", "the rest of the FCI did not follow")


@pytest.mark.command("GET RESPONSE")
def test_get_response_with_nothing_pending_is_refused(card):
    card.ok(SELECT_MF)
    card.refused("00C0000008", "nothing is waiting")


@pytest.mark.command("SELECT")
def test_wrong_le_gets_the_right_length(card):
    """Le different from the data: ``6CXX`` naming the length (reference §3.13), or the whole data."""
    full = card.send(SELECT_MF).data
    r = card.raw("00A40000023F0002")
    if r.sw >> 8 == 0x6C:
        card.check(r.sw & 0xFF == len(full), "SELECT", f"6C{r.sw & 0xFF:02X} but the FCI has {len(full)} bytes")
    else:
        card.check(r.sw in (0x9000,) or r.sw >> 8 == 0x61, "SELECT", f"Le 02 answered {r.sw:04X}")


@pytest.mark.command("SELECT")
def test_fci_is_well_formed(card):
    fci = card.send(SELECT_MF).data
    card.check(fci[:1] == b"\x6f" and fci[1] == len(fci) - 2, "SELECT", f"FCI {fci.hex().upper()} is not one 6F template")
    name = tlv_find(fci, 0x84)
    card.check(name is not None and 1 <= len(name) <= 16, "SELECT", "the FCI has no DF name (84)")
    card.check(tlv_find(fci, 0xA5) is not None, "SELECT", "the FCI has no proprietary template (A5)")
