"""Card creation end to end: each shipped profile issues a card through APDUs; the card is
then judged only by its answers — files, contents, keys — and by purse transactions made with
``cardos.terminal`` and the same key set."""
from __future__ import annotations

import time
from datetime import date, datetime

import pytest

from cardos import Card
from cardos.apdu import build
from cardos.crypto import DES
from cardos.keyset import KeySet, load
from cardos.personalize import IssueError, add_application, dir_record, issue
from cardos.terminal import purse as T
from cardos.terminal.host import LoadHost
from cardos.terminal.psam import PSAM
from cardos.terminal.secure import external_auth_cryptogram, protected_apdu
from cardos.terminal.settle import settle

from .conftest import Terminal, hx

KEYS = load("test")
TODAY = date(2026, 5, 1)
WHEN = datetime(2026, 5, 1, 8, 30, 0)
TERMINAL = hx("112233445566")
CITY_AID = "A00000000386980701"
TU_AID = "A000000632010105"
CAMPUS_AID = "F0434152444F5343414D505553"
MF_FCI = "6F15840E315041592E5359532E4444463031A503880101"


def make(profile: str, serial: int = 1, keyset: KeySet = KEYS, **params):
    card = Card.blank()
    card.power_on()
    plan = issue(card, profile, keyset, {"serial": serial, **params}, today=TODAY)
    card.power_on()  # a new session: the issuance's free access is over
    return card, plan, Terminal(card)


def select(t: Terminal, aid: str) -> bytes:
    return t.ok(build(0x00, 0xA4, 0x04, 0x00, hx(aid), 0))


def fci_9f0c(fci: bytes) -> bytes:
    at = fci.find(b"\x9f\x0c")
    return fci[at + 3:at + 3 + fci[at + 2]]


def external_auth(t: Terminal, key: bytes, kid: int = 0) -> int:
    challenge = t.challenge()
    return t.sw(build(0x00, 0x82, 0x00, kid, external_auth_cryptogram(key, challenge)))


def protected(t: Terminal, cla, ins, p1, p2, data, key, encrypt=False) -> int:
    challenge = t.challenge()
    return t.sw(protected_apdu(cla, ins, p1, p2, data, key, challenge, encrypt))


def bcd(text: str) -> bytes:
    return bytes.fromhex(text)


# -- city ---------------------------------------------------------------------------------------

def city_0015(serial: str, flag: str = "0000") -> bytes:
    return bcd("0000" "3100" "0000" "0000" "01" "01" + flag + serial + "20260501" "20360501" "01" "00")


def test_city_files_and_contents_read_back():
    card, plan, t = make("city", 42, holder_name="张三", holder_id="110101199001011234"[:16])
    serial = "3100000000000042"
    assert t.ok("00A40000023F0000") == hx(MF_FCI)
    assert t.ok("00B2010C00") == dir_record(hx(CITY_AID), "PBOC")
    assert t.sw("00B2020C00") == 0x6A83
    assert t.ok("00B0850000") == bcd("0000" "3100" "0000" "0000" + serial + "0100" "20260501" "000000000001" "0001")
    fci = select(t, CITY_AID)
    assert fci[:13] == hx("6F2E8409A00000000386980701") and fci_9f0c(fci) == city_0015(serial)
    assert t.ok("00B0950000") == city_0015(serial)
    holder = t.ok("00B0960000")
    assert holder == b"\x00\x00" + "张三".encode("gbk").ljust(20, b"\x00") + b"1101011990010112" + b"\x00"
    assert t.sw("00B201C400") == 0x6A83  # empty transaction log
    assert t.ok("00B201D400") == bytes((0x01, 46)) + bytes(46)  # composite record, tag 01
    assert t.ok("805C000204") == bytes(4)  # EP
    assert t.sw("805C000104") == 0x6982  # ED: PIN first
    t.ok("0020000003123456")
    assert t.ok("805C000104") == bytes(4)
    assert plan.values["app_serial"] == serial and plan.serials["city"] == hx(serial)


def test_city_keys_behave():
    card, plan, t = make("city", 7)
    serial = hx("3100000000000007")
    select(t, CITY_AID)
    # external authentication: the diversified app master, not the issuer master
    assert external_auth(t, KEYS.card_key("app_master", 1, serial)) == 0x9000
    assert external_auth(t, KEYS.master("app_master", 1)) == 0x63C2
    assert external_auth(t, plan.card_key("city", "master")) == 0x9000  # counter restored
    # PIN
    assert t.sw("0020000003654321") == 0x63C2
    assert t.sw("0020000003123456") == 0x9000
    # line protection on 0015 with the diversified DAMK
    line = KEYS.card_key("app_line", 1, serial)
    assert t.sw(build(0x00, 0xD6, 0x95, 0x1C, hx("0200"))) == 0x6987
    assert protected(t, 0x04, 0xD6, 0x95, 0x1C, hx("0200"), KEYS.master("app_line", 1)) == 0x6988
    assert protected(t, 0x04, 0xD6, 0x95, 0x1C, hx("0200"), line) == 0x9000
    assert t.ok("00B0951C02") == hx("0200")
    # internal authentication with the type-30 key
    data = hx("0102030405060708")
    assert t.ok(build(0x00, 0x88, 0x00, 0x00, data, 0)) == DES.encrypt(KEYS.card_key("internal", 1, serial), data)
    # RELOAD PIN with the DRPK (halves XORed): the PIN-reload key is the diversified one
    drpk = KEYS.card_key("pin_reload", 1, serial)
    new_pin = hx("888888")
    t.ok(build(0x80, 0x5E, 0x00, 0x00, new_pin + DES.mac(DES.tac_key(drpk), new_pin)))
    assert t.sw("0020000003888888") == 0x9000
    # PIN UNBLOCK with the DPUK
    dpuk = KEYS.card_key("pin_unblock", 1, serial)
    assert protected(t, 0x84, 0x24, 0x00, 0x01, hx("123456"), dpuk, encrypt=True) == 0x9000
    assert t.sw("0020000003123456") == 0x9000


def test_city_rights_are_enforced_after_issuance():
    card, plan, t = make("city", 8)
    mf_serial = hx("3100000000000008")
    new_adf = build(0x80, 0xE0, 0x10, 0x09, hx("380100AAAA95FFFF") + hx("A0000000038698070A"))
    t.ok("00A40000023F0000")
    assert t.sw("800E000000") == 0x6982  # erase
    assert t.sw(new_adf) == 0x6982  # create
    assert t.sw(build(0x80, 0xD4, 0x01, 0x05, hx("39F0AAAA33") + bytes(16))) == 0x6982  # add a key
    # the extension key 39/01 gives the create right (F1) but not the erase right (AA)
    assert external_auth(t, KEYS.card_key("add_app", 1, mf_serial), 1) == 0x9000
    assert t.sw("800E000000") == 0x6982
    assert t.sw(new_adf) == 0x9000
    # the card master gives both
    assert external_auth(t, plan.card_key("mf", "master")) == 0x9000
    assert t.sw(build(0x80, 0xE0, 0x10, 0x0A, hx("380100AAAA95FFFF") + hx("A0000000038698070B"))) == 0x9000
    # application: ERASE DF and key changes need its master
    select(t, CITY_AID)
    assert t.sw("800E000000") == 0x6982
    assert t.sw(build(0x80, 0xE0, 0x00, 0x30, hx("28000AF0F0FFFF"))) == 0x6982


def test_city_secure_key_update_and_lockdown():
    card, plan, t = make("city", 9)
    serial = hx("3100000000000009")
    master = plan.card_key("city", "master")
    select(t, CITY_AID)
    new_line = bytes(range(16))
    record = hx("F6F0AAFF33") + new_line
    assert t.sw(build(0x80, 0xD4, 0x36, 0x00, record)) == 0x6987  # secure-update key: CLA 84 only
    assert protected(t, 0x84, 0xD4, 0x36, 0x00, record, master, encrypt=True) == 0x6982  # change right AA
    assert external_auth(t, master) == 0x9000
    assert protected(t, 0x84, 0xD4, 0x36, 0x00, record, master, encrypt=True) == 0x9000
    assert protected(t, 0x04, 0xD6, 0x95, 0x1C, hx("0300"), new_line) == 0x9000
    assert protected(t, 0x04, 0xD6, 0x95, 0x1C, hx("0300"), KEYS.card_key("app_line", 1, serial)) == 0x6988
    # lock-down: the transaction keys can no longer be changed, even by the master
    assert external_auth(t, master) == 0x9000
    purchase = hx("FEF0EF0100") + KEYS.card_key("purchase", 1, serial)
    assert protected(t, 0x84, 0xD4, 0x3E, 0x01, purchase, master, encrypt=True) == 0x6982


def test_city_purse_transactions_with_the_same_key_set():
    card, plan, t = make("city", 10)
    host, psam = LoadHost(KEYS), PSAM(KEYS, TERMINAL)
    serial = T.select_application(card, hx(CITY_AID))
    assert serial == hx("3100000000000010")
    records = [T.load(card, host, 10000, terminal=TERMINAL, when=WHEN)]
    records.append(T.purchase(card, psam, 350, when=WHEN))
    update = T.CappUpdate(sfi=0x1A, p1=0x01, record=bytes((0x01, 46)) + hx("01") + b"IN  STATION 0042".ljust(45, b"\x00"))
    records.append(T.capp_purchase(card, psam, 200, [update], when=WHEN))
    assert T.get_balance(card) == 10000 - 350 - 200
    assert t.ok("00B201D400") == update.record
    # ED with PIN, second load / purchase key index
    T.verify_pin(card, hx("123456"))
    records.append(T.load(card, host, 500, terminal=TERMINAL, purse=T.ED, key_index=2, when=WHEN))
    records.append(T.purchase(card, psam, 100, purse=T.ED, key_index=2, when=WHEN))
    assert T.get_balance(card, T.ED) == 400
    report = settle(records, KEYS)
    assert report.ok and len(report.accepted) == 5


# -- interconnect -----------------------------------------------------------------------------------

def test_interconnect_files_and_contents_read_back():
    card, plan, t = make("interconnect", 5)
    card_number = "0310" "3100000000000005"
    tu_0015 = bcd("03100000FFFFFFFF" "02" "01" + card_number + "20260501" "20360501" "00" "00")
    assert t.ok("00B2010C00") == dir_record(hx(TU_AID), "MOT_T_EP")
    fci = select(t, TU_AID)
    assert fci[:12] == hx("6F2D8408A000000632010105") and fci_9f0c(fci) == tu_0015
    assert t.ok("00B0950000") == tu_0015
    assert len(t.ok("00B0960000")) == 55
    assert t.ok("00B0970000") == bcd("00000156" "3100" "3100" "0001" "00") + bytes(49)
    composite = t.ok("00B202D000")
    assert composite[:2] == hx("027E") and len(composite) == 128 and composite[124:] == hx("72FF8F17")
    assert t.sw("00B201F400") == 0x6A83  # 001E transit log empty
    assert t.sw("805C000104") == 0x6A82  # no ED on interconnect cards
    assert external_auth(t, KEYS.card_key("app_master", 1, hx("3100000000000005"))) == 0x9000


def test_interconnect_purse_transactions():
    card, plan, t = make("interconnect", 6)
    host, psam = LoadHost(KEYS), PSAM(KEYS, TERMINAL)
    assert T.select_application(card, hx(TU_AID)) == hx("3100000000000006")
    records = [T.load(card, host, 2000, terminal=TERMINAL, when=WHEN), T.purchase(card, psam, 150, when=WHEN)]
    transit = bytearray(t.ok("00B202D000"))
    transit[2:6] = hx("00010203")
    log = hx("09") + TERMINAL + hx("0000") + bytes(39)
    records.append(T.capp_purchase(card, psam, 300, [T.CappUpdate(0x1A, 0x02, bytes(transit)),
                                                     T.CappUpdate(0x1E, 0x00, log)], when=WHEN))
    assert T.get_balance(card) == 2000 - 150 - 300
    assert t.ok("00B202D000") == bytes(transit) and t.ok("00B201F400") == log
    assert settle(records, KEYS).ok


# -- multi and extension applications ---------------------------------------------------------------

def _use_application(card, aid: str, amount: int = 1000) -> None:
    host, psam = LoadHost(KEYS), PSAM(KEYS, TERMINAL)
    T.select_application(card, hx(aid))
    before = T.get_balance(card)
    records = [T.load(card, host, amount, terminal=TERMINAL, when=WHEN), T.purchase(card, psam, 100, when=WHEN),
               T.capp_purchase(card, psam, 50, when=WHEN)]
    assert T.get_balance(card) == before + amount - 150
    assert settle(records, KEYS).ok


def test_multi_carries_both_applications():
    card, plan, t = make("multi", 11)
    assert t.ok("00B2010C00") == dir_record(hx(CITY_AID), "PBOC")
    assert t.ok("00B2020C00") == dir_record(hx(TU_AID), "MOT_T_EP")
    assert t.ok("00A40000021002") .startswith(hx("6F2D8408A000000632010105"))
    assert fci_9f0c(select(t, CITY_AID)) == city_0015("3100000000000011", flag="0001")
    for aid in (CITY_AID, TU_AID):
        _use_application(card, aid)
    assert plan.eeprom == card.mf.used() < card.config.eeprom_size


@pytest.mark.parametrize("base", ["city", "multi"])
def test_extension_application_added_after_issuance(base):
    card, _plan, t = make(base, 12)
    _use_application(card, CITY_AID)
    plan = add_application(card, "campus", KEYS, {"holder_name": "李四"}, today=TODAY)
    assert plan.values["card_serial"] == "3100000000000012"  # read from MF 0005
    card.power_on()
    dirs = [t.send(f"00B2{i:02X}0C00") for i in (1, 2, 3)]
    entries = [d for d, sw in dirs if sw == 0x9000]
    assert entries[-1] == dir_record(hx(CAMPUS_AID), "CAMPUS") and len(entries) == (2 if base == "city" else 3)
    campus = fci_9f0c(select(t, CAMPUS_AID))
    assert campus[12:20] == hx("3100000000000012") and len(campus) == 40
    assert t.ok("00B0960000")[:20] == "李四".encode("gbk").ljust(20, b"\x00")
    assert external_auth(t, KEYS.card_key("app_master", 1, hx("3100000000000012"))) == 0x9000
    _use_application(card, CAMPUS_AID)
    # the original applications still work, balances intact
    _use_application(card, CITY_AID, 500)
    assert T.get_balance(card) == 1000 - 150 + 500 - 150
    if base == "multi":
        _use_application(card, TU_AID)


def test_adding_twice_or_with_wrong_keys_writes_nothing():
    from cardos import image

    card, _plan, _t = make("city", 13)
    add_application(card, "campus", KEYS, today=TODAY)
    before = image.dumps(card)
    with pytest.raises(IssueError, match="already has an application with AID F0434152444F53"):
        add_application(card, "campus", KEYS, today=TODAY)
    assert image.dumps(card) == before
    card2, _plan, t2 = make("city", 14)
    with pytest.raises(IssueError) as err:
        add_application(card2, "campus", KeySet.generate(test=True), today=TODAY)
    assert err.value.sw == 0x63C2 and "wrong key" in str(err.value)
    assert t2.sw(build(0x00, 0xA4, 0x04, 0x00, hx(CAMPUS_AID), 0)) == 0x6A82


def test_issuing_onto_an_issued_card_is_refused_at_the_transport_key():
    card, _plan, _t = make("city", 15)
    with pytest.raises(IssueError) as err:
        issue(card, "city", KEYS, {"serial": 16}, today=TODAY)
    assert err.value.sw == 0x63C2 and "transport key" in err.value.step


# -- SM4, scale -------------------------------------------------------------------------------------

def test_sm4_key_set_issues_an_sm4_card():
    sm4 = load("test-sm4")
    card, plan, t = make("city", 17, keyset=sm4)
    host, psam = LoadHost(sm4), PSAM(sm4, TERMINAL)
    T.select_application(card, hx(CITY_AID))
    records = [T.load(card, host, 900, terminal=TERMINAL, when=WHEN), T.purchase(card, psam, 90, when=WHEN)]
    assert T.get_balance(card) == 810 and settle(records, sm4).ok
    # the purchase key answers algorithm id 04 (SM4) in INITIALIZE FOR PURCHASE
    response = t.ok(build(0x80, 0x50, 0x01, 0x02, hx("01") + (1).to_bytes(4, "big") + TERMINAL, 0x0F))
    assert response[10] == 0x04


def test_one_thousand_cards_with_distinct_serials():
    start = time.perf_counter()
    serials, keys = set(), set()
    for n in range(1000):
        card = Card.blank()
        plan = issue(card, "city", KEYS, {"serial": n}, today=TODAY)
        serials.add(plan.values["app_serial"])
        keys.add(plan.card_key("city", "purchase1"))
    elapsed = time.perf_counter() - start
    assert len(serials) == 1000 and len(keys) == 1000
    # the last one works like any other
    _use_application(card, CITY_AID)
    assert elapsed < 120, f"1,000 cards took {elapsed:.1f} s"


# -- the engine's other paths, through a profile written for them -------------------------------------

CUSTOM = {
    "format": "cardos-profile", "version": 1, "name": "custom", "kind": "card",
    "parameters": {"serial": {"type": "int", "min": 0, "max": 99, "default": 3},
                   "app_serial": {"type": "hex", "length": 8, "default": "{serial:016d}"},
                   "motto": {"type": "text", "length": 12, "default": "hello"},
                   "amount": {"type": "int", "min": 0, "max": 65535, "default": 500}},
    "mf": {"create": "F0", "erase": "F0", "serial": "{app_serial}",
           "keys": [{"name": "master", "type": "external_auth", "role": "card_master", "state": "0A"}]},
    "applications": [{
        "name": "lab", "fid": "2001", "df_name": "CARDOS.LAB", "create": "AA", "erase": "AA",
        "app_file_id": "00", "serial": "{app_serial}", "space": 1200, "key_file": {"add": "AA", "spare": 24},
        "keys": [
            {"name": "master", "type": "external_auth", "role": "app_master", "state": "AA", "secure_update": True},
            {"name": "line0", "type": "line_protection", "id": 0, "role": "app_line"},
            {"name": "line2", "type": "line_protection", "id": 2, "role": "app_line", "diversify": False,
             "secure_update": True},
            {"name": "mac", "type": "mac", "id": 0, "role": "internal", "alg_id": "01", "version": 9}],
        "files": [
            {"fid": "0101", "name": "big", "type": "binary", "size": 300, "read": "F0", "write": "F0",
             "protection": "mac+encrypt", "key_byte": {"write_key": 2},
             "content": [{"name": "motto", "length": 12, "value": "{motto}", "encoding": "text", "pad": "20"},
                         {"name": "amount", "length": 2, "value": "{amount}", "encoding": "uint"}],
             "fill": "EE"},
            {"fid": "0008", "name": "fixed", "type": "fixed", "count": 3, "record_length": 4, "read": "F0",
             "write": "F0", "key_byte": {"protected_reads": True, "read_key": 0, "write_key": 0},
             "protection": "mac", "records": ["01020304", [{"name": "x", "length": 4, "value": "{serial:08d}"}]]},
            {"fid": "0009", "name": "tlv", "type": "variable", "size": 20, "read": "F0", "write": "F0",
             "records": [{"tag": "A1", "content": "CAFE"}, "B2020102"]}],
        "apdus": [{"apdu": "0084000004", "label": "a vendor command", "expect": "9000"},
                  {"apdu": "00A4000002{serial:04d}", "expect": "6A82"}]}],
    "lockdown": [{"df": "lab", "keys": "*", "change": "EF"},
                 {"df": "lab", "apdu": "00B2010C00", "expect": "6A82|6981"}],
}


def test_engine_paths_chunked_encrypted_writes_records_apdus_lockdown():
    from cardos import profiles as P

    profile = P.from_dict(CUSTOM, "custom.json")
    card = Card.blank()
    plan = issue(card, profile, KEYS, {"serial": 7})
    card.power_on()
    t = Terminal(card)
    assert t.ok("00A4000002200100") == hx("6F0E840A") + b"CARDOS.LAB" + hx("A500")
    assert t.ok("00A40000020101") == b""
    big = t.ok("00B0000000")[:256] + t.ok("00B0010000")
    assert big == b"hello".ljust(12, b" ") + (500).to_bytes(2, "big") + b"\xEE" * 286
    # 0008 reads must be protected; the response carries data ‖ MAC
    line0 = KEYS.card_key("app_line", 1, hx("0000000000000007"))
    assert t.sw("00B2014400") == 0x6987
    challenge = t.challenge()
    data = t.ok(protected_apdu(0x04, 0xB2, 0x02, 0x44, b"", line0, challenge, le=0))
    assert data[:4] == b"\x00\x00\x00\x07" and len(data) == 8
    assert t.ok("00B2A14800") == hx("A102CAFE") and t.ok("00B2B24800") == hx("B2020102")
    # line2 is the master itself (diversify: false), and is a secure-update key
    t.ok("00A40000020101")
    assert protected(t, 0x04, 0xD6, 0x00, 0x00, b"bye", KEYS.master("app_line", 1), encrypt=True) == 0x9000
    assert t.ok("00B0000003") == b"bye"
    # lock-down made every key unchangeable
    assert external_auth(t, plan.card_key("lab", "master")) == 0x9000
    record = hx("F6F0EFFF33") + bytes(16)
    assert protected(t, 0x84, 0xD4, 0x36, 0x02, record, plan.card_key("lab", "master"), encrypt=True) == 0x6982
    # the MAC key: INTERNAL AUTHENTICATE P1=02 answers the MAC with the diversified internal key
    mac = t.ok(build(0x00, 0x88, 0x02, 0x00, hx("0102030405060708"), 0))
    assert mac == DES.mac(KEYS.card_key("internal", 1, hx("0000000000000007")), hx("0102030405060708"))
    labels = [s.label for s in plan.steps]
    assert "a vendor command" in labels and any("@200" in label for label in labels)
