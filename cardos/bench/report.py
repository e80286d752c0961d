"""Targets (pass / miss and by how much) and the text table of a benchmark run."""
from __future__ import annotations

from .stats import ratio
from .workload import OPS, TRANSACTIONS

TITLES = {op.key: op.title for op in OPS}
TX_TITLES = dict(TRANSACTIONS)

SPEEDUP_VS_VICC = 5.0
FLOOR_FACTOR = 1.15
PURCHASE_LIMIT_US = 1000.0
IMAGE_LIMIT = 8192  # the FM1208's 8 KB EEPROM


def _get(d, *path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _median(d, *path):
    return _get(d, *path, "median_us")


def _target(key, title, target, value, unit, ok, detail):
    return {"key": key, "title": title, "target": target, "value": value, "unit": unit, "pass": ok,
            "detail": detail}


def evaluate_targets(r: dict) -> list[dict]:
    out = []
    inproc = r.get("inprocess") or {}
    for key in ("select_mf", "read_binary"):
        title = f"in-process {TITLES[key]}: at least {SPEEDUP_VS_VICC:g}x faster than vicc in-process"
        ours = [m for m in (_median(inproc, "apdus", mode, key) for mode in ("off", "on")) if m is not None]
        vicc = _median(inproc, "vicc", key)
        if not ours or vicc is None:
            out.append(_target(f"inprocess_{key}_vs_vicc", title, f">= {SPEEDUP_VS_VICC:g}x", None, "x", None,
                               "not measured (" + ("vicc left out" if ours else "in-process part not run") + ")"))
            continue
        v = ratio(vicc, max(ours))
        ok = v >= SPEEDUP_VS_VICC
        detail = (f"{v:.1f}x faster (vicc {vicc:.2f} us / ours {max(ours):.2f} us); "
                  + (f"margin {v / SPEEDUP_VS_VICC:.1f}x" if ok else f"missed by {SPEEDUP_VS_VICC / v:.2f}x"))
        out.append(_target(f"inprocess_{key}_vs_vicc", title, f">= {SPEEDUP_VS_VICC:g}x", v, "x", ok, detail))

    pcsc = r.get("pcsc") or {}
    for op in OPS:
        title = f"PC/SC {op.title}: within {FLOOR_FACTOR}x of the transport floor (persistence on)"
        ours, floor = _median(pcsc, "apdus_on", op.key), _median(pcsc, "floor", op.key)
        if ours is None or floor is None:
            out.append(_target(f"pcsc_{op.key}_vs_floor", title, f"<= {FLOOR_FACTOR}x", None, "x", None,
                               "not measured (PC/SC part not run)"))
            continue
        v = ratio(ours, floor)
        ok = v <= FLOOR_FACTOR
        detail = (f"{v:.3f}x (ours {ours:.1f} us, floor {floor:.1f} us, +{ours - floor:.1f} us); "
                  + (f"{(FLOOR_FACTOR - v) / FLOOR_FACTOR * 100:.0f}% headroom" if ok
                     else f"over by {(v / FLOOR_FACTOR - 1) * 100:.1f}%"))
        out.append(_target(f"pcsc_{op.key}_vs_floor", title, f"<= {FLOOR_FACTOR}x", v, "x", ok, detail))

    title = f"PC/SC full purchase, persistence on: median under {PURCHASE_LIMIT_US:g} us"
    v = _median(pcsc, "transactions_on", "purchase")
    if v is None:
        out.append(_target("pcsc_purchase_on", title, f"< {PURCHASE_LIMIT_US:g} us", None, "us", None,
                           "not measured (PC/SC part not run)"))
    else:
        ok = v < PURCHASE_LIMIT_US
        detail = (f"{v:.0f} us; " + (f"{(1 - v / PURCHASE_LIMIT_US) * 100:.0f}% under" if ok
                                     else f"over by {v - PURCHASE_LIMIT_US:.0f} us "
                                          f"({(v / PURCHASE_LIMIT_US - 1) * 100:.0f}%)"))
        out.append(_target("pcsc_purchase_on", title, f"< {PURCHASE_LIMIT_US:g} us", v, "us", ok, detail))

    title = f"image size per issued city card under {IMAGE_LIMIT} bytes (8 KB EEPROM)"
    v = _get(r, "scale", "image_bytes", "max")
    if v is None:
        out.append(_target("image_size", title, f"< {IMAGE_LIMIT} B", None, "B", None, "not measured (scale part "
                                                                                     "not run)"))
    else:
        ok = v < IMAGE_LIMIT
        detail = (f"largest {v} B, mean {_get(r, 'scale', 'image_bytes', 'mean'):.0f} B; "
                  + (f"{IMAGE_LIMIT - v} B to spare" if ok else f"over by {v - IMAGE_LIMIT} B"))
        out.append(_target("image_size", title, f"< {IMAGE_LIMIT} B", v, "B", ok, detail))
    return out


# -- the table -----------------------------------------------------------------------------

def _f(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _x(v) -> str:
    return "-" if v is None else f"{v:.3f}x" if v < 10 else f"{v:.1f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(header).rstrip(), line(["-" * w for w in widths])] + [line(r).rstrip() for r in rows]


def _med_p99(d) -> list[str]:
    return [_f(_get(d, "median_us"), 2 if (_get(d, "median_us") or 0) < 100 else 1),
            _f(_get(d, "p99_us"), 2 if (_get(d, "p99_us") or 0) < 100 else 1)]


def render(r: dict) -> str:
    m = r.get("meta", {})
    lines = [(f"{r.get('command', 'cardos bench')}   ({m.get('date')}, Python {m.get('python')}, "
              f"{m.get('cpus')} CPUs, images on {m.get('image_fs')} {m.get('image_dir')}, "
              f"commit {m.get('cardos_commit')}, {r.get('wall_s')} s)"),
             "times in microseconds: median / p99; ratios are of medians"]
    inproc = r.get("inprocess")
    if inproc:
        lines += ["", ("In-process: Card.transmit (persistence off = in memory, on = image file); "
                       "vicc: Iso7816OS.execute, same interpreter")]
        rows = []
        for op in OPS:
            off, on, vicc = (_get(inproc, "apdus", "off", op.key), _get(inproc, "apdus", "on", op.key),
                             _get(inproc, "vicc", op.key) if op.iso else None)
            rows.append([op.title, *_med_p99(off), *_med_p99(on), *_med_p99(vicc),
                         _x(ratio(_median(on), _median(vicc))) if vicc else "-"])
        for key, title in TRANSACTIONS:
            off, on = _get(inproc, "transactions", "off", key), _get(inproc, "transactions", "on", key)
            rows.append([title, *_med_p99(off), *_med_p99(on), "-", "-", "-"])
        for key, title in (("serialize", "commit: image text (image.dumps)"),
                           ("write", "commit: temp file + rename")):
            rows.append([title, "-", "-", *_med_p99(_get(inproc, "commit", key)), "-", "-", "-"])
        lines += _table(["operation", "off med", "p99", "on med", "p99", "vicc med", "p99", "on/vicc"], rows)

    pcsc = r.get("pcsc")
    if pcsc:
        lines += ["", (f"PC/SC: pcscd ({pcsc.get('pcscd')}) + vpcd, pyscard SCardTransmit T=1, every card its "
                       "own process; ours = cardos serve IMAGE (persistence on)"),
                  "A: transport floor | ours, B: vicc (TCP_QUICKACK) | ours, side by side"]
        rows = []
        for op in OPS:
            floor, on = _get(pcsc, "floor", op.key), _get(pcsc, "apdus_on", op.key)
            vicc, on_b = (_get(pcsc, "vicc", op.key), _get(pcsc, "apdus_on_vicc", op.key)) if op.iso else (None, None)
            rows.append([op.title, *_med_p99(floor), *_med_p99(on), _x(ratio(_median(on), _median(floor))),
                         *_med_p99(vicc), *_med_p99(on_b), _x(ratio(_median(on_b), _median(vicc))) if vicc else "-"])
        lines += _table(["operation", "floor med", "p99", "ours med", "p99", "ours/floor", "vicc med", "p99",
                         "ours med", "p99", "ours/vicc"], rows)
        lines += ["", "C: persistence off (card in memory, same Slot code) | on (cardos serve IMAGE), side by side"]
        rows = []
        for op in OPS:
            off, on = _get(pcsc, "apdus_off", op.key), _get(pcsc, "apdus_on_off", op.key)
            rows.append([op.title, *_med_p99(off), *_med_p99(on), _x(ratio(_median(on), _median(off)))])
        for key, title in TRANSACTIONS:
            off, on = _get(pcsc, "transactions_off", key), _get(pcsc, "transactions_on", key)
            rows.append([title, *_med_p99(off), *_med_p99(on), _x(ratio(_median(on), _median(off)))])
        lines += _table(["operation", "off med", "p99", "on med", "p99", "on/off"], rows)
        two = pcsc.get("two_cards")
        if two:
            together = two.get("together") or [{}, {}]
            lines += ["", "D: two served cards (cardos serve A B, persistence on), full purchases:"]
            lines += _table(["", "med", "p99", "purchases/s"],
                            [["card A alone", *_med_p99(two.get("alone")), _f(two.get("alone_per_s"))],
                             ["card A, both at once", *_med_p99(together[0]), ""],
                             ["card B, both at once", *_med_p99(together[1]), ""],
                             ["both cards together", "", "", _f(two.get("together_per_s"))]])

    sc = r.get("scale")
    if sc:
        lines += ["", (f"Scale: {sc['cards']} city cards issued through APDUs in memory, each saved once "
                       f"({sc['wall_s']} s, {sc['cards_per_s']} cards/s)")]
        rss = sc.get("rss_bytes", {})
        img = sc.get("image_bytes", {})
        lines += _table(["per card", "median", "p99", "other"],
                        [[f"issue ({sc.get('apdus_per_card')} APDUs), us", *_med_p99(sc.get("issue")), ""],
                         ["save image, us", *_med_p99(sc.get("save")), ""],
                         ["open image, us", *_med_p99(sc.get("open")), ""],
                         ["image size, bytes", "", "", f"mean {_f(img.get('mean'), 0)}, max {img.get('max')}"],
                         ["memory held (RSS), bytes", "", "",
                          (f"{_f(rss.get('per_card'), 0)} (RSS {rss.get('before', 0) // 2**20} -> "
                           f"{rss.get('after', 0) // 2**20} MiB)")]])

    if r.get("skipped"):
        lines += [""] + [f"skipped {part}: {why}" for part, why in r["skipped"].items()]
    lines += ["", "Targets:"]
    for t in r.get("targets", []):
        mark = {True: "PASS", False: "MISS", None: "n/a "}[t["pass"]]
        lines.append(f"  {mark}  {t['title']}: {t['detail']}")
    return "\n".join(lines)
