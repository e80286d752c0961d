"""Issuer key sets: generation, the file (mode 0600, versioned, validated), diversification."""
from __future__ import annotations

import json
import os
import stat

import pytest

from cardos.cli import main
from cardos.crypto import DES, SM4
from cardos.keyset import STANDARD_ROLES, KeySet, KeySetError, factor_of, load, shipped

from .conftest import hx


def test_generate_has_every_standard_role_with_distinct_random_masters():
    ks = KeySet.generate()
    for role, indexes, _purpose in STANDARD_ROLES:
        for i in indexes:
            assert len(ks.master(role, i)) == 16
    values = [v for by_index in ks.keys.values() for v in by_index.values()]
    assert len(set(values)) == len(values)
    assert KeySet.generate().master("load", 1) != ks.master("load", 1)
    assert ks.algorithm is DES and not ks.test


def test_save_and_load_round_trip_mode_0600(tmp_path):
    ks = KeySet.generate(sm4=True, test=True)
    path = tmp_path / "k.json"
    ks.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    back = load(path)
    assert back.keys == ks.keys and back.algorithm is SM4 and back.test
    assert json.loads(path.read_text())["format"] == "cardos-keyset"
    with pytest.raises(KeySetError, match="already exists"):
        ks.save(path)
    ks.save(path, overwrite=True)


def test_master_accessor_and_errors_name_file_and_field(tmp_path):
    ks = KeySet.generate(test=True)
    path = tmp_path / "k.json"
    ks.save(path)
    ks = load(path)
    assert ks.master("tac") == ks.master("tac", 1)
    with pytest.raises(KeySetError) as err:
        ks.master("load")  # two load keys: index needed
    assert str(path) in str(err.value) and "keys.load" in str(err.value) and "index" in str(err.value)
    with pytest.raises(KeySetError, match=r"keys\.nope: no such role"):
        ks.master("nope")
    with pytest.raises(KeySetError, match=r"keys\.load\.7: no key with this index"):
        ks.master("load", 7)


def test_card_keys_are_diversified_with_the_application_serial():
    master = hx("00112233445566778899AABBCCDDEEFF")
    ks = KeySet({"purchase": {1: master}})
    # reference §7 row 9 through the accessor: the factor is the serial's rightmost 8 bytes
    assert ks.card_key("purchase", 1, hx("0000001122334455667788")) == hx("496BD7A3513644533100B54E71196528")
    assert factor_of(hx("1234")) == hx("0000000000001234")
    sm4 = KeySet({"purchase": {1: master}}, "SM4")
    assert sm4.card_key("purchase", 1, hx("1122334455667788")) == SM4.diversify(master, hx("1122334455667788"))


def test_feeds_the_terminal_side():
    """The load host and PSAM of cardos.terminal take a key set as it is."""
    from cardos.terminal.host import LoadHost
    from cardos.terminal.psam import PSAM

    ks = KeySet.generate(test=True)
    LoadHost(ks)
    PSAM(ks, hx("000000000001"))
    assert ks.card_key("tac", None, hx("3100000000000001")) == DES.diversify(ks.master("tac"), hx("3100000000000001"))


def _write(tmp_path, d, mode=0o600):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d) if not isinstance(d, str) else d)
    os.chmod(path, mode)
    return path


GOOD = {"format": "cardos-keyset", "version": 1, "algorithm": "3DES", "test": True,
        "keys": {"load": {"1": "00112233445566778899AABBCCDDEEFF"}}}


@pytest.mark.parametrize("change, field, reason", [
    ({"format": "other"}, "format", "not a cardos key set"),
    ({"version": 2}, "version", "unsupported version"),
    ({"algorithm": "AES"}, "algorithm", "must be one of 3DES, SM4"),
    ({"test": "yes"}, "test", "true or false"),
    ({"keys": {}}, "keys", "object of roles"),
    ({"keys": {"Load": {"1": "00" * 16}}}, "keys.Load", "lower case"),
    ({"keys": {"load": "00" * 16}}, "keys.load", "index"),
    ({"keys": {"load": {"0": "00" * 16}}}, "keys.load.0", "number from 1"),
    ({"keys": {"load": {"1": "XYZ"}}}, "keys.load.1", "not valid hex"),
    ({"keys": {"load": {"1": "00" * 8}}}, "keys.load.1", "16 bytes"),
    ({"keys": {"load": {"1": "0011223344556677" * 2}}}, "keys.load.1", "single DES"),
    ({"extra": 1}, "extra", "unknown field"),
])
def test_bad_key_sets_are_refused_with_file_field_reason(tmp_path, change, field, reason):
    path = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(KeySetError) as err:
        load(path)
    assert err.value.path == str(path)
    assert err.value.field == field
    assert reason in err.value.reason


def test_not_json_and_missing_file(tmp_path):
    with pytest.raises(KeySetError, match="not valid JSON: line 1"):
        load(_write(tmp_path, "{nope"))
    with pytest.raises(KeySetError, match="no such key set"):
        load(tmp_path / "missing.json")


def test_issuer_keys_readable_by_others_are_refused_test_keys_are_not(tmp_path):
    path = _write(tmp_path, {**GOOD, "test": False}, 0o644)
    with pytest.raises(KeySetError, match="too open"):
        load(path)
    os.chmod(path, 0o600)
    assert not load(path).test
    assert load(_write(tmp_path, GOOD, 0o644)).test


def test_shipped_test_key_sets():
    assert {"test", "test-sm4"} <= set(shipped())
    assert load("test").test and load("test-sm4").sm4


def test_cli_keys_new_does_not_print_keys_unless_asked(tmp_path, capsys):
    path = tmp_path / "issuer.json"
    assert main(["keys", "new", str(path)]) == 0
    out = capsys.readouterr().out
    ks = load(path)
    assert not ks.test and stat.S_IMODE(path.stat().st_mode) == 0o600
    for by_index in ks.keys.values():
        for value in by_index.values():
            assert value.hex().upper() not in out
    assert main(["keys", "new", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["keys", "new", str(tmp_path / "t.json"), "--sm4", "--test", "--show"]) == 0
    shown = capsys.readouterr().out
    t = load(tmp_path / "t.json")
    assert t.sm4 and t.test and t.master("tac").hex().upper() in shown
    assert main(["keys", "show", str(path)]) == 0
    listing = capsys.readouterr().out
    assert f"KCV {ks.kcv('load', 2)}" in listing and ks.master("load", 2).hex().upper() not in listing
