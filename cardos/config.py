"""Per-card behaviour switches where real cards or sources disagree.

Each field is persisted in the card image (``"config"``) and documented in
``docs/decisions.md``. Defaults follow what real FMCOS-family city cards show.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# The largest EEPROM a card image may declare (``eeprom_size``); it also bounds
# how large an image file can honestly be (cardos/jsonfile.py).
MAX_EEPROM_SIZE = 0x10000


@dataclass
class CardConfig:
    # EEPROM available to the MF's files (the FM1208 has 8 KB).
    eeprom_size: int = 8192
    # Case 1/3 commands that produce data answer 61XX and keep the data for
    # GET RESPONSE (T=0 style). False: return the data directly.
    t0_get_response: bool = True
    # SELECT of a blocked application: "6283" (selected, FCI returned, file
    # commands answer 6A81) or "6A81" (refused, not selected).
    blocked_app_select: str = "6283"
    # Counter stored in the 23-byte transaction record: "post" (value after
    # the increment, as a real FM1208 shows) or "pre" (FMCOS manual text).
    record_counter: str = "post"
    # Largest balance a purse may hold; a load beyond it is refused at
    # INITIALIZE FOR LOAD with 6985.
    max_balance: int = 0x7FFFFFFF
    # The KEY file must be the first file created in a DF (reference §1.1,
    # FMCOS manuals): CREATE of any other file in a DF without one → 6985.
    key_file_first: bool = True
    # Consecutive purse MAC failures (9302) before the application is
    # permanently blocked (9303). 0 disables the limit.
    purse_mac_failure_limit: int = 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CardConfig":
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        config = cls(**d)
        config.validate()
        return config

    def validate(self) -> None:
        if not isinstance(self.eeprom_size, int) or not 256 <= self.eeprom_size <= MAX_EEPROM_SIZE:
            raise ValueError(f"eeprom_size must be an integer from 256 to {MAX_EEPROM_SIZE}")
        if self.blocked_app_select not in ("6283", "6A81"):
            raise ValueError('blocked_app_select must be "6283" or "6A81"')
        if self.record_counter not in ("post", "pre"):
            raise ValueError('record_counter must be "post" or "pre"')
        for name in ("t0_get_response", "key_file_first"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if not isinstance(self.max_balance, int) or not 0 < self.max_balance <= 0xFFFFFFFF:
            raise ValueError("max_balance must be an integer from 1 to 4294967295")
        if not isinstance(self.purse_mac_failure_limit, int) or not 0 <= self.purse_mac_failure_limit <= 15:
            raise ValueError("purse_mac_failure_limit must be an integer from 0 to 15")
