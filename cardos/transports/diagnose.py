"""Why a card cannot reach vpcd: one line naming the problem and its fix.

Checked in this order when the vpcd port refuses the connection on this
machine: is pcscd running (its client socket, ``$PCSCLITE_CSOCK_NAME`` or
``/run/pcscd/pcscd.comm``, accepts connections)? Is the vpcd driver
configured (a file in ``/etc/reader.conf.d`` whose ``LIBPATH`` names
``libifdvpcd``)? Is the port one of its slots? If all that holds, the
running pcscd did not load the driver (it was installed after pcscd
started) and needs a restart.
"""
from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path

PCSCD_SOCKET = "/run/pcscd/pcscd.comm"
READER_CONF_DIR = "/etc/reader.conf.d"
VPCD_SLOTS = 2  # Debian's vsmartcard-vpcd is built with two slots per DEVICENAME
EXIT_CODE = 3   # transport problem (2 is a usage or image error)


class VpcdError(Exception):
    """A connection problem; ``str()`` is one line that names the fix."""

    exit_code = EXIT_CODE


def pcscd_socket_path() -> str:
    """Where PC/SC clients find pcscd (pcsc-lite honours ``PCSCLITE_CSOCK_NAME``)."""
    return os.environ.get("PCSCLITE_CSOCK_NAME") or PCSCD_SOCKET


def pcscd_running(path: str | None = None) -> bool:
    """True if pcscd's client socket accepts a connection (this also wakes a
    socket-activated pcscd)."""
    path = path or pcscd_socket_path()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def pcscd_pids() -> list[int]:
    """PIDs of running ``pcscd`` processes (Linux ``/proc``; empty elsewhere)."""
    pids = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return pids
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    stat = f.read()
            except OSError:
                continue
            name, _, rest = stat.partition("(")[2].rpartition(")")
            if name == "pcscd" and rest.split()[:1] != ["Z"]:  # not a zombie
                pids.append(int(entry))
    return pids


def vpcd_config(conf_dir: str = READER_CONF_DIR) -> list[tuple[str, int, str]]:
    """``(file, first port, driver path)`` for each vpcd reader stanza (card-connects mode).

    A stanza is ``FRIENDLYNAME``/``DEVICENAME``/``LIBPATH``/``CHANNELID`` lines;
    vpcd's ``DEVICENAME /dev/null:PORT`` opens slots on PORT, PORT+1, …
    """
    found = []
    try:
        names = sorted(os.listdir(conf_dir))
    except OSError:
        return found
    for name in names:
        path = os.path.join(conf_dir, name)
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        device = lib = None
        for line in text.splitlines() + ["FRIENDLYNAME end"]:
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            key = words[0].upper()
            if key == "FRIENDLYNAME" and lib is not None:
                _add_stanza(found, path, device, lib)
                device = lib = None
            elif key == "DEVICENAME" and len(words) > 1:
                device = words[1]
            elif key == "LIBPATH" and len(words) > 1:
                lib = words[1]
    return found


def _add_stanza(found, path, device, lib) -> None:
    if "vpcd" not in os.path.basename(lib) or not device or not device.startswith("/dev/null"):
        return
    _, _, port_text = device.partition(":")
    try:
        port = int(port_text, 0) if port_text else 0x8C7B
    except ValueError:
        return
    found.append((path, port, lib))


def is_local(host: str) -> bool:
    if host in ("localhost", "::1", "", socket.gethostname()) or host.startswith("127."):
        return True
    try:
        return all(info[4][0].startswith("127.") or info[4][0] == "::1"
                   for info in socket.getaddrinfo(host, None))
    except OSError:
        return False


def await_activation(host: str, port: int, timeout: float, grace: float = 1.5):
    """After a refused connection: if no pcscd process runs but its socket
    accepts connections (systemd socket activation), the poke just started
    pcscd — retry for up to ``grace`` s. Returns a connected socket or None."""
    if not is_local(host) or pcscd_pids() or not pcscd_running():
        return None
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except OSError:
            continue
    return None


def _ports_text(ports: list[int]) -> str:
    return ", ".join(str(p) for p in ports)


def explain_connect_error(host: str, port: int, exc: BaseException, *, socket_path: str | None = None,
                          conf_dir: str = READER_CONF_DIR) -> VpcdError:
    """Turn a failed connection to ``host:port`` into a one-line :class:`VpcdError`."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return VpcdError(f"cannot resolve the vpcd host {host!r} ({exc.strerror}); check --vpcd HOST:PORT")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return VpcdError(f"connecting to vpcd at {where} timed out: the slot is busy (another card sits in it) "
                         "or a firewall drops the connection; free the slot or check the firewall")
    if isinstance(exc, EOFError) or (isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE)):
        return VpcdError(f"vpcd at {where} closed the connection before polling the card: pcscd stopped or the "
                         "port is not a vpcd slot; check that pcscd runs with the vpcd driver")
    if not isinstance(exc, ConnectionRefusedError):
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return VpcdError(f"cannot connect to vpcd at {where}: {reason}; check --vpcd HOST:PORT and the network")
    if not is_local(host):
        return VpcdError(f"connection to vpcd at {where} refused: start pcscd with the vpcd driver "
                         f"(vsmartcard-vpcd) on {host}, or use one of its slot ports (35963, 35964)")
    path = socket_path or pcscd_socket_path()
    if not pcscd_running(path):
        return VpcdError(f"cannot connect to vpcd at {where}: pcscd is not running (nothing answers on {path}); "
                         "start it with `pcscd` as root (or `systemctl start pcscd`), then retry")
    stanzas = vpcd_config(conf_dir)
    if not stanzas:
        return VpcdError(f"cannot connect to vpcd at {where}: pcscd runs but the vpcd driver is not configured "
                         f"(no vpcd reader in {conf_dir}); install it with `apt-get install vsmartcard-vpcd`, "
                         "then restart pcscd")
    missing = [lib for _, _, lib in stanzas if not os.path.exists(lib)]
    if missing and len(missing) == len(stanzas):
        return VpcdError(f"cannot connect to vpcd at {where}: the vpcd driver {missing[0]} is missing; "
                         "reinstall it with `apt-get install --reinstall vsmartcard-vpcd`, then restart pcscd")
    ports = sorted({base + i for _, base, _ in stanzas for i in range(VPCD_SLOTS)})
    if port not in ports:
        return VpcdError(f"nothing listens on {where}: the vpcd slots are on port(s) {_ports_text(ports)} "
                         f"({stanzas[0][0]}); use --vpcd {host}:{ports[0]}")
    return VpcdError(f"cannot connect to vpcd at {where}: pcscd runs but has not loaded the vpcd driver; "
                     f"restart pcscd so that it reads {stanzas[0][0]}")


def busy_message(host: str, port: int) -> str:
    return (f"vpcd slot {host}:{port} is busy: it accepted the connection but never polled the card, so another "
            f"card (another `cardos serve`, vicc) already sits in it or the port is not a vpcd slot; stop that "
            f"card or use another slot (--vpcd {host}:{port + 1 if port == 35963 else 35963})")
