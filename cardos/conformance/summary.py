"""The per-command summary table of a conformance run.

Each test carries a family and a command label (markers). A failing test
also names its *culprit*: the command whose answer was wrong (from the
:class:`~cardos.conformance.channel.ConformanceFailure`), which may be
another command than the test's own (a purchase test whose load step got a
wrong TAC). Rows count tests by their label; the verdict lists the culprits.

>>> results = [Result("a", "file system", "SELECT", "passed"),
...            Result("b", "file system", "SELECT", "failed", "SELECT", "00A4... answered 9000, expected 6A82"),
...            Result("c", "purse", "GET BALANCE", "skipped", message="needs the issuer key set (--keys)")]
>>> print(render(results, ["target: example"]))
target: example
<BLANKLINE>
family       command      pass  fail  skip  result
-----------  -----------  ----  ----  ----  ------
file system  SELECT          1     1     0  FAIL
purse        GET BALANCE     0     0     1  skip
-----------  -----------  ----  ----  ----  ------
total                        1     1     1  FAIL
<BLANKLINE>
non-conforming: SELECT
  SELECT: 00A4... answered 9000, expected 6A82  [b]
<BLANKLINE>
skipped, by reason:
     1  needs the issuer key set (--keys)
"""
from __future__ import annotations

from dataclasses import dataclass

FAMILY_ORDER = ("transport", "file system", "line protection", "keys and authentication", "PIN",
                "security rules", "blocking", "purse", "purse recovery", "personalization", "interconnect",
                "suite self-check")


@dataclass
class Result:
    nodeid: str
    family: str
    command: str
    outcome: str             # passed | failed | skipped
    culprit: str = ""        # failed: the command whose answer was wrong
    message: str = ""
    duration: float = 0.0

    def to_dict(self) -> dict:
        return {"test": self.nodeid, "family": self.family, "command": self.command, "outcome": self.outcome,
                "culprit": self.culprit, "message": self.message, "duration": round(self.duration, 4)}


def _family_key(family: str) -> int:
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)


def rows(results) -> list:
    """``(family, command, passed, failed, skipped, verdict)`` in family order, then first appearance."""
    table: dict = {}
    for r in results:
        row = table.setdefault((r.family, r.command), [0, 0, 0])
        row[("passed", "failed", "skipped").index(r.outcome)] += 1
    ordered = sorted(table.items(), key=lambda item: _family_key(item[0][0]))
    out = []
    for (family, command), (passed, failed, skipped) in ordered:
        verdict = "FAIL" if failed else ("PASS" if passed else "skip")
        out.append((family, command, passed, failed, skipped, verdict))
    return out


def nonconforming(results) -> list:
    """The commands that answered wrongly, in the order first seen."""
    seen: list = []
    for r in results:
        if r.outcome == "failed":
            culprit = r.culprit or r.command
            if culprit not in seen:
                seen.append(culprit)
    return seen


def skip_reasons(results) -> list:
    """``(count, reason)`` of the skipped tests, most frequent first (ties: first seen)."""
    counts: dict = {}
    for r in results:
        if r.outcome == "skipped":
            reason = r.message.splitlines()[0] if r.message else "(no reason given)"
            counts[reason] = counts.get(reason, 0) + 1
    return sorted(((n, reason) for reason, n in counts.items()), key=lambda item: -item[0])


def _shortened(text: str, width: int = 160) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def verdict(results) -> str:
    if any(r.outcome == "failed" for r in results):
        return "FAIL"
    return "PASS" if any(r.outcome == "passed" for r in results) else "skip"


def render(results, header=()) -> str:
    table = rows(results)
    fam_w = max([len("family"), len("total")] + [len(t[0]) for t in table])
    cmd_w = max([len("command")] + [len(t[1]) for t in table])
    rule = f"{'-' * fam_w}  {'-' * cmd_w}  ----  ----  ----  ------"
    lines = list(header)
    if lines:
        lines.append("")
    lines.append(f"{'family':{fam_w}}  {'command':{cmd_w}}  pass  fail  skip  result")
    lines.append(rule)
    for family, command, passed, failed, skipped, v in table:
        lines.append(f"{family:{fam_w}}  {command:{cmd_w}}  {passed:4d}  {failed:4d}  {skipped:4d}  {v}")
    lines.append(rule)
    totals = [sum(t[i] for t in table) for i in (2, 3, 4)]
    lines.append(f"{'total':{fam_w}}  {'':{cmd_w}}  {totals[0]:4d}  {totals[1]:4d}  {totals[2]:4d}  {verdict(results)}")
    bad = nonconforming(results)
    lines.append("")
    lines.append("non-conforming: " + (", ".join(bad) if bad else "none"))
    for command in bad:
        first = next(r for r in results if r.outcome == "failed" and (r.culprit or r.command) == command)
        message = first.message.splitlines()[0] if first.message else "failed"
        if message.startswith(command + ": "):
            message = message[len(command) + 2:]
        lines.append(f"  {command}: {_shortened(message)}  [{first.nodeid.rsplit('::', 1)[-1]}]")
    reasons = skip_reasons(results)
    if reasons:
        lines += ["", "skipped, by reason:"]
        lines += [f"  {n:4d}  {_shortened(reason)}" for n, reason in reasons]
    return "\n".join(lines)
