"""Issuance profiles: the shipped ones load; bad ones are refused naming file, field and reason."""
from __future__ import annotations

import copy
import json
from datetime import date

import pytest

from cardos import profiles as P
from cardos.cli import main
from cardos.keyset import KeySet, KeySetError
from cardos.personalize import compile_card


def raw(name: str) -> dict:
    return json.loads((P.SHIPPED_DIR / f"{name}.json").read_text(encoding="utf-8"))


def test_shipped_profiles_load():
    assert set(P.shipped()) >= {"city", "interconnect", "multi", "campus"}
    city = P.load("city")
    assert city.kind == "card" and [a.name for a in city.applications] == ["city"]
    assert city.applications[0].df_name.hex().upper() == "A00000000386980701"
    multi = P.load("multi")
    assert [(a.name, a.fid) for a in multi.applications] == [("city", 0x1001), ("interconnect", 0x1002)]
    # the included applications bring their parameters and lock-down steps
    assert {"card_number", "holder_name"} <= set(multi.params)
    assert {s.df for s in multi.lockdown} == {"city", "interconnect"}
    # multi's own parameter wins over the included city profile's
    assert multi.params["interconnect_flag"].default == "0001"
    campus = P.load("campus")
    assert campus.kind == "application" and campus.authorize.role == "add_app"


def test_parameters_resolve_in_dependency_order():
    city = P.load("city")
    values = P.resolve_params(city, {"serial": "42", "city": "4401"}, today=date(2026, 2, 28))
    assert values["app_serial"] == "4401000000000042"
    assert values["start_date"] == "20260228" and values["expiry_date"] == "20360228"
    assert P.parse_date("today+1y", date(2024, 2, 29)) == "20250228"
    assert P.parse_date("today-1d", date(2026, 3, 1)) == "20260228"


@pytest.mark.parametrize("given, field, reason", [
    ({"serial": "abc"}, "parameters.serial", "decimal integer"),
    ({"serial": "1000000000000"}, "parameters.serial", "must be from 0 to 999999999999"),
    ({"city": "31"}, "parameters.city", "2 byte(s)"),
    ({"issue_date": "20261332"}, "parameters.issue_date", "not a calendar date"),
    ({"pin": "12"}, "parameters.pin", "4 to 12"),
    ({"holder_name": "x" * 21}, "parameters.holder_name", "longer than 20"),
    ({"colour": "red"}, "parameters.colour", "no such parameter"),
])
def test_bad_parameter_values_are_refused(given, field, reason):
    with pytest.raises(P.ProfileError) as err:
        P.resolve_params(P.load("city"), given)
    assert err.value.field == field and reason in err.value.reason


def _mf_file(d, fid):
    return next(f for f in d["mf"]["files"] if f["fid"] == fid)


def _app(d):
    return d["applications"][0]


def _app_file(d, fid):
    return next(f for f in _app(d)["files"] if f["fid"] == fid)


def _app_key(d, name):
    return next(k for k in _app(d)["keys"] if k["name"] == name)


MUTATIONS = [
    (lambda d: d.update(format="x"), "format", "not a cardos profile"),
    (lambda d: d.update(version=9), "version", "unsupported version"),
    (lambda d: d.update(kind="disk"), "kind", "must be \"card\""),
    (lambda d: d.update(colour=1), "colour", "unknown field"),
    (lambda d: d["parameters"]["serial"].update(type="float"), "parameters.serial.type", "must be one of"),
    (lambda d: d["parameters"]["serial"].pop("max"), "parameters.serial", "needs min and max"),
    (lambda d: d["parameters"]["app_serial"].update(default="{citty}{serial:012d}"),
     "parameters.app_serial.default", "unknown parameter {citty}"),
    (lambda d: d["mf"].update(create="GG"), "mf.create", "not valid hex"),
    (lambda d: d["mf"].update(erase="AAAA"), "mf.erase", "1 byte(s)"),
    (lambda d: d["mf"]["keys"].pop(0), "mf.keys", "master key"),
    (lambda d: _mf_file(d, "0005").update(size=0), "mf.files.0005.size", "from 1 to 32767"),
    (lambda d: _mf_file(d, "0005").update(size=20), "mf.files.0005.content", "is 30 bytes, the file is 20"),
    (lambda d: _mf_file(d, "0005")["content"][0].update(value="{nope}"),
     "mf.files.0005.content.issuer.value", "unknown parameter {nope}"),
    (lambda d: _mf_file(d, "0005")["content"][0].update(encoding="base64"),
     "mf.files.0005.content.issuer.encoding", "must be one of"),
    (lambda d: _mf_file(d, "0005")["content"][0].update(value="1234", length=3),
     "mf.files.0005.content.issuer.value", "is 2 byte(s)"),
    (lambda d: _app(d).update(fid="0015"), "applications.city.fid", "cannot be an application"),
    (lambda d: _app(d).update(aid="A000"), "applications.city.aid", "5 to 16 bytes"),
    (lambda d: _app(d).pop("aid"), "applications.city", "missing aid"),
    (lambda d: _app(d).update(name="City!"), "applications[0].name", "lower case"),
    (lambda d: _app(d).update(app_file_id="97"), "applications.city.app_file_id", "no such binary file"),
    (lambda d: _app(d).pop("serial"), "applications.city.serial", "diversified with"),
    (lambda d: _app_file(d, "0015").update(type="blob"), "applications.city.files.0015.type", "must be one of"),
    (lambda d: _app_file(d, "0015").update(protection="rot13"), "applications.city.files.0015.protection",
     "must be one of"),
    (lambda d: _app_file(d, "0015").update(key_byte={"write_key": 2}), "applications.city.files.0015.protection",
     "line-protection key id 2"),
    (lambda d: _app_file(d, "0018").update(count=1), "applications.city.files.0018.count", "from 2 to 254"),
    (lambda d: _app_file(d, "0018").update(record_length=16), "applications.city.files.0002.log",
     "23-byte records"),
    (lambda d: _app_file(d, "0002").update(fid="0003"), "applications.city.files.0003.fid", "0001 (ED) or 0002"),
    (lambda d: _app_file(d, "0002").update(tac_key=5), "applications.city.files.0002.tac_key", "no tac key"),
    (lambda d: _app_file(d, "001A").update(size=40), "applications.city.files.001A.records", "need 49 bytes"),
    (lambda d: _app(d)["files"].append({"fid": "0015", "type": "binary", "size": 4, "read": "F0", "write": "F0"}),
     "applications.city.files.0015", "duplicate FID"),
    (lambda d: _app_key(d, "load1").update(type="gold"), "applications.city.keys[7].type", "must be one of"),
    (lambda d: _app_key(d, "load1").update(id=2, index=2), "applications.city.keys.load2",
     "is already load1"),
    (lambda d: _app_key(d, "load1").pop("role"), "applications.city.keys.load1.role", "which key-set role"),
    (lambda d: _app_key(d, "load1").update(value="00" * 16), "applications.city.keys.load1.value",
     "only PINs take a value"),
    (lambda d: _app_key(d, "load1").update(state="01"), "applications.city.keys.load1.state",
     "version and algorithm id"),
    (lambda d: _app_key(d, "master").update(version=1), "applications.city.keys.master.version",
     "error counter"),
    (lambda d: _app_key(d, "master").update(tries=16), "applications.city.keys.master.tries", "from 1 to 15"),
    (lambda d: _app_key(d, "line").update(state="11"), "applications.city.keys.line.state",
     "no subsequent state"),
    (lambda d: _app_key(d, "pin").update(role="pin"), "applications.city.keys.pin.role", "takes a value"),
    (lambda d: d["lockdown"][0].update(df="bus"), "lockdown[0].df", "no DF named 'bus'"),
    (lambda d: d["lockdown"][0].update(keys=["gold"]), "lockdown[0].keys", "no key named 'gold'"),
    (lambda d: d["lockdown"][0].pop("change"), "lockdown[0]", "use and/or change"),
    (lambda d: d["lockdown"].append({"apdu": "00A4", "expect": "9O00"}), "lockdown[1].expect", "status words"),
]


@pytest.mark.parametrize("mutate, field, reason", MUTATIONS)
def test_bad_profiles_are_refused_with_file_field_and_reason(tmp_path, mutate, field, reason):
    d = copy.deepcopy(raw("city"))
    mutate(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(P.ProfileError) as err:
        P.load(str(path))
    assert err.value.path == str(path)
    assert err.value.field == field, str(err.value)
    assert reason in err.value.reason, str(err.value)
    assert str(err.value).startswith(f"{path}: {field}: ")


def test_include_errors_name_the_entry(tmp_path):
    d = copy.deepcopy(raw("multi"))
    d["applications"][1]["application"] = "tram"
    path = tmp_path / "m.json"
    path.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(P.ProfileError) as err:
        P.load(str(path))
    assert err.value.field == "applications[1].application" and "no application 'tram'" in err.value.reason
    d["applications"][1] = {"from": "nowhere"}
    path.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(P.ProfileError, match=r"applications\[1\]\.from: cannot read profile 'nowhere'"):
        P.load(str(path))
    d["applications"][1] = {"from": "interconnect"}  # same FID 1001 as city
    path.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(P.ProfileError, match=r"applications\.interconnect\.fid: 1001 is already application city"):
        P.load(str(path))


def test_not_json_and_circular_defaults(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(P.ProfileError, match="not valid JSON"):
        P.load(str(path))
    d = copy.deepcopy(raw("city"))
    d["parameters"]["city"]["default"] = "{app_serial}"
    d["parameters"]["city"]["length"] = 8
    path.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(P.ProfileError, match="circular default: city -> app_serial -> city"):
        P.resolve_params(P.load(str(path)))


def test_values_that_break_a_layout_are_refused_at_compile_time(tmp_path):
    d = copy.deepcopy(raw("city"))
    d["parameters"]["code"] = {"type": "text", "default": "ABC"}
    _app_file(d, "0015")["content"][0]["value"] = "{code}"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    profile = P.load(str(path))
    with pytest.raises(P.ProfileError) as err:
        compile_card(profile, KeySet.generate(test=True))
    assert err.value.field == "applications.city.files.0015.content" and "'ABC' is not hex" in err.value.reason


def test_a_key_set_without_a_needed_role_is_refused():
    ks = KeySet.generate(test=True)
    del ks.keys["overdraw"]
    with pytest.raises(KeySetError) as err:
        compile_card(P.load("city"), ks)
    assert err.value.field == "keys.overdraw.1" and "profile city needs it" in err.value.reason


def test_cli_profiles_lists_describes_and_checks(tmp_path, capsys):
    assert main(["profiles"]) == 0
    assert "interconnect" in capsys.readouterr().out
    assert main(["profiles", "multi"]) == 0
    out = capsys.readouterr().out
    assert "interconnect 1002 AID A000000632010105" in out and "key-set roles needed" in out
    d = raw("city")
    d["mf"]["create"] = "XX"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    assert main(["profiles", str(path)]) == 2
    assert f"{path}: mf.create: not valid hex" in capsys.readouterr().err
