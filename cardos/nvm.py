"""Non-volatile memory writes: one journal per command, committed atomically.

Every change to persistent card state goes through :class:`Journal` (``set``
for object attributes, ``set_item``/``del_item`` for dict entries). The
journal keeps an undo log, so a command that dies half-way (a bug, or a
simulated power cut) is rolled back to the state before it. When the command
finishes, the card commits: the image is written to a temporary file and
renamed over the old one, which is the single atomic step.

Each journaled write is a *write point*. Tests can cut power at any of them
(:meth:`Journal.arm_power_cut`), and at the commit's own steps, to prove that
no cut leaves a mixture of old and new state.

A command that checks a secret with a try counter must not reveal the
answer without paying for it: it always commits (:meth:`Journal.force_commit`),
and what a failed save must still cost is registered with
:meth:`Journal.if_not_saved` (the spent try), so that a save that fails
counts as a failed attempt in the card's memory (docs/robustness.md).
"""
from __future__ import annotations

_MISSING = object()


class PowerCut(Exception):
    """Simulated loss of power at a write point (a test hook, never an APDU)."""


class Journal:
    __slots__ = ("_undo", "writes", "_cut_at", "_fail_at", "forced", "_unsaved")

    def __init__(self) -> None:
        self._undo: list = []
        self.writes = 0
        self._cut_at = 0
        self._fail_at = 0
        self.forced = False
        self._unsaved: list = []

    # -- test hook -----------------------------------------------------
    def arm_power_cut(self, write_point: int) -> None:
        """Cut power at the ``write_point``-th write (1-based) of the next command."""
        self._cut_at = write_point

    def arm_write_failure(self, write_point: int) -> None:
        """Make the ``write_point``-th write (1-based) of the next command fail as a full disk does."""
        self._fail_at = write_point

    def disarm(self) -> None:
        self._cut_at = 0
        self._fail_at = 0

    def tick(self) -> None:
        """Count one write point; raises :class:`PowerCut` (or :class:`OSError`) when it is the armed one."""
        self.tick_committed()
        if self.writes == self._fail_at:
            self._fail_at = 0
            raise OSError(28, f"write failure injected at write point {self.writes}")

    def tick_committed(self) -> None:
        """The write point after a commit: power can be lost there, but no write can fail."""
        self.writes += 1
        if self.writes == self._cut_at:
            self._cut_at = 0
            raise PowerCut(f"power cut at write point {self.writes}")

    # -- writes ----------------------------------------------------------
    def set(self, obj, attr: str, value) -> None:
        self.tick()
        self._undo.append((0, obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    def set_item(self, container: dict, key, value) -> None:
        self.tick()
        self._undo.append((1, container, key, container.get(key, _MISSING)))
        container[key] = value

    def del_item(self, container: dict, key) -> None:
        self.tick()
        self._undo.append((1, container, key, container.get(key, _MISSING)))
        container.pop(key, None)

    def force_commit(self) -> None:
        """Commit at the end of this command even if nothing changed (a try must cost a write)."""
        self.forced = True

    def if_not_saved(self, obj, attr: str, value) -> None:
        """Set ``obj.attr = value`` in memory if this command's save fails (see :meth:`keep_unsaved`)."""
        self._unsaved.append((obj, attr, value))

    # -- command boundaries ----------------------------------------------
    @property
    def dirty(self) -> bool:
        return bool(self._undo)

    def begin(self) -> None:
        self._undo.clear()
        self.writes = 0
        self.forced = False
        if self._unsaved:
            self._unsaved.clear()

    def keep_unsaved(self) -> None:
        """After a rollback for a failed save: apply what a failed save must still cost."""
        for obj, attr, value in self._unsaved:
            setattr(obj, attr, value)
        self._unsaved.clear()

    def forget(self) -> None:
        """The command's changes are committed: drop the undo log."""
        self._undo.clear()

    def rollback(self) -> None:
        for kind, target, key, old in reversed(self._undo):
            if kind == 0:
                setattr(target, key, old)
            elif old is _MISSING:
                target.pop(key, None)
            else:
                target[key] = old
        self._undo.clear()
