"""Card processes for the PC/SC benchmark (``python -m cardos.bench.cardproc KIND``).

``floor``
    The transport floor: the least a vpcd card can do. It answers its ATR
    and ``9000`` to every APDU at once, with the same socket options as
    ``cardos serve`` (``TCP_NODELAY``; ``TCP_QUICKACK`` after every receive).
``memory``
    The bench card issued in memory (persistence off), served by the same
    :class:`cardos.transports.vpcd.Slot` code as ``cardos serve`` (which
    serves image files: persistence on).

Both run until SIGTERM / SIGINT.
"""
from __future__ import annotations

import argparse
import signal
import socket
import sys

from ..card import make_atr

FLOOR_ATR = make_atr(b"CARDOS FLOOR")
_OK = b"\x00\x02\x90\x00"


def floor(host: str, port: int) -> int:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    recv_into = sock.recv_into
    setsockopt = sock.setsockopt
    tcp, quickack = socket.IPPROTO_TCP, socket.TCP_QUICKACK
    buf = bytearray(65536)
    view = memoryview(buf)
    atr_message = len(FLOOR_ATR).to_bytes(2, "big") + FLOOR_ATR
    print("floor: serving", flush=True)

    def read(n: int) -> None:
        got = 0
        while got < n:
            k = recv_into(view[got:n])
            if not k:
                raise EOFError
            setsockopt(tcp, quickack, 1)
            got += k

    try:
        while True:
            read(2)
            n = buf[0] << 8 | buf[1]
            read(n)
            if n == 1:
                if buf[0] == 0x04:
                    sock.sendall(atr_message)
            else:
                sock.sendall(_OK)
    except (EOFError, OSError):
        return 0


def memory(host: str, port: int, serial: int) -> int:
    from ..transports.vpcd import Slot
    from .workload import make_card

    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    slot = Slot(make_card(serial), host, port)
    slot.start()
    error = slot.wait_ready(10)
    if error is not None:
        print(f"memory card: {error}", file=sys.stderr)
        return 3
    print("memory card: serving", flush=True)
    signal.sigwait(signals)
    slot.stop()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cardos.bench.cardproc")
    parser.add_argument("kind", choices=["floor", "memory"])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=35963)
    parser.add_argument("--serial", type=int, default=1)
    args = parser.parse_args(argv)
    if args.kind == "floor":
        return floor(args.host, args.port)
    return memory(args.host, args.port, args.serial)


if __name__ == "__main__":
    sys.exit(main())
