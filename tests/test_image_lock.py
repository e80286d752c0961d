"""One image lock for every writer, and the files beside an image that cannot be planted.

The issue's reproductions: a card served by ``cardos serve`` and loaded by ``cardos run`` at the
same time; a ``cardos shell`` open while ``cardos issue --add-app`` adds an application. Every
subcommand that writes an image is refused while another process holds it, with the holder's PID
and command; ``cardos inspect`` still reads it. Planted links and files at the lock's and the
temporary file's names are refused without touching their targets; symlinks and hard links can't
give two writers.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cardos import Card, ImageError
from cardos.store import ImageBusy

from .conftest import Terminal, hx
from .pcsc_fixtures import FIRST_PORT, cardos_command, free_tcp_port, pcsc_connection, reader_name
from .purse_util import SELECT_ADF

ROOT = Path(__file__).resolve().parent.parent
READER0 = reader_name(FIRST_PORT)
NOBODY = 65534


def lock_of(image: Path) -> Path:
    return image.with_name(f".{image.name}.lock")


def tmp_of(image: Path) -> Path:
    return image.with_name(f".{image.name}.tmp")


@pytest.fixture(scope="module")
def city_image(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("city") / "s.card"
    run = cardos("issue", "--profile", "city", "--keys", "test", "--serial", "1", "--out", str(path))
    assert run.returncode == 0, run.stderr
    return path.read_bytes()


@pytest.fixture
def issued(tmp_path, city_image) -> Path:
    """A city card (test keys, PIN 123456) as an image, not held by anyone."""
    path = tmp_path / "s.card"
    path.write_bytes(city_image)
    path.chmod(0o600)
    return path


def cardos(*args, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(cardos_command(*args), input=stdin, capture_output=True, text=True, timeout=120,
                          cwd=cwd or ROOT, check=False)


class Holder:
    """``cardos shell --card IMAGE`` left open on a pipe: it holds the image the way a user's shell does."""

    def __init__(self, image: Path, *args: str):
        self.image = image
        self.proc = subprocess.Popen(cardos_command("shell", "--card", str(image), *args), cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 20
        while not lock_of(image).exists() or not lock_of(image).read_text().strip():
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "the shell never locked the image"
            time.sleep(0.05)

    def finish(self, commands: str = "") -> tuple[int, str, str]:
        out, err = self.proc.communicate(commands, timeout=60)
        return self.proc.returncode, out, err


def test_a_second_opener_in_the_same_process_is_refused_and_the_lock_goes_with_close(issued):
    card = Card.open(issued)
    with pytest.raises(ImageBusy, match=rf"in use by another process \(pid {os.getpid()}, "):
        Card.open(issued)
    assert lock_of(issued).exists()
    card.close()
    assert not lock_of(issued).exists()                     # removed on a clean close
    Card.open(issued).close()


def test_no_lock_file_for_an_image_that_fails_to_load(tmp_path):
    bad = tmp_path / "bad.card"
    bad.write_text("{}")
    for path in (bad, tmp_path / "missing.card"):
        with pytest.raises(ImageError):
            Card.open(path)
        assert not lock_of(path).exists()
        assert cardos("run", "-", "--card", str(path), stdin="00A40000023F00\n").returncode == 2
        assert not lock_of(path).exists()


WRITERS = {
    "run": lambda img, tmp: ["run", str(write(tmp / "s.apdu", "00A40000023F00\n")), "--card", str(img)],
    "shell": lambda img, tmp: ["shell", "--card", str(img)],
    "issue --add-app": lambda img, tmp: ["issue", "--add-app", "campus", "--keys", "test", "--card", str(img)],
    "issue --reissue": lambda img, tmp: ["issue", "--profile", "city", "--keys", "test", "--card", str(img),
                                         "--reissue"],
    "serve": lambda img, tmp: ["serve", str(img), "--wait", "--vpcd", f"127.0.0.1:{free_tcp_port()}"],
}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def held(issued):
    holder = Holder(issued)
    yield holder
    holder.finish()


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_is_refused_while_a_shell_holds_the_image(held, tmp_path, writer):
    before = held.image.read_bytes()
    run = cardos(*WRITERS[writer](held.image, tmp_path), stdin="info\n")
    assert run.returncode == 2, run.stderr
    assert f"in use by another process (pid {held.proc.pid}, cardos shell)" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert held.image.read_bytes() == before


@pytest.mark.parametrize("writer", [w for w in WRITERS if w != "serve"] + ["demo --image", "new"])
def test_every_writer_is_refused_while_serve_holds_the_image(serve_process, issued, tmp_path, writer):
    served = serve_process(str(issued), "--wait", "--vpcd", f"127.0.0.1:{free_tcp_port()}")
    before = issued.read_bytes()
    if writer in WRITERS:
        run = cardos(*WRITERS[writer](issued, tmp_path), stdin="info\n")
        assert run.returncode == 2, run.stderr
        assert f"in use by another process (pid {served.pid}, cardos serve)" in run.stderr
    else:  # these make new images: they refuse an existing one whoever holds it
        args = ["demo", "--image", str(issued)] if writer == "demo --image" else ["new", str(issued)]
        run = cardos(*args)
        assert run.returncode == 2 and "already exists" in run.stderr
    assert "Traceback" not in run.stderr
    assert issued.read_bytes() == before


def test_inspect_reads_an_image_in_use(held):
    run = cardos("inspect", str(held.image))
    assert run.returncode == 0 and "A00000000386980701" in run.stdout.replace(" ", "")


def test_shell_load_and_add_app_lose_nothing(issued):
    """The issue's reproduction without pcscd: shell open, add-app elsewhere, then a load in the shell."""
    holder = Holder(issued, "--keys", "test")
    refused = cardos("issue", "--add-app", "campus", "--keys", "test", "--card", str(issued))
    assert refused.returncode == 2 and "in use by another process" in refused.stderr
    rc, out, err = holder.finish("load 1.00\nbalance\n")
    assert rc == 0, err
    added = cardos("issue", "--add-app", "campus", "--keys", "test", "--card", str(issued))
    assert added.returncode == 0, added.stderr
    with Card.open(issued) as card:
        t = Terminal(card)
        t.ok(SELECT_ADF)
        assert t.ok("805C000204") == hx("00000064")          # the shell's load of 1.00 is there
        t.ok("00A40000023F00")
        t.ok("00A404000DF0434152444F5343414D505553")           # and so is the campus application


def test_serve_and_run_on_one_image_lose_nothing(serve_process, vpcd, pcscd, issued, tmp_path):
    """The issue's reproduction through pcscd: serve, then `cardos run` loads, then a purchase."""
    served = serve_process(str(issued))
    pcscd.wait_card(READER0, present=True)
    load = write(tmp_path / "load.apdu", "00A4040009A00000000386980701\n")
    refused = cardos("run", str(load), "--card", str(issued))
    assert refused.returncode == 2
    assert f"in use by another process (pid {served.pid}, cardos serve)" in refused.stderr
    connection = pcsc_connection(READER0)
    data, sw1, sw2 = connection.transmit(list(hx(SELECT_ADF + "00")))
    assert (sw1, sw2) == (0x90, 0x00)
    data, sw1, sw2 = connection.transmit(list(hx("0020000003999999")))   # a commit through the reader
    assert (sw1, sw2) == (0x63, 0xC2)
    connection.disconnect()
    served.signal(15)
    assert served.wait() == 0
    assert not lock_of(issued).exists()
    assert cardos("run", str(load), "--card", str(issued)).returncode == 0
    with Card.open(issued) as card:                            # nothing lost: the served commit is there
        t = Terminal(card)
        t.ok(SELECT_ADF)
        assert t.sw("0020000003999999") == 0x63C1


# -- files beside the image ----------------------------------------------------------------------

def test_a_symlink_planted_at_the_lock_is_refused_and_its_target_untouched(issued, tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    lock_of(issued).symlink_to(target)
    with pytest.raises(ImageError, match="lock file .* is a symbolic link"):
        Card.open(issued)
    run = cardos("serve", str(issued), "--wait", "--vpcd", f"127.0.0.1:{free_tcp_port()}")
    assert run.returncode == 2 and "symbolic link" in run.stderr
    assert target.read_text() == "precious\n"


def test_a_lock_file_of_another_user_is_refused(issued):
    lock_of(issued).write_text("")
    os.chown(lock_of(issued), NOBODY, NOBODY)
    with pytest.raises(ImageError, match="belongs to another user"):
        Card.open(issued)


def test_a_temporary_file_planted_by_another_user_never_becomes_the_image(issued):
    planted = tmp_of(issued)
    planted.write_text("planted\n")
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(ImageError, match="belongs to another user"):
        Card.open(issued)                                      # refused when opening
    planted.unlink()
    card = Card.open(issued)
    t = Terminal(card)
    t.ok(SELECT_ADF)
    planted.write_text("planted\n")
    os.chown(planted, NOBODY, NOBODY)                          # ... and when saving
    before = issued.read_bytes()
    assert t.sw("0020000003123456") == 0x6581
    assert issued.read_bytes() == before and planted.read_text() == "planted\n"
    assert planted.stat().st_uid == NOBODY and issued.stat().st_uid == os.geteuid()
    card.close()


def test_a_symlinked_image_is_resolved_once_and_the_real_file_updated(issued, tmp_path):
    link = tmp_path / "link.card"
    link.symlink_to(issued)
    with Card.open(link) as card:
        with pytest.raises(ImageBusy):
            Card.open(issued)                                   # one lock for both names
        t = Terminal(card)
        t.ok(SELECT_ADF)
        t.ok("0020000003123456")
        assert t.sw("0020000003999999") == 0x63C2              # saved
    assert link.is_symlink() and os.readlink(link) == str(issued)
    with Card.open(issued) as card:                            # the real file has the counter
        t = Terminal(card)
        t.ok(SELECT_ADF)
        assert t.sw("0020000003999999") == 0x63C1


def test_two_servers_through_a_symlink_cannot_both_start(serve_process, issued, tmp_path):
    link = tmp_path / "other-name.card"
    link.symlink_to(issued)
    env = {"PCSCLITE_CSOCK_NAME": str(tmp_path / "nothing.comm")}
    first = serve_process(str(issued), "--wait", "--vpcd", f"127.0.0.1:{free_tcp_port()}", env=env)
    second = cardos("serve", str(link), "--wait", "--vpcd", f"127.0.0.1:{free_tcp_port()}")
    assert second.returncode == 2 and f"pid {first.pid}, cardos serve" in second.stderr


def test_a_hard_linked_image_is_refused(issued, tmp_path):
    os.link(issued, tmp_path / "hard.card")
    for name in (issued, tmp_path / "hard.card"):
        with pytest.raises(ImageError, match="2 hard links"):
            Card.open(name)
        run = cardos("serve", str(name), "--wait", "--vpcd", f"127.0.0.1:{free_tcp_port()}")
        assert run.returncode == 2 and "hard links" in run.stderr


def test_an_image_replaced_behind_the_cards_back_is_not_overwritten(issued, tmp_path):
    with Card.open(issued) as card:
        t = Terminal(card)
        t.ok(SELECT_ADF)
        other = tmp_path / "other.card"
        other.write_text(issued.read_text())
        os.replace(other, issued)                               # another program writes the image
        replaced = issued.read_bytes()
        assert t.sw("0020000003999999") == 0x6581
        assert issued.read_bytes() == replaced


def test_durable_commit_whose_directory_sync_fails_is_found_by_the_proof(tmp_path, monkeypatch):
    """The purchase is in the image; the answer is 6581, and GET TRANSACTION PROOF tells the terminal.

    The directory fsync's failure is simulated (no file system here fails on demand)."""
    from cardos import store
    from cardos.terminal import purse as tx
    from cardos.terminal.host import LoadHost
    from cardos.terminal.psam import PSAM

    from .pcsc_fixtures import HOST_TERMINAL, POS_TERMINAL, issuer_keys, purse_image

    path = purse_image(tmp_path / "p.card")
    card = Card.open(path, durable=True)
    tx.select_application(card)
    tx.load(card, LoadHost(issuer_keys()), 1000, terminal=HOST_TERMINAL)

    def failing_directory_sync(self):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store.ImageStore, "_sync_directory", failing_directory_sync)
    before = path.read_bytes()
    with pytest.raises(tx.TransactionError) as refused:
        tx.purchase(card, PSAM(issuer_keys(), POS_TERMINAL), 200)
    assert refused.value.sw == 0x6581
    assert path.read_bytes() != before                         # the purchase reached the image
    assert tx.get_transaction_proof(card, 0x06, 0) is not None  # and the terminal's recovery finds it
    assert tx.get_balance(card) == 800
    card.close()
    with Card.open(path) as reopened:
        tx.select_application(reopened)
        assert tx.get_balance(reopened) == 800


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
