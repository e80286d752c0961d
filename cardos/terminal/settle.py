"""Settlement check (数据结算): verify the TACs of a batch of uploaded transaction records.

A clearing centre recomputes each record's TAC with the issuer's TAC master
key diversified by the record's application serial and rejects every record
whose TAC does not match (forged or altered), that cannot be read, or that
repeats an earlier one (same card, type and TAC: a replayed upload).

Input: JSON lines (one :meth:`TransactionRecord.to_dict` object per line) or
CSV with a header row naming the same fields (``FIELDS``). Blank lines and
lines starting with ``#`` are skipped.

What a TAC cannot show: for debits (types 04/05/06/09) it covers amount,
type, terminal, terminal serial, date and time — not the card's counter or
balance; for loads, unloads and overdraw updates it covers the new balance
and the online counter as well (reference §3.3-3.8).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..crypto import constant_time_equal
from .records import FIELDS, RecordFormatError, TransactionRecord


@dataclass
class Rejected:
    line: int
    reason: str
    record: TransactionRecord | None = None


@dataclass
class SettlementReport:
    accepted: list = field(default_factory=list)  # (line, TransactionRecord)
    rejected: list = field(default_factory=list)  # Rejected

    @property
    def ok(self) -> bool:
        return not self.rejected

    def total(self) -> int:
        """Net amount of the accepted records: debits and unloads minus loads (what the card paid out)."""
        out = 0
        for _line, r in self.accepted:
            if r.type in (0x01, 0x02):
                out -= r.amount
            elif r.type != 0x07:
                out += r.amount
        return out

    def lines(self) -> list[str]:
        out = [f"line {r.line}: REJECTED: {r.reason}" for r in self.rejected]
        out.append(f"{len(self.accepted)} accepted, {len(self.rejected)} rejected")
        return out


def parse_records(text: str) -> list[tuple[int, dict | str]]:
    """``(line number, record dict)`` per record, or ``(line, error text)`` for unreadable lines."""
    rows: list[tuple[int, dict | str]] = []
    lines = text.splitlines()
    content = [(n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not content:
        return rows
    if content[0][1].lstrip().startswith("{"):
        for n, line in content:
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as exc:
                rows.append((n, f"not valid JSON: {exc.msg}"))
        return rows
    header_line, header = content[0]
    names = next(csv.reader([header]))
    names = [name.strip() for name in names]
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        return [(header_line, f"CSV header: unknown column(s) {', '.join(unknown)} (columns: {', '.join(FIELDS)})")]
    for n, line in content[1:]:
        values = next(csv.reader(io.StringIO(line)))
        if len(values) != len(names):
            rows.append((n, f"expected {len(names)} CSV columns, got {len(values)}"))
            continue
        rows.append((n, {name: value.strip() for name, value in zip(names, values)}))
    return rows


def write_records(records, fmt: str = "jsonl") -> str:
    """Serialise records as JSON lines (``jsonl``) or CSV (``csv``)."""
    if fmt == "jsonl":
        return "".join(json.dumps(r.to_dict()) + "\n" for r in records)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(r.to_dict())
    return out.getvalue()


def _expected_tac(keys, record: TransactionRecord) -> bytes:
    alg = keys.algorithm
    dtk = keys.card_key("tac", None, record.serial)
    return alg.mac(alg.tac_key(dtk), record.tac_input())


def settle(source, keys) -> SettlementReport:
    """Check a batch: ``source`` is a :class:`~pathlib.Path`, the text of a file, or an iterable
    of records / dicts.

    ``keys``: the issuer key source (:class:`~cardos.terminal.keys.IssuerKeys`
    or :class:`cardos.keyset.KeySet`) holding the TAC master key.
    """
    if isinstance(source, Path):
        source = source.read_text(encoding="utf-8")
    if isinstance(source, str):
        rows = parse_records(source)
    else:
        rows = [(n, r.to_dict() if isinstance(r, TransactionRecord) else r) for n, r in enumerate(source, 1)]
    report = SettlementReport()
    seen: dict[tuple, int] = {}
    for line, row in rows:
        if isinstance(row, str):
            report.rejected.append(Rejected(line, f"unreadable: {row}"))
            continue
        try:
            record = TransactionRecord.from_dict(row)
        except RecordFormatError as exc:
            report.rejected.append(Rejected(line, f"malformed: {exc}"))
            continue
        try:
            expected = _expected_tac(keys, record)
        except Exception as exc:  # noqa: BLE001 - no TAC key for this card / key set
            report.rejected.append(Rejected(line, f"cannot check the TAC: {exc}", record))
            continue
        if not constant_time_equal(expected, record.tac):
            report.rejected.append(Rejected(line, f"TAC does not match: forged or altered "
                                                  f"({record.type_name}, card {record.serial.hex().upper()}, "
                                                  f"counter {record.counter})", record))
            continue
        key = (record.serial, record.type, record.tac)
        if key in seen:
            report.rejected.append(Rejected(line, f"duplicate of line {seen[key]} (replayed upload)", record))
            continue
        seen[key] = line
        report.accepted.append((line, record))
    return report


# -- command line: ``cardos settle FILE --keys KEYS`` ---------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="transaction records: JSON lines or CSV with a header row")
    parser.add_argument("--keys", required=True, metavar="KEYS",
                        help="issuer keys holding the TAC master: a key-set file (or shipped key-set name) "
                             'or a JSON {"algorithm": "3DES", "diversify": true, "keys": {"tac": "<hex>"}}')


def run(args, out=None) -> int:
    """Exit status 0: every record accepted; 1: some rejected; 2: the file or keys cannot be used."""
    import sys

    from ..textfile import TextFileProblem, read_text
    from .keys import load_keys

    out = out or sys.stdout
    try:
        keys = load_keys(args.keys)
    except ValueError as exc:
        print(f"cardos: error: {exc}", file=sys.stderr)
        return 2
    try:
        text = read_text(args.file, "record file")
    except TextFileProblem as exc:
        print(f"cardos: error: {args.file}: {exc.problem}", file=sys.stderr)
        return 2
    report = settle(text, keys)
    for line in report.lines():
        print(line, file=out)
    return 0 if report.ok else 1
