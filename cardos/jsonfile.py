"""Reading the JSON files cardos keeps (card images, key sets, profiles) with a
readable problem for every way they can be bad: missing, not text, empty,
not JSON, nested too deeply, numbers too long."""
from __future__ import annotations

import json
from pathlib import Path


class JsonFileProblem(Exception):
    """What is wrong with the file, as one phrase (the caller names the file)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def read_json(path, kind: str, missing: str, invalid: str = "not valid JSON", empty: str | None = None):
    """Parse the JSON file at ``path`` (a ``kind`` such as "card image"); raises :class:`JsonFileProblem`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JsonFileProblem(missing) from None
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
