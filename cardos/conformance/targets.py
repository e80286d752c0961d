"""What the conformance suite talks to.

Three kinds of target, one interface (``transmit(bytes) -> bytes`` raising
:class:`~cardos.conformance.channel.CardMute` when the card does not answer,
``power_cycle() -> ATR``, ``close()``):

* ``emulator`` — a card object in this process (a new blank :class:`cardos.Card`,
  a copy of a card image, or what a ``module:callable`` factory returns). It
  also offers :attr:`card` (the power-cut hook) and :meth:`spare_card`.
* ``vpcd`` — the same card served into a running pcscd through the vpcd
  driver (``cardos.transports.vpcd``), reached through PC/SC like a real card.
* ``reader`` — a card in any PC/SC reader (``--cardos-reader NAME``: exact
  name, index, or a unique part of the name).

Emulator and vpcd targets hold a card of ours (a copy: an image given with
``--cardos-card`` is never modified), so destructive tests always run there.
"""
from __future__ import annotations

import importlib
import shutil
import tempfile
import time
from pathlib import Path

from .channel import CardMute

VPCD_FIRST_PORT = 35963


class TargetError(Exception):
    """The target cannot be opened (no reader, no card, no pcscd, bad image).

    ``exit_code`` follows docs/cli.md: 3 when the transport is missing (pcscd,
    reader, card), 2 when what the user named is wrong (image, factory, options)."""

    def __init__(self, message: str, exit_code: int = 3):
        super().__init__(message)
        self.exit_code = exit_code


INPUT = 2  # TargetError exit code for a bad image, factory or option combination


def load_factory(spec: str):
    """``"package.module:callable"`` → the callable (returns a card object)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"card factory {spec!r}: write MODULE:CALLABLE", INPUT)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"card factory {spec!r}: {exc}", INPUT) from None
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise TargetError(f"card factory {spec!r}: {module_name} has no {attr!r}", INPUT) from None
    return factory


def image_factory(path: str, workdir: Path):
    """A factory of card objects, each on its own copy of the image at ``path``."""
    from .. import Card, ImageError

    source = Path(path)
    if not source.is_file():
        raise TargetError(f"{path}: no such card image (create one with `cardos new {path}`)", INPUT)
    counter = [0]

    def factory():
        counter[0] += 1
        copy = workdir / f"card-{counter[0]}.json"
        try:
            shutil.copyfile(source, copy)
        except OSError as exc:
            raise TargetError(f"{path}: cannot read the card image ({exc.strerror})", INPUT) from None
        try:
            return Card.open(copy)
        except ImageError as exc:
            raise TargetError(f"{path}: {exc.problem}", INPUT) from None  # the user's file, not the copy
    factory()  # fail early on a bad image
    return factory


def blank_factory():
    from .. import Card

    return Card.blank()


class EmulatorTarget:
    """A card object in this process."""

    kind = "emulator"
    emulator = True

    def __init__(self, factory, label: str):
        self.factory = factory
        self.label = label
        self.card = factory()
        self.atr = bytes(self.card.power_on())

    def transmit(self, apdu: bytes) -> bytes:
        response = bytes(self.card.transmit(apdu))
        if len(response) < 2:
            raise CardMute("the card answered nothing (power lost)")
        return response

    def power_cycle(self) -> bytes:
        self.card.power_off()
        self.atr = bytes(self.card.power_on())
        return self.atr

    def spare_card(self):
        """Another card from the same factory (for irreversible tests)."""
        return self.factory()

    def close(self) -> None:
        self.card.power_off()


class PcscTarget:
    """A card reached through PC/SC (pyscard)."""

    emulator = False
    card = None

    def __init__(self, spec: str, kind: str = "reader", connect_timeout: float = 0.0):
        from ..scripting.transport import PcscTransport, TransportError

        self.kind = kind
        self._error = TransportError
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.transport = PcscTransport(spec)
                break
            except TransportError as exc:
                if time.monotonic() >= deadline:
                    raise TargetError(str(exc)) from None
                time.sleep(0.05)
        self.label = self.transport.label
        self.atr = self.transport.atr

    def transmit(self, apdu: bytes) -> bytes:
        try:
            response = self.transport.transmit(apdu)
        except self._error as exc:
            raise CardMute(str(exc)) from None
        if len(response) < 2:
            raise CardMute("the card answered nothing")
        return response

    def power_cycle(self) -> bytes:
        try:
            self.atr = self.transport.reset(cold=True)
        except self._error as exc:
            raise CardMute(str(exc)) from None
        return self.atr

    def spare_card(self):
        return None

    def close(self) -> None:
        self.transport.close()


class VpcdTarget(PcscTarget):
    """Our card in a vpcd slot of a running pcscd, reached through PC/SC."""

    emulator = True

    def __init__(self, factory, label: str, host: str = "localhost", port: int = VPCD_FIRST_PORT,
                 reader: str | None = None):
        from ..transports.diagnose import VpcdError
        from ..transports.vpcd import Slot, VpcdServer

        card = factory()
        self.factory = factory  # spare copies (the pre-flight key check)
        self.server = VpcdServer([Slot(card, host, port)])
        try:
            self.server.start(timeout=10)
        except VpcdError as exc:
            raise TargetError(f"vpcd: {exc}") from None
        name = reader or f"Virtual PCD 00 {port - VPCD_FIRST_PORT:02d}"
        try:
            super().__init__(name, kind="vpcd", connect_timeout=10.0)
        except TargetError:
            self.server.stop()
            raise
        self.card = card
        self.label = f"{label}, served into pcscd as {self.transport.label!r}"

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.server.stop()


def open_target(*, card: str | None = None, reader: str | None = None, factory: str | None = None,
                vpcd: bool = False, vpcd_port: int = VPCD_FIRST_PORT, workdir: Path | None = None):
    """Open the target the options name (see the module docstring)."""
    if reader is not None and not vpcd:
        if card is not None or factory is not None:
            raise TargetError("give either a reader or an emulated card (--cardos-card / --cardos-factory)", INPUT)
        return PcscTarget(reader)
    if card is not None and factory is not None:
        raise TargetError("give either --cardos-card or --cardos-factory", INPUT)
    if card is not None:
        workdir = workdir or Path(tempfile.mkdtemp(prefix="cardos-conformance-"))
        make, label = image_factory(card, workdir), f"emulator: a copy of card image {card}"
    elif factory is not None:
        make, label = load_factory(factory), f"emulator: card factory {factory}"
    else:
        make, label = blank_factory, "emulator: a new blank card in memory"
    if vpcd:
        return VpcdTarget(make, label, port=vpcd_port, reader=reader)
    return EmulatorTarget(make, label)
