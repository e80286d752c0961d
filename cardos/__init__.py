"""cardos — a CJ/T 304-style (FMCOS 2.0 family) city-card operating system emulator.

>>> from cardos import Card
>>> card = Card.blank()
>>> card.power_on().hex().upper()[:4]
'3B8C'
>>> card.transmit(bytes.fromhex("00A40000023F00")).hex().upper()
'6117'
"""
from .card import Card
from .config import CardConfig
from .image import ImageError
from .sw import SW

__all__ = ["Card", "CardConfig", "ImageError", "SW"]
__version__ = "0.1.0"
