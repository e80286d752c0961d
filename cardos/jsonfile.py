"""Reading the JSON files cardos keeps (card images, key sets, profiles) with a
readable problem for every way they can be bad: missing, not a regular file,
too large, not text, empty, not JSON, nested too deeply, numbers too long."""
from __future__ import annotations

import json

from .boundedfile import FileRefused, read_bounded
from .config import MAX_EEPROM_SIZE

# A card image holds at most MAX_EEPROM_SIZE bytes of card data; as JSON (hex,
# one object per file and key) the fullest image possible is well under 20
# bytes per EEPROM byte. 64 per byte (4 MiB) leaves room for any honest image,
# profile or key set and refuses a 3 GB file before it is read.
JSON_FILE_LIMIT = 64 * MAX_EEPROM_SIZE


class JsonFileProblem(Exception):
    """What is wrong with the file, as one phrase (the caller names the file)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def read_json(path, kind: str, missing: str, invalid: str = "not valid JSON", empty: str | None = None,
              limit: int = JSON_FILE_LIMIT):
    """Parse the JSON file at ``path`` (a ``kind`` such as "card image"); raises :class:`JsonFileProblem`.

    Only a regular file of at most ``limit`` bytes is read (a FIFO or a device is refused before it is opened).
    """
    try:
        text = read_bounded(path, limit, f"a {kind}").decode("utf-8")
    except FileNotFoundError:
        raise JsonFileProblem(missing) from None
    except FileRefused as exc:
        raise JsonFileProblem(exc.problem) from None
    except UnicodeDecodeError:
        raise JsonFileProblem(f"not a text file (a {kind} is JSON)") from None
    except OSError as exc:
        raise JsonFileProblem(f"cannot read: {exc.strerror}") from None
    if empty is not None and not text.strip():
        raise JsonFileProblem(empty)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonFileProblem(f"{invalid}: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise JsonFileProblem(f"nested too deeply (not a {kind})") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise JsonFileProblem(f"not a {kind}: {exc}") from None
