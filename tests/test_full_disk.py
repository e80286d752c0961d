"""A full disk and a read-only file system, for real: a small tmpfs mounted for the test (as root).

`cardos serve` on a full disk answers ``6581`` and logs one line (no traceback), and the PIN it is
asked about is never raised nor found by guessing; `cardos issue --card` says in one line that
nothing was written; a read-only directory is refused when the image is opened, naming the lock.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cardos import Card, ImageError

from .pcsc_fixtures import ROOT, cardos_command
from .test_cli_security import FakeVpcd

SELECT_ADF = bytes.fromhex("00A4040009A0000000038698070100")


@pytest.fixture
def small_fs(tmp_path):
    """A 256 KiB tmpfs of its own (skipped where this process may not mount)."""
    where = tmp_path / "fs"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(where)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def issued_image(where: Path) -> Path:
    image = where / "city.card"
    run = subprocess.run(cardos_command("issue", "--profile", "city", "--keys", "test", "--serial", "9",
                                        "--out", str(image)), cwd=ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    return image


def fill(where: Path) -> None:
    """Leave no free block (the kernel answers ENOSPC to the next write)."""
    fd = os.open(where / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_serve_on_a_full_disk_answers_6581_logs_one_line_and_counts_every_try(small_fs):
    image = issued_image(small_fs)
    before = image.read_bytes()
    fill(small_fs)
    vpcd = FakeVpcd()
    proc = subprocess.Popen(cardos_command("serve", str(image), "--vpcd", f"127.0.0.1:{vpcd.port}"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        vpcd.accept()
        vpcd.power_on()
        assert vpcd.exchange(SELECT_ADF)[-2:] == b"\x90\x00"
        answers = [vpcd.exchange(bytes.fromhex(f"0020000003{pin}")) for pin in ("111111", "123456", "222222",
                                                                                  "123456")]
        assert answers == [b"\x65\x81"] * 3 + [b"\x69\x83"]      # right or wrong: 6581; then blocked
        assert vpcd.exchange(bytes.fromhex("805C000104"))[-2:] == b"\x69\x82"  # ED balance: never verified
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
        vpcd.close()
    assert "Traceback" not in err
    saves = [line for line in err.splitlines() if "could not be saved" in line]
    assert len(saves) == 3 and all("No space left on device" in line for line in saves)
    assert "123456" not in err
    assert image.read_bytes() == before


def test_issue_onto_a_card_on_a_full_disk_is_one_line_and_changes_nothing(small_fs):
    image = issued_image(small_fs)
    before = image.read_bytes()
    fill(small_fs)
    run = subprocess.run(cardos_command("issue", "--add-app", "campus", "--keys", "test", "--card", str(image)),
                         cwd=ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "No space left on device" in run.stderr and "nothing was changed" in run.stderr
    assert image.read_bytes() == before
    assert not list(small_fs.glob(".*.tmp")) and not list(small_fs.glob(".*.lock"))


def test_a_read_only_file_system_is_refused_when_the_image_is_opened(small_fs):
    image = issued_image(small_fs)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    with pytest.raises(ImageError, match="cannot create its lock file .*Read-only file system"):
        Card.open(image)
    run = subprocess.run(cardos_command("serve", str(image), "--wait", "--vpcd", "127.0.0.1:9"), cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 2 and "Read-only file system" in run.stderr and "Traceback" not in run.stderr
    inspect = subprocess.run(cardos_command("inspect", str(image)), cwd=ROOT, capture_output=True, text=True,
                             check=False)
    assert inspect.returncode == 0                              # reading needs no lock
    assert os.access(image, os.R_OK)
