"""Finding vsmartcard's vicc and running it beside our card (see :mod:`cardos.bench.vicc_worker`).

Debian bookworm's ``python3-virtualsmartcard`` has two packaging bugs:
the package sits in ``/usr/lib/python3/site-packages/virtualsmartcard``
(not on ``sys.path``), and it imports ``Crypto`` while
``python3-pycryptodome`` installs ``Cryptodome``. The worker gets both on
its ``PYTHONPATH``: the package directory, and a private directory with
``Crypto`` and ``Cryptodome`` symlinks to Debian's ``Cryptodome``. The
worker runs on the same interpreter as the benchmark, so the in-process
comparison is interpreter for interpreter.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VICC_PATHS = ["/usr/lib/python3/site-packages/virtualsmartcard"]
CRYPTODOME_PATHS = ["/usr/lib/python3/dist-packages/Cryptodome"]
INSTALL_HINT = ("apt-get install vsmartcard-vpicc python3-virtualsmartcard python3-pycryptodome "
                "(./dev.sh setup installs them)")


class ViccUnavailable(Exception):
    pass


def _find(paths, inner: str) -> Path | None:
    for p in paths:
        if (Path(p) / inner).exists():
            return Path(p)
    return None


_shim_dir: str | None = None


def worker_env() -> dict:
    """Environment for the worker process; raises :class:`ViccUnavailable` (with the fix)."""
    global _shim_dir
    extra = os.environ.get("CARDOS_BENCH_VICC_PATH")
    vicc_dir = _find(([extra] if extra else []) + VICC_PATHS, "virtualsmartcard/VirtualSmartcard.py")
    if vicc_dir is None:
        raise ViccUnavailable(f"vsmartcard's virtualsmartcard package not found ({INSTALL_HINT})")
    paths = [str(vicc_dir)]
    cryptodome = _find(CRYPTODOME_PATHS, "__init__.py")
    if cryptodome is None:
        raise ViccUnavailable(f"Debian's Cryptodome package not found ({INSTALL_HINT})")
    if _shim_dir is None:
        _shim_dir = tempfile.mkdtemp(prefix="cardos-bench-vicc-")
        atexit.register(shutil.rmtree, _shim_dir, True)
        for name in ("Crypto", "Cryptodome"):
            os.symlink(cryptodome, os.path.join(_shim_dir, name))
    paths.append(_shim_dir)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def worker_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cardos.bench.vicc_worker", *args]


class InProcessWorker:
    """vicc's ``Iso7816OS.execute`` timed in its own process, one round per request."""

    def __init__(self):
        self.proc = subprocess.Popen(worker_command("inprocess"), env=worker_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("{"):
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.close()
            raise ViccUnavailable(f"vicc worker did not start: {err.strip().splitlines()[-1:] or line!r}")

    def round(self, n: int) -> dict:
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"vicc worker died: {self.proc.stderr.read()[-500:]}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
