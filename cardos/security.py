"""Volatile security state: the MF and current-DF registers (reference §2.1-2.2).

Nothing here is persisted: it dies with power, as on a real card.
"""
from __future__ import annotations


def right_satisfied(right: int, mf_level: int, df_level: int) -> bool:
    """Access-right byte ``XY``.

    ``X = 0``: the MF register must be ≥ Y (so ``00`` is always allowed).
    ``X ≠ 0``: Y ≤ current-DF register ≤ X; ``X < Y`` (e.g. ``EF``) is never.
    """
    high, low = right >> 4, right & 0x0F
    if high == 0:
        return mf_level >= low
    return low <= df_level <= high


class SecurityState:
    __slots__ = ("mf_level", "df_level", "challenge")

    def __init__(self) -> None:
        self.mf_level = 0
        self.df_level = 0
        self.challenge: bytes | None = None

    def reset(self) -> None:
        self.mf_level = 0
        self.df_level = 0
        self.challenge = None

    def satisfied(self, right: int) -> bool:
        return right_satisfied(right, self.mf_level, self.df_level)

    def enter_df(self, is_mf: bool) -> None:
        """Selecting a DF clears its register; selecting the MF copies the MF register."""
        self.df_level = self.mf_level if is_mf else 0

    def raise_to(self, state: int, in_mf: bool) -> None:
        """A successful VERIFY / EXTERNAL AUTHENTICATE sets the register(s)."""
        self.df_level = state & 0x0F
        if in_mf:
            self.mf_level = state & 0x0F
