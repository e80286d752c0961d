"""The terminal side: what a personalization machine, a PSAM or a load host computes.

Everything here works against any object with ``transmit(bytes) -> bytes``
(an in-process :class:`cardos.Card`, a pyscard connection adapter, ...).
"""
