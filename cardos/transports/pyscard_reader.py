"""An in-process pyscard reader: pyscard code talks to an emulated card, no pcscd.

:class:`EmulatedReader` subclasses pyscard's ``Reader`` and
:class:`EmulatedCardConnection` its ``CardConnection``, so everything built
on pyscard's connection API works unchanged: ``transmit``, observers
(``ConsoleCardConnectionObserver``), error-checking chains,
``CardConnectionDecorator`` subclasses, ``smartcard.Session``, the
``with`` statement. :func:`register` makes ``smartcard.System.readers()``
list the reader:

* ``mode="replace"`` (default) — only the emulated readers; pcscd and even
  libpcsclite are never touched.
* ``mode="append"`` — the PC/SC readers, then the emulated ones; when pcscd
  is not running the PC/SC part is just empty instead of raising.

>>> from cardos import Card
>>> from smartcard.System import readers
>>> reader = register(Card.blank())
>>> readers()
['cardos Emulated Reader 0']
>>> connection = readers()[0].createConnection()
>>> connection.connect()
>>> data, sw1, sw2 = connection.transmit([0x00, 0xA4, 0x00, 0x00, 0x02, 0x3F, 0x00])
>>> f"{sw1:02X}{sw2:02X}"
'6117'
>>> connection.disconnect()
>>> unregister(reader)

``trace=`` (a file name or a :class:`cardos.transports.trace.ApduTrace`)
records every APDU decoded, with timestamps, and the power and
insert/remove events, as ``cardos serve --trace`` does; ``cardos decode``
reads the file back. A trace opened from a file name is closed by
:func:`unregister`.

What does not apply: ``CardRequest``/``CardMonitor`` (and ``CardType``
waiting) are hard-wired to PC/SC (``SCardGetStatusChange``) and never see
an in-process reader; ``ExclusiveConnectCardConnection`` /
``ExclusiveTransmitCardConnection`` call PC/SC on the PC/SC handle. Use
``readers()`` and ``createConnection()`` directly, or ``ReaderMonitor``
(it polls ``readers()``). ``control()`` answers "unsupported"; ``getAttrib``
knows the ATR and vendor name only.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

from smartcard import scard
from smartcard.CardConnection import CardConnection
from smartcard.CardConnectionDecorator import CardConnectionDecorator
from smartcard.Exceptions import (
    CardConnectionException,
    CardServiceNotFoundException,
    CardServiceStoppedException,
    NoCardException,
    SmartcardException,
)
from smartcard.pcsc.PCSCExceptions import EstablishContextException
from smartcard.reader.Reader import Reader
from smartcard.reader.ReaderFactory import ReaderFactory

NAME = "cardos Emulated Reader {}"

T0 = CardConnection.T0_protocol
T1 = CardConnection.T1_protocol
_PROTOCOL_NAMES = {T0: "T0", T1: "T1"}


class EmulatedReader(Reader):
    """A reader slot holding an emulated card (``card`` may be None: empty reader).

    :meth:`insert` and :meth:`remove` simulate the card going in and out;
    connections made before a removal then fail like PC/SC ones
    (``SCARD_W_REMOVED_CARD``) until they ``reconnect()``. ``trace``: a
    file name or an :class:`~cardos.transports.trace.ApduTrace` for the
    decoded APDUs and the power and presence events.
    """

    def __init__(self, card=None, name: str = NAME.format(0), trace=None):
        Reader.__init__(self, name)
        self.lock = threading.RLock()
        self.trace, self._owns_trace = _open_trace(trace, name)
        self._card = card
        self._removed = False
        self._generation = 0
        self._connections = 0  # live connections (the last unpowers the card)

    @property
    def card(self):
        return self._card

    def insert(self, card=None) -> None:
        """Insert ``card`` (or put the removed card back)."""
        with self.lock:
            if card is not None:
                self._card = card
            elif self._card is None:
                raise ValueError("no card to insert")
            self._removed = False
            self._generation += 1
            self.event("card inserted")

    def remove(self) -> None:
        """Pull the card out (it loses power); keeps it for :meth:`insert`."""
        with self.lock:
            if self._card is not None and self.present:
                self._card.power_off()
                self.event("card removed")
            self._removed = True
            self._generation += 1
            self._connections = 0

    def event(self, what: str) -> None:
        """Record a power or presence event in the trace (if any)."""
        if self.trace is not None:
            self.trace.event(what, self.name)

    def close_trace(self) -> None:
        """Close a trace this reader opened from a file name (:func:`unregister` does)."""
        if self._owns_trace:
            self.trace.close()
        self.trace, self._owns_trace = None, False

    @property
    def present(self) -> bool:
        return self._card is not None and not self._removed

    def createConnection(self):
        """A connection wrapped like pyscard's PC/SC ones (``CardConnectionDecorator``)."""
        return CardConnectionDecorator(EmulatedCardConnection(self))

    class Factory:
        """For ``ReaderFactory.createReader``: returns the registered reader of that name."""

        @staticmethod
        def create(readername):
            for reader in _registered:
                if reader.name == readername:
                    return reader
            return EmulatedReader(None, readername)

    @staticmethod
    def readers(groups=None):
        """The registered emulated readers (reader groups are ignored)."""
        return list(_registered)


class EmulatedCardConnection(CardConnection):
    """pyscard ``CardConnection`` to an :class:`EmulatedReader`'s card.

    Follows pyscard's PC/SC connection: ``connect`` powers the card (T=1 is
    chosen when allowed, as pcscd does for our ATR), default disposition
    ``SCARD_UNPOWER_CARD``; ``reconnect`` resets by default; ``getReader()``
    returns the reader name; errors raise the same exception classes.
    """

    def __init__(self, reader: EmulatedReader):
        CardConnection.__init__(self, reader.name)
        self.emulated_reader = reader
        self.card = None
        self.disposition = None
        self._generation = None

    # -- connection management -------------------------------------------------
    def connect(self, protocol=None, mode=None, disposition=None):
        CardConnection.connect(self, protocol)
        chosen = self._choose(protocol)
        reader = self.emulated_reader
        with reader.lock:
            if not reader.present:
                raise NoCardException("Unable to connect", hresult=scard.SCARD_E_NO_SMARTCARD)
            card = reader.card
            if not getattr(card, "powered", False):
                card.power_on()
                reader.event("power on")
            if self.card is None:
                reader._connections += 1
            self.card = card
            self._generation = reader._generation
        self.disposition = scard.SCARD_UNPOWER_CARD if disposition is None else disposition
        CardConnection.setProtocol(self, chosen)

    def reconnect(self, protocol=None, mode=None, disposition=None):
        CardConnection.reconnect(self, protocol)
        if self.card is None:
            raise CardConnectionException("Card not connected")
        chosen = self._choose(protocol)
        reader = self.emulated_reader
        disposition = scard.SCARD_RESET_CARD if disposition is None else disposition
        with reader.lock:
            if not reader.present:
                raise NoCardException("Unable to reconnect", hresult=scard.SCARD_W_REMOVED_CARD)
            card = reader.card
            if self._generation != reader._generation:
                reader._connections += 1  # a new card (or the same one re-inserted)
            powered = getattr(card, "powered", False)
            if disposition in (scard.SCARD_RESET_CARD, scard.SCARD_UNPOWER_CARD) or not powered:
                card.power_on()
                reader.event("reset" if powered else "power on")
            self.card = card
            self._generation = reader._generation
        self.disposition = disposition
        CardConnection.setProtocol(self, chosen)

    def disconnect(self):
        if self.card is None:
            return
        CardConnection.disconnect(self)
        reader = self.emulated_reader
        with reader.lock:
            card, self.card = self.card, None
            if self._generation != reader._generation:
                return  # removed meanwhile: nothing to power down
            reader._connections = max(0, reader._connections - 1)
            disposition = self.disposition
            if disposition == scard.SCARD_RESET_CARD:
                card.reset()
                reader.event("reset")
            elif disposition == scard.SCARD_UNPOWER_CARD and reader._connections == 0:
                card.power_off()
                reader.event("power off")
            elif disposition == scard.SCARD_EJECT_CARD:
                reader.remove()

    def release(self):
        CardConnection.release(self)
        self.disconnect()

    def _choose(self, protocol) -> int:
        mask = self.getProtocol() if not protocol else protocol
        if mask & T1:
            return T1
        if mask & T0:
            return T0
        raise CardConnectionException("Unable to connect with protocol: the emulated card speaks T=0 and T=1",
                                      hresult=scard.SCARD_E_PROTO_MISMATCH)

    # -- I/O ----------------------------------------------------------------------
    def _live_card(self, what: str):
        card = self.card
        if card is None:
            raise CardConnectionException("Card not connected")
        if self._generation != self.emulated_reader._generation:
            raise CardConnectionException(f"Failed to {what}", hresult=scard.SCARD_W_REMOVED_CARD)
        return card

    def getATR(self):
        CardConnection.getATR(self)
        return list(self._live_card("get status").atr)

    def doTransmit(self, command, protocol=None):
        reader = self.emulated_reader
        with reader.lock:
            card = self._live_card("transmit")
            command = bytes(command)
            started = time.perf_counter()
            response = card.transmit(command)
            if reader.trace is not None:
                reader.trace.exchange(command, response, time.perf_counter() - started, reader.name)
        if len(response) < 2:  # the card went mute (a simulated power cut)
            raise CardConnectionException("Failed to transmit: the card did not answer",
                                          hresult=scard.SCARD_E_NOT_TRANSACTED)
        return list(response[:-2]), response[-2], response[-1]

    def doControl(self, controlCode, command=None):
        raise SmartcardException("Failed to control: an emulated reader has no control codes",
                                 hresult=scard.SCARD_E_UNSUPPORTED_FEATURE)

    def doGetAttrib(self, attribId):
        if attribId == scard.SCARD_ATTR_ATR_STRING:
            return list(self._live_card("get attribute").atr)
        if attribId == scard.SCARD_ATTR_VENDOR_NAME:
            return list(b"cardos\x00")
        raise SmartcardException("Failed to getAttrib", hresult=scard.SCARD_E_UNSUPPORTED_FEATURE)


# -- registration -----------------------------------------------------------------

_registered: list[EmulatedReader] = []
_saved_factories: list | None = None

_NO_PCSC = (EstablishContextException, CardServiceNotFoundException, CardServiceStoppedException)


def _emulated_readers(groups=None):
    return list(_registered)


def _tolerant(factory):
    def readers(groups=None):
        try:
            return factory(groups)
        except _NO_PCSC:  # pcscd not running (or libpcsclite missing): no PC/SC readers
            return []
    readers.__wrapped__ = factory
    return readers


def _open_trace(trace, name: str):
    """(trace, owned): an ApduTrace as it is, a file name opened as a new trace file."""
    if trace is None or not isinstance(trace, (str, os.PathLike)):
        return trace, False
    from .trace import ApduTrace

    return ApduTrace.open(trace, title=name), True


def register(card=None, name: str | None = None, *, mode: str = "replace", trace=None) -> EmulatedReader:
    """Add a reader holding ``card`` (or an :class:`EmulatedReader`) to
    ``smartcard.System.readers()``; returns the reader.

    ``mode="replace"``: ``readers()`` lists only emulated readers (works with
    no pcscd and no libpcsclite). ``mode="append"``: PC/SC readers first, then
    the emulated ones; a missing pcscd gives no PC/SC readers instead of an
    exception. The last call's mode applies to all registered readers.
    Names default to ``cardos Emulated Reader N``. ``trace``: a file name (or an
    :class:`~cardos.transports.trace.ApduTrace`) for the reader's decoded APDU trace.
    """
    if mode not in ("replace", "append"):
        raise ValueError('mode must be "replace" or "append"')
    if isinstance(card, EmulatedReader):
        if trace is not None:
            raise ValueError("give trace= to the EmulatedReader itself")
        reader = card
    else:
        taken = {r.name for r in _registered}
        if name is None:
            name = next(NAME.format(i) for i in range(len(taken) + 1) if NAME.format(i) not in taken)
        reader = EmulatedReader(card, name, trace)
    if any(r.name == reader.name for r in _registered):
        raise ValueError(f"a reader named {reader.name!r} is already registered")
    global _saved_factories
    if _saved_factories is None:
        _saved_factories = list(ReaderFactory.factorymethods)
    _registered.append(reader)
    if mode == "replace":
        ReaderFactory.factorymethods[:] = [_emulated_readers]
    else:
        ReaderFactory.factorymethods[:] = [_tolerant(f) for f in _saved_factories] + [_emulated_readers]
    return reader


def unregister(reader: EmulatedReader | None = None) -> None:
    """Remove ``reader`` (all emulated readers if None); when none is left,
    ``ReaderFactory.factorymethods`` is restored to what it was before."""
    global _saved_factories
    if reader is None:
        for each in _registered:
            each.close_trace()
        _registered.clear()
    elif reader in _registered:
        reader.close_trace()
        _registered.remove(reader)
    if not _registered and _saved_factories is not None:
        ReaderFactory.factorymethods[:] = _saved_factories
        _saved_factories = None


@contextmanager
def emulated_reader(card=None, name: str | None = None, *, mode: str = "replace", trace=None):
    """``with emulated_reader(card) as reader:`` — :func:`register` for the block."""
    reader = register(card, name, mode=mode, trace=trace)
    try:
        yield reader
    finally:
        unregister(reader)


def transmit_function(connection):
    """Any pyscard connection as cardos's ``transmit(bytes) -> bytes`` (for
    :func:`cardos.sample.issue_sample` and the ``cardos.terminal`` functions).

    pyscard exceptions (card removed, no answer) propagate unchanged.
    """
    send = connection.transmit

    def transmit(apdu) -> bytes:
        data, sw1, sw2 = send(list(apdu))
        return bytes(data) + bytes((sw1, sw2))
    return transmit
