"""The one-line diagnostics of cardos.transports.diagnose, with a fake pcscd socket
and fake reader.conf.d directories (no pcscd, no root needed)."""
from __future__ import annotations

import errno
import socket

import pytest

from cardos.transports import diagnose
from cardos.transports.diagnose import VpcdError, explain_connect_error, vpcd_config

DEBIAN_VPCD = """FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x8C7B
LIBPATH      {lib}
CHANNELID    0x8C7B
"""


@pytest.fixture
def fake_pcscd(tmp_path):
    """Something accepting connections on a pcscd-like Unix socket."""
    path = str(tmp_path / "pcscd.comm")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    yield path
    server.close()


@pytest.fixture
def conf(tmp_path):
    d = tmp_path / "reader.conf.d"
    d.mkdir()
    lib = tmp_path / "libifdvpcd.so"
    lib.write_bytes(b"")

    def write(text=DEBIAN_VPCD, lib_path=str(lib)):
        (d / "vpcd").write_text(text.format(lib=lib_path))
        return str(d)
    write.dir = str(d)
    return write


REFUSED = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")


def explain(port=35963, host="localhost", exc=REFUSED, **kw) -> str:
    error = explain_connect_error(host, port, exc, **kw)
    assert isinstance(error, VpcdError) and "\n" not in str(error)
    return str(error)


def test_debian_config_is_parsed(conf):
    d = conf()
    assert vpcd_config(d) == [(f"{d}/vpcd", 0x8C7B, str(conf.dir).replace("reader.conf.d", "libifdvpcd.so"))]


def test_other_drivers_comments_and_reversed_mode_are_ignored(conf):
    d = conf("# comment\nFRIENDLYNAME x\nDEVICENAME /dev/ttyS0\nLIBPATH /usr/lib/libccidtwin.so\n\n"
             "FRIENDLYNAME rev\nDEVICENAME card.example:35963\nLIBPATH {lib}\n"
             "FRIENDLYNAME third\nDEVICENAME /dev/null:40000\nLIBPATH {lib}\n")
    assert [port for _, port, _ in vpcd_config(d)] == [40000]


def test_pcscd_not_running(tmp_path, conf):
    text = explain(socket_path=str(tmp_path / "none.comm"), conf_dir=conf())
    assert "pcscd is not running" in text and "start it with `pcscd` as root (or `systemctl start pcscd`)" in text


def test_vpcd_not_configured(fake_pcscd, conf):
    text = explain(socket_path=fake_pcscd, conf_dir=conf.dir)
    assert "the vpcd driver is not configured" in text and "apt-get install vsmartcard-vpcd" in text


def test_vpcd_driver_file_missing(fake_pcscd, conf, tmp_path):
    text = explain(socket_path=fake_pcscd, conf_dir=conf(lib_path=str(tmp_path / "gone" / "libifdvpcd.so")))
    assert "is missing" in text and "--reinstall vsmartcard-vpcd" in text


def test_vpcd_not_loaded_by_the_running_pcscd(fake_pcscd, conf):
    text = explain(35964, socket_path=fake_pcscd, conf_dir=conf())
    assert "pcscd runs but has not loaded the vpcd driver; restart pcscd" in text


def test_a_port_that_is_not_a_slot(fake_pcscd, conf):
    d = conf()
    assert explain(35999, socket_path=fake_pcscd, conf_dir=d) == (
        f"nothing listens on localhost:35999: the vpcd slots are on port(s) 35963, 35964 ({d}/vpcd); "
        "use --vpcd localhost:35963")


def test_remote_host_refused():
    text = explain(host="192.0.2.7")
    assert text.startswith("connection to vpcd at 192.0.2.7:35963 refused: start pcscd with the vpcd driver")


@pytest.mark.parametrize("exc, expected", [
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "cannot resolve the vpcd host"),
    (TimeoutError("timed out"), "timed out: the slot is busy"),
    (EOFError(), "closed the connection before polling the card"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "No route to host; check --vpcd"),
])
def test_other_failures(exc, expected):
    assert expected in explain(host="nohost.invalid", exc=exc)


def test_busy_message_suggests_the_other_slot():
    assert "--vpcd localhost:35964" in diagnose.busy_message("localhost", 35963)
    assert "--vpcd localhost:35963" in diagnose.busy_message("localhost", 35964)


def test_pcscd_running_follows_the_socket(fake_pcscd, tmp_path):
    assert diagnose.pcscd_running(fake_pcscd)
    assert not diagnose.pcscd_running(str(tmp_path / "none.comm"))


def test_exit_code_is_3():
    assert VpcdError("x").exit_code == 3
