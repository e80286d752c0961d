"""Transports: how PC/SC software reaches an emulated card.

* :mod:`cardos.transports.vpcd` — the card side of vsmartcard's vpcd
  protocol: ``cardos serve`` puts a card into a slot of a real pcscd.
* :mod:`cardos.transports.serve` — the ``cardos serve`` command (signals,
  control socket, diagnostics).
* :mod:`cardos.transports.pyscard_reader` — an in-process pyscard reader, so
  pyscard code runs against an emulated card without pcscd.

Each is a thin adapter around ``Card.transmit(bytes) -> bytes``.
See ``docs/pcsc.md``.
"""
