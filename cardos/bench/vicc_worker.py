"""The vicc side of the benchmark, run as its own process (never imported by cardos).

It imports vsmartcard's ``virtualsmartcard`` package (GPL; Debian
``python3-virtualsmartcard``) at run time from the path the parent gives in
``PYTHONPATH`` (see :mod:`cardos.bench.vicc`); nothing of it is copied here.
Its ``iso7816`` card has an empty MF, so this adds the same files as the
bench card has for the ISO APDUs: a 128-byte transparent EF 0011 (SFI 11)
and a cyclic EF 0018 (SFI 18) of ten 23-byte records.

``inprocess``: reads a sample count per line on stdin, times
``Iso7816OS.execute`` for each ISO APDU with :func:`cardos.bench.stats.sample`
and answers one JSON line of samples (ns) per request.

``serve``: runs vicc's own ``VirtualICC`` loop against vpcd, with the same
socket options as ``cardos serve``: ``TCP_QUICKACK`` re-armed after every
receive (bookworm's vpcd otherwise stalls ~44 ms per APDU) and ``TCP_NODELAY``.
"""
from __future__ import annotations

import argparse
import json
import logging
import socket
import sys

from .stats import sample
from .workload import OPS, RECORD_LENGTH, check

ISO_OPS = [op for op in OPS if op.iso]


def _add_files(mf) -> None:
    from virtualsmartcard.ConstantDefinitions import FDB
    from virtualsmartcard.SmartcardFilesystem import (
        Record,
        RecordStructureEF,
        TransparentStructureEF,
    )

    mf.append(TransparentStructureEF(parent=mf, fid=0x0011, shortfid=0x11, data=b"\xa5" * 128))
    records = [Record(None, bytes((i,)) * RECORD_LENGTH) for i in range(10)]
    mf.append(RecordStructureEF(parent=mf, fid=0x0018, filedescriptor=FDB["EFSTRUCTURE_CYCLIC_NOFURTHERINFO"],
                                shortfid=0x18, maxrecordsize=RECORD_LENGTH, records=records))


def inprocess() -> int:
    logging.basicConfig(level=logging.CRITICAL)  # as vicc without -v
    from virtualsmartcard.CardGenerator import CardGenerator
    from virtualsmartcard.VirtualSmartcard import Iso7816OS

    mf, sam = CardGenerator("iso7816").getCard()
    _add_files(mf)
    card = Iso7816OS(mf, sam)
    execute = card.execute
    for op in ISO_OPS:  # vicc's files are in its MF: SELECT MF is the setup
        execute(bytes.fromhex("00A4000C023F00"))
        check(op, execute(op.apdu), "vicc in-process")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        n = int(line)
        out = {}
        for op in ISO_OPS:
            execute(bytes.fromhex("00A4000C023F00"))
            apdu = op.apdu
            out[op.key] = sample(lambda a=apdu: execute(a), n, warmup=min(200, n))
        print(json.dumps(out), flush=True)
    return 0


class _QuickAckSocket:
    """vicc's socket with TCP_QUICKACK re-armed after every ``recv`` (Linux clears it)."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def recv(self, *args):
        data = self._sock.recv(*args)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return data

    def __getattr__(self, name):
        return getattr(self._sock, name)


def serve(host: str, port: int) -> int:
    from virtualsmartcard.VirtualSmartcard import VirtualICC

    vicc = VirtualICC(None, "iso7816", host, port, logginglevel=logging.CRITICAL)
    _add_files(vicc.os.mf)
    vicc.sock = _QuickAckSocket(vicc.sock)
    print("vicc: serving", flush=True)
    vicc.run()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cardos.bench.vicc_worker")
    parser.add_argument("mode", choices=["inprocess", "serve"])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=35963)
    args = parser.parse_args(argv)
    if args.mode == "inprocess":
        return inprocess()
    return serve(args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
