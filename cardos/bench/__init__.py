"""``cardos bench``: speed and scale, side by side with vicc and the transport floor.

Parts (``--only``): ``inprocess`` (Card.transmit; vicc's Iso7816OS.execute),
``pcsc`` (real pcscd + vpcd, pyscard SCardTransmit: floor, cardos serve,
vicc, two cards at once), ``scale`` (issue 1,000 / ``--scale N`` cards).
Results: a table on stdout (progress on stderr), JSON with ``--json``,
targets with pass/miss. See docs/performance.md.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass

PARTS = ("inprocess", "pcsc", "scale")


@dataclass
class Config:
    apdus: int            # in-process samples per APDU kind and card
    pcsc_apdus: int       # PC/SC samples per APDU kind and card
    transactions: int     # samples per transaction kind and card
    rounds: int
    scale: int
    image_dir: str | None
    vicc: bool


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="a short run (fewer samples, 100 cards for scale)")
    parser.add_argument("--scale", type=int, metavar="N", help="cards to issue in the scale part (default 1000; "
                        "--quick 100); e.g. --scale 10000")
    parser.add_argument("--only", metavar="PARTS", help=f"comma-separated parts to run: {', '.join(PARTS)} "
                        "(default all)")
    parser.add_argument("--no-vicc", action="store_true", help="leave vsmartcard's vicc out")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--image-dir", metavar="DIR", help="where card images are written (default: the system "
                        "temporary directory); the file system matters for persistence on")
    parser.add_argument("--rounds", type=int, metavar="R", help="interleaved in-process rounds (default 20; --quick 10)")


def _filesystem(path: str) -> str:
    """File system type of ``path`` (from /proc/mounts), or ``"?"``."""
    best, fstype = "", "?"
    real = os.path.realpath(path)
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                mount = parts[1]
                if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
                    best, fstype = mount, parts[2]
    except OSError:
        pass
    return fstype


def _git_commit() -> str | None:
    head = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".git")
    try:
        import subprocess

        out = subprocess.run(["git", "--git-dir", head, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _command(args) -> str:
    """The command line that reproduces this run (options in a fixed order)."""
    words = ["cardos", "bench"]
    if args.quick:
        words.append("--quick")
    for flag, value in (("--scale", args.scale), ("--only", args.only), ("--rounds", args.rounds),
                        ("--image-dir", args.image_dir), ("--json", args.json)):
        if value is not None:
            words += [flag, str(value)]
    if args.no_vicc:
        words.append("--no-vicc")
    return " ".join(words)


def run(args, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr

    def say(text: str) -> None:
        print(f"cardos bench: {text}", file=err, flush=True)

    parts = PARTS if not args.only else tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(f"cardos bench: error: unknown part(s) {', '.join(unknown)} (parts: {', '.join(PARTS)})", file=err)
        return 2
    quick = args.quick
    rounds = args.rounds or (10 if quick else 20)
    cfg = Config(apdus=2_000 if quick else 20_000, pcsc_apdus=300 if quick else 5_000,
                 transactions=60 if quick else 1_000, rounds=rounds,
                 scale=args.scale if args.scale is not None else (100 if quick else 1000),
                 image_dir=args.image_dir, vicc=not args.no_vicc)
    if cfg.scale < 1 or rounds < 1:
        print("cardos bench: error: --scale and --rounds must be at least 1", file=err)
        return 2
    from ..textfile import write_problem

    problem = write_problem(args.json) if args.json else None  # found now, not after minutes of work
    if problem:
        print(f"cardos bench: error: --json {args.json}: cannot write: {problem}", file=err)
        return 2
    if cfg.image_dir and not os.path.isdir(cfg.image_dir):
        print(f"cardos bench: error: --image-dir {cfg.image_dir}: no such directory", file=err)
        return 2
    image_dir = cfg.image_dir or tempfile.gettempdir()
    command = _command(args)
    results: dict = {
        "format": "cardos-bench", "version": 1, "command": command,
        "meta": {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
                 "implementation": platform.python_implementation(), "executable": sys.executable,
                 "machine": platform.machine(), "cpus": os.cpu_count(), "system": platform.platform(),
                 "cardos_commit": _git_commit(), "image_dir": image_dir, "image_fs": _filesystem(image_dir)},
        "config": asdict(cfg), "parts": list(parts), "skipped": {}}
    started = time.perf_counter()

    vicc_env = None
    if cfg.vicc and ("inprocess" in parts or "pcsc" in parts):
        from .vicc import ViccUnavailable, worker_env

        try:
            vicc_env = worker_env()
        except ViccUnavailable as exc:
            results["skipped"]["vicc"] = str(exc)
            say(f"vicc left out: {exc}")
    elif not cfg.vicc:
        results["skipped"]["vicc"] = "--no-vicc"

    if "inprocess" in parts:
        from . import inprocess

        worker = None
        if vicc_env is not None:
            from .vicc import InProcessWorker, ViccUnavailable

            try:
                worker = InProcessWorker()
            except ViccUnavailable as exc:
                results["skipped"]["vicc"] = str(exc)
                say(f"vicc left out: {exc}")
                vicc_env = None
        try:
            results["inprocess"] = inprocess.run(cfg, worker, say)
        finally:
            if worker is not None:
                worker.close()

    failed = False
    if "pcsc" in parts:
        try:
            from . import pcsc
        except ImportError as exc:
            pcsc = None
            results["skipped"]["pcsc"] = f"pyscard is not installed ({exc})"
        if pcsc is not None:
            try:
                results["pcsc"] = pcsc.run(cfg, say, vicc_env)
            except pcsc.StackUnavailable as exc:
                results["skipped"]["pcsc"] = str(exc)
                say(f"PC/SC part skipped: {exc}")
            except Exception as exc:  # noqa: BLE001 - a card or pcscd misbehaved: report it, keep the rest
                failed = True
                results["skipped"]["pcsc"] = f"failed: {type(exc).__name__}: {exc}"
                traceback.print_exc(file=err)

    if "scale" in parts:
        from . import scale

        results["scale"] = scale.run(cfg.scale, cfg.image_dir, say)

    from .report import evaluate_targets, render

    results["wall_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = evaluate_targets(results)
    print(render(results), file=out)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
        say(f"wrote {args.json}")
    return 1 if failed else 0
