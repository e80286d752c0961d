"""Commands that could spend a card's tries ask first, and say what is left when one is spent.

* :func:`contents` / :func:`check_blank` — is the card blank? Found out with
  SELECTs only (no authentication, so no try counter moves): a blank FMCOS
  card's MF holds nothing but its key file; an issued card has the DIR
  ``0001``, the card data ``0005`` or an application DF such as ``1001``.
  Commands that authenticate with a default key (the transport key FF×8)
  refuse a card that is not blank unless the user says ``--yes``.
* :func:`wrong_key` — the words for a failed authentication (``63CX``,
  ``6983``): how many tries are left before the key or PIN locks.
* :func:`purse_mac_refused` — the words for a purse MAC the card refused
  (``9302``, ``9303``): consecutive MAC failures block the purse for good.
"""
from __future__ import annotations

from typing import Callable

SELECT_MF = bytes.fromhex("00A40000023F00")
# what personalization puts into the MF of every shipped card profile (docs/profiles.md)
ISSUED_FILES = {0x0001: "DIR 0001", 0x0005: "card data 0005", 0x1001: "application DF 1001",
                0x1002: "application DF 1002"}
MAC_FAILURE_LIMIT = 3  # FMCOS cards' usual limit (cardos: CardConfig.purse_mac_failure_limit)


class NotBlank(Exception):
    """The card is not blank (or cannot be shown to be): authenticating with a default key would spend a try."""


def _answered(sw: int) -> bool:
    return sw == 0x9000 or sw >> 8 == 0x61


def _sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big") if len(response) >= 2 else 0


def contents(transmit: Callable[[bytes], bytes]) -> list[str] | None:
    """What an issued card has in its MF (empty for a blank card); ``None`` when the MF cannot be selected.
    Leaves the MF selected."""
    if not _answered(_sw(transmit(SELECT_MF))):
        return None
    found = []
    for fid, name in ISSUED_FILES.items():
        if _answered(_sw(transmit(bytes((0x00, 0xA4, 0x00, 0x00, 0x02)) + fid.to_bytes(2, "big")))):
            found.append(name)
            transmit(SELECT_MF)  # an application DF was entered: back to the MF for the next probe
    return found


def check_blank(transmit: Callable[[bytes], bytes], where: str, yes: bool) -> None:
    """Raise :class:`NotBlank` (one line naming ``where`` and the way out) unless the card is blank or ``yes``."""
    if yes:
        return
    found = contents(transmit)
    if found is None:
        raise NotBlank(f"{where}: the card does not let its MF be selected, so it cannot be shown to be blank; "
                       "nothing was sent that spends a try (use a blank card, or --yes to try anyway)")
    if found:
        raise NotBlank(f"{where} is not blank (it has {', '.join(found)}): authenticating with the transport key "
                       "would spend one of its tries; nothing was changed (use a blank card, or --yes to try anyway)")


def wrong_key(sw: int, what: str = "key") -> str | None:
    """``"wrong key: 2 tries left before the key is locked"`` for ``63C2``; ``None`` if ``sw`` is not about tries."""
    if sw & 0xFFF0 == 0x63C0:
        left = sw & 0x0F
        if left == 0:
            return f"wrong {what}: no tries left, the {what} is now locked"
        return f"wrong {what}: {left} {'try' if left == 1 else 'tries'} left before the {what} is locked"
    if sw == 0x6983:
        return f"the {what} is locked (no tries left)"
    return None


def purse_mac_refused(sw: int, failures: int = 1) -> str | None:
    """The warning for a purse MAC the card refused, after ``failures`` consecutive ones seen by this terminal."""
    if sw == 0x9302:
        left = max(MAC_FAILURE_LIMIT - failures, 0)
        return (f"the card refused the MAC: are these the card's keys? Each refused MAC counts: the purse "
                f"blocks for good after {MAC_FAILURE_LIMIT} in a row, so after at most {left} more")
    if sw == 0x9303:
        return "the card refused the MAC and blocked the application for good (too many MAC failures in a row)"
    return None
