"""Smoke test of ``cardos bench`` (docs/performance.md): it runs and its JSON has the
documented shape. Benchmarks are not timed tests: no timing is asserted here."""
from __future__ import annotations

import json

from cardos.bench.workload import OPS, TRANSACTIONS
from cardos.cli import main

SUMMARY_KEYS = {"n", "median_us", "p99_us", "mean_us", "min_us"}


def test_quick_in_process_run_writes_the_documented_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--quick", "--only", "inprocess,scale", "--no-vicc", "--scale", "3", "--rounds", "2",
               "--image-dir", str(tmp_path), "--json", str(out)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "In-process" in table and "Scale: 3 city cards" in table and "Targets:" in table

    r = json.loads(out.read_text())
    assert r["format"] == "cardos-bench" and r["version"] == 1
    assert r["command"].startswith("cardos bench --quick") and "--scale 3" in r["command"]
    assert r["parts"] == ["inprocess", "scale"] and r["skipped"] == {"vicc": "--no-vicc"}
    assert {"date", "python", "cpus", "image_fs"} <= set(r["meta"])

    inproc = r["inprocess"]
    for mode in ("off", "on"):
        assert set(inproc["apdus"][mode]) == {op.key for op in OPS}
        assert set(inproc["transactions"][mode]) == {key for key, _ in TRANSACTIONS}
        for s in [*inproc["apdus"][mode].values(), *inproc["transactions"][mode].values()]:
            assert set(s) == SUMMARY_KEYS and s["n"] > 0 and 0 < s["median_us"] <= s["p99_us"]
    assert "vicc" not in inproc and "pcsc" not in r

    scale = r["scale"]
    assert scale["cards"] == 3 and scale["apdus_per_card"] > 0
    assert set(scale["issue"]) == SUMMARY_KEYS and scale["issue"]["n"] == 3
    assert 0 < scale["image_bytes"]["min"] <= scale["image_bytes"]["max"]
    assert {"before", "after", "per_card"} <= set(scale["rss_bytes"])

    targets = {t["key"]: t for t in r["targets"]}
    assert set(targets) == {"inprocess_select_mf_vs_vicc", "inprocess_read_binary_vs_vicc", "pcsc_purchase_on",
                            "image_size", *(f"pcsc_{op.key}_vs_floor" for op in OPS)}
    assert targets["pcsc_purchase_on"]["pass"] is None  # not measured: n/a, not a miss
    assert targets["inprocess_select_mf_vs_vicc"]["pass"] is None
    assert isinstance(targets["image_size"]["pass"], bool)
    assert not list(tmp_path.glob("cardos-bench-*"))  # work directories removed


def test_unknown_part_is_a_usage_error(capsys):
    assert main(["bench", "--only", "inprocess,warp"]) == 2
    assert "unknown part(s) warp" in capsys.readouterr().err
