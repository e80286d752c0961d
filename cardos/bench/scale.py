"""Scale: issue many city cards, as ``cardos issue --out`` does (through APDUs in
memory, then one atomic image write), keep them all in memory, open them again.

Reported: time per card (issue, save, open), image size per card, and the
resident memory (RSS) growth per card held in memory. It runs in a fresh
process, so memory freed by the other parts does not hide the growth.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from .. import profiles as P
from ..card import Card
from ..keyset import load as load_keyset
from ..personalize import issue
from .stats import summary
from .workload import ISSUE_DAY


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run(n: int, image_dir: str | None = None, say=print) -> dict:
    """:func:`measure` in a child process (same interpreter)."""
    say(f"scale: issuing {n} city cards (in a fresh process)")
    command = [sys.executable, "-m", "cardos.bench.scale", str(n)] + (["--image-dir", image_dir] if image_dir else [])
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"scale benchmark failed (exit {out.returncode}): {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout)


def measure(n: int, image_dir: str | None = None) -> dict:
    keys = load_keyset("test")
    profile = P.load("city")
    workdir = tempfile.mkdtemp(prefix="cardos-bench-scale-", dir=image_dir)
    clock = time.perf_counter_ns
    try:
        plan = issue(Card.blank(), profile, keys, {"serial": 999_999}, today=ISSUE_DAY)  # warm caches, imports
        gc.collect()
        rss0 = rss_bytes()
        cards = []
        issue_ns, save_ns, sizes = [], [], []
        t_start = time.perf_counter()
        for i in range(n):
            t0 = clock()
            card = Card.blank()
            issue(card, profile, keys, {"serial": i + 1}, today=ISSUE_DAY)
            t1 = clock()
            path = os.path.join(workdir, f"{i + 1:06d}.card")
            card.save_as(path)
            t2 = clock()
            card.close()  # unlock: thousands of held locks would be thousands of open files
            issue_ns.append(t1 - t0)
            save_ns.append(t2 - t1)
            sizes.append(os.path.getsize(path))
            cards.append(card)
        wall = time.perf_counter() - t_start
        gc.collect()
        rss1 = rss_bytes()
        del cards
        gc.collect()
        open_ns = []
        opened = []
        for i in range(n):
            t0 = clock()
            opened.append(Card.open(os.path.join(workdir, f"{i + 1:06d}.card")))
            open_ns.append(clock() - t0)
            opened[-1].close()
        del opened
        return {"cards": n, "profile": "city", "apdus_per_card": plan.apdu_count, "wall_s": round(wall, 2), "cards_per_s": round(n / wall, 1),
                "issue": summary(issue_ns), "save": summary(save_ns), "open": summary(open_ns),
                "image_bytes": {"mean": round(sum(sizes) / n, 1), "max": max(sizes), "min": min(sizes),
                                "total": sum(sizes)},
                "rss_bytes": {"before": rss0, "after": rss1, "per_card": round((rss1 - rss0) / n, 1)}}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cardos.bench.scale")
    parser.add_argument("cards", type=int)
    parser.add_argument("--image-dir")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.cards, args.image_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
