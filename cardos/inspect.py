"""``cardos inspect IMAGE``: what is on a card image, at a glance — read-only.

The file tree (FIDs, DF names / AIDs, types, sizes, access rights in words),
the keys (type, id, version, algorithm, try counters — never their values),
the purses (balances, counters, overdraw limits) and the transaction
history of each purse's log as a table; ``--json`` for the same as data.

The image is only read (never locked, never written), so a card being served
by ``cardos serve`` can be inspected while it is in use.

>>> from cardos import Card
>>> from cardos.sample import issue_sample
>>> card = Card.blank()
>>> _ = issue_sample(card.transmit)
>>> model = describe_card(card)
>>> [(p["df"], p["purse"], p["balance"]) for p in model["purses"]]
[('3F00/1001', 'EP', 0), ('3F00/1001', 'ED', 0)]
>>> right_words(0xF1), right_words(0xEF), right_words(0x00), right_words(0x11)
('state ≥ 1', 'never', 'free', 'state 1')
"""
from __future__ import annotations

import json
import sys

from .i18n import Messages, display_width
from .filesystem import (
    DF,
    TYPE_CYCLIC,
    TYPE_FIXED,
    TYPE_VARIABLE,
    BinaryEF,
    KeyFile,
    PurseEF,
    RecordEF,
    capacity,
)
from .keys import COUNTED_TYPES, VERSIONED_TYPES, KeyType
from .security import right_satisfied
from .ui import Style, add_color_option, use_color

KEY_TYPE_WORDS = {
    KeyType.DES_ENCRYPT: "encryption", KeyType.DES_DECRYPT: "decryption", KeyType.DES_MAC: "MAC",
    KeyType.TAC: "TAC (DTK)", KeyType.LINE_PROTECTION: "line protection (DAMK)",
    KeyType.PIN_UNBLOCK: "PIN unblock (DPUK)", KeyType.PIN_RELOAD: "PIN reload (DRPK)",
    KeyType.EXTERNAL_AUTH: "external authentication", KeyType.PIN: "PIN",
    KeyType.OVERDRAW: "overdraw update (DUK)", KeyType.UNLOAD: "unload (DULK)",
    KeyType.PURCHASE: "purchase (DPK)", KeyType.LOAD: "load (DLK)",
}
TX_TYPE_WORDS = {0x01: "ED load", 0x02: "EP load", 0x03: "ED unload", 0x04: "ED cash withdraw",
                 0x05: "ED purchase", 0x06: "EP purchase", 0x07: "overdraw update", 0x09: "CAPP purchase"}
FILE_KIND_WORDS = {TYPE_FIXED: "fixed records", TYPE_VARIABLE: "variable records", TYPE_CYCLIC: "cyclic records"}
PURSE_NAMES = {0x0001: "ED", 0x0002: "EP"}
RECORD_LENGTH = 23


def right_words(right: int) -> str:
    """An access-right byte ``XY`` in words (``docs/commands.md``, Access rights)."""
    x, y = right >> 4, right & 0x0F
    if x == 0:
        return "free" if y == 0 else f"MF state ≥ {y:X}"
    if x < y:
        return "never"
    if x == 0x0F:
        return "free" if y == 0 else f"state ≥ {y:X}"
    if x == y:
        return f"state {y:X}"
    return f"state {y:X}–{x:X}"


def _money(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def _name_text(name: bytes) -> str:
    """A DF name as text when it is printable ASCII (``1PAY.SYS.DDF01``), else hex (an AID)."""
    if name and all(0x20 <= c < 0x7F for c in name):
        return name.decode("ascii")
    return name.hex().upper()


def _auth_keys(df: DF) -> list:
    """(label, subsequent state, in MF) of the keys whose success raises a security register."""
    out = []
    node = df
    while node is not None:
        if node.key_file is not None:
            for key in node.key_file.keys.values():
                if key.base_type in (KeyType.EXTERNAL_AUTH, KeyType.PIN):
                    label = ("PIN" if key.base_type == KeyType.PIN else "ext-auth") + f" {key.kid:02X}"
                    if node is not df:
                        label += f" in {node.fid:04X}"
                    out.append((label, key.subsequent_state, node.is_mf, node is df))
        node = node.parent
    return out


def _right(right: int, df: DF) -> dict:
    """A right byte, its words, and the keys of this DF (or the MF) whose success grants it."""
    x = right >> 4
    words = right_words(right)
    granted = []
    if words not in ("free", "never"):
        for label, state, in_mf, here in _auth_keys(df):
            if x == 0 and in_mf and right_satisfied(right, state, 0) or x != 0 and here and right_satisfied(right, 0, state):
                granted.append(label)
    return {"byte": f"{right:02X}", "words": words, "granted_by": granted}


def _right_text(name: str, r: dict) -> str:
    extra = f" ({', '.join(r['granted_by'])})" if r["granted_by"] else ""
    return f"{name} {r['byte']} {r['words']}{extra}"


def _node(node, df: DF, path: str) -> dict:
    fid = f"{node.fid:04X}"
    if isinstance(node, DF):
        d = {"fid": fid, "path": path, "kind": "MF" if node.is_mf else "DF", "type": "38",
             "name": node.name.hex().upper(), "name_text": _name_text(node.name),
             "space": node.space, "used": node.used(), "blocked": ("no", "temporarily", "permanently")[node.block],
             "rights": {"create": _right(node.create_right, node), "erase": _right(node.erase_right, node)},
             "children": []}
        for child in node.children.values():
            d["children"].append(_node(child, node, f"{path}/{child.fid:04X}"))
        return d
    d = {"fid": fid, "path": path, "type": f"{node.type_byte:02X}"}
    if node.sfi is not None and not isinstance(node, (KeyFile, PurseEF)):
        d["sfi"] = f"{node.sfi:02X}"
    if isinstance(node, KeyFile):
        d.update(kind="key file", size=node.size, used=node.used_bytes(), keys=len(node.keys),
                 rights={"add key": _right(node.add_right, df)})
    elif isinstance(node, PurseEF):
        d.update(kind=f"purse ({PURSE_NAMES.get(node.fid, '?')})", size=22,
                 rights={"use": _right(node.use_right, df)},
                 tac_key_id=f"{node.tac_key_id:02X}", log_sfi=f"{node.log_sfi:02X}")
    else:
        protection = []
        if node.mac_protected:
            protection.append("MAC")
        if node.encrypted:
            protection.append("encrypted")
        d["protection"] = protection
        if protection:
            d["protected_reads"] = node.reads_need_protection
            d["line_keys"] = {"read": f"{node.read_key_id:02X}", "write": f"{node.write_key_id:02X}"}
        d["rights"] = {"read": _right(node.read_right, df), "write": _right(node.write_right, df)}
        if isinstance(node, BinaryEF):
            d.update(kind="binary", size=node.size, written=node.written)
        elif isinstance(node, RecordEF):
            d.update(kind=FILE_KIND_WORDS.get(node.ftype, "records"), records=len(node.records))
            if node.variable:
                d.update(size=node.size, used=node.used_bytes())
            else:
                d.update(record_count=node.record_count, record_length=node.record_length)
    return d


def _key(key, df_path: str) -> dict:
    base = key.base_type
    d = {"df": df_path, "type": f"{key.stored_type:02X}", "base_type": f"{base:02X}",
         "type_words": KEY_TYPE_WORDS.get(base, f"type {base:02X}"), "id": f"{key.kid:02X}",
         "use": f"{key.use:02X}", "use_words": right_words(key.use),
         "change": f"{key.change:02X}", "change_words": right_words(key.change),
         "secure_update": key.secure_update, "length": len(key.value)}
    if base == KeyType.PIN:
        d["algorithm"] = f"PIN ({len(key.value) * 2} digits max)"
    elif key.alg_id == 0x04:
        d["algorithm"] = "SM4"
    else:
        d["algorithm"] = "DES" if len(key.value) == 8 else "3DES"
    if base in VERSIONED_TYPES:
        d.update(version=f"{key.version:02X}", algorithm_id=f"{key.alg_id:02X}")
    if base in COUNTED_TYPES:
        d.update(tries_left=key.tries_left, max_tries=key.max_tries, blocked=key.blocked)
        if base in (KeyType.EXTERNAL_AUTH, KeyType.PIN):
            d["next_state"] = f"{key.subsequent_state:X}"
    return d


def _record(n: int, raw: bytes) -> dict:
    return {"n": n, "counter": int.from_bytes(raw[0:2], "big"), "overdraw_limit": int.from_bytes(raw[2:5], "big"),
            "amount": int.from_bytes(raw[5:9], "big"), "type": f"{raw[9]:02X}",
            "type_words": TX_TYPE_WORDS.get(raw[9], f"type {raw[9]:02X}"), "terminal": raw[10:16].hex().upper(),
            "date": raw[16:20].hex().upper(), "time": raw[20:23].hex().upper()}


def describe_card(card, source: str = "") -> dict:
    """Everything ``cardos inspect`` shows, as JSON-able data (no key values)."""
    mf = card.mf
    model = {"image": source, "atr": card.atr.hex().upper(), "card_blocked": card.card_blocked,
             "config": card.config.to_dict(),
             "eeprom": {"size": capacity(mf, card.config.eeprom_size), "used": mf.used()},
             "files": _node(mf, mf, "3F00"), "keys": [], "purses": [], "history": []}

    def visit(df: DF, path: str) -> None:
        if df.key_file is not None:
            for key in df.key_file.keys.values():
                model["keys"].append(_key(key, path))
        logs: dict = {}
        for child in df.children.values():
            if isinstance(child, PurseEF):
                model["purses"].append({
                    "df": path, "fid": f"{child.fid:04X}", "purse": PURSE_NAMES.get(child.fid, "?"),
                    "balance": child.balance, "online_counter": child.online_counter,
                    "offline_counter": child.offline_counter, "overdraw_limit": child.overdraw_limit,
                    "use": f"{child.use_right:02X}", "use_words": right_words(child.use_right),
                    "tac_key_id": f"{child.tac_key_id:02X}", "log_sfi": f"{child.log_sfi:02X}",
                    "mac_failures": child.mac_failures,
                    "proofs": [{"type": k[:2], "counter": int(k[3:], 16)} for k in sorted(child.proofs)]})
                logs.setdefault(child.log_sfi, []).append(PURSE_NAMES.get(child.fid, f"{child.fid:04X}"))
        if not logs and 0x18 in df.children:
            logs[0x18] = []
        for sfi, purses in sorted(logs.items()):
            log = df.find_sfi(sfi)
            if type(log) is not RecordEF or log.variable or log.record_length != RECORD_LENGTH:
                continue
            model["history"].append({"df": path, "fid": f"{log.fid:04X}", "sfi": f"{sfi:02X}", "purses": purses,
                                     "capacity": log.record_count,
                                     "records": [_record(n, r) for n, r in enumerate(log.records, start=1)]})
        for child in df.children.values():
            if isinstance(child, DF):
                visit(child, f"{path}/{child.fid:04X}")

    visit(mf, "3F00")
    return model


def load_card(path: str):
    """The card of an image file, read-only: never locked, never written."""
    from .card import Card
    from .image import ImageError, card_state_from_dict, read_image

    raw = read_image(path)
    try:
        atr, config, blocked, mf = card_state_from_dict(raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise ImageError(path, str(exc)) from None
    return Card(mf, config=config, atr=atr, card_blocked=blocked)


# -- text ----------------------------------------------------------------------------------

def table(rows: list, headers: list, right: set = frozenset(), indent: str = "  ") -> list:
    """Rows of strings as aligned columns (``right``: indexes of right-aligned columns)."""
    widths = [max(display_width(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    pad = Messages().pad  # columns by display width: Chinese words take two

    def line(cells):
        parts = [pad(str(c), w, right=i in right) for i, (c, w) in enumerate(zip(cells, widths))]
        return (indent + "  ".join(parts)).rstrip()
    return [line(headers), *(line(r) for r in rows)]


def _file_summary(d: dict) -> str:
    kind = d["kind"]
    if kind in ("MF", "DF"):
        return f"{d['name_text']}  space {d['space']} bytes, {d['used']} used" + (
            f"  BLOCKED {d['blocked']}" if d["blocked"] != "no" else "")
    if kind == "key file":
        return f"{d['size']} bytes, {d['keys']} key(s)"
    if kind.startswith("purse"):
        return f"TAC key 34/{d['tac_key_id']}, log SFI {d['log_sfi']}"
    if kind == "binary":
        text = f"{d['size']} bytes" + ("" if d["written"] else ", never written")
    elif "record_count" in d:
        text = f"{d['records']} of {d['record_count']} × {d['record_length']} bytes"
    else:
        text = f"{d['records']} record(s), {d['used']} of {d['size']} bytes"
    if d.get("protection"):
        text += f", {'+'.join(d['protection'])}" + (" (protected reads)" if d.get("protected_reads") else "")
    return text


def _tree_lines(d: dict, prefix: str, last: bool, top: bool, s: Style, rows: list) -> None:
    branch = "" if top else ("└─ " if last else "├─ ")
    fid = s("1", d["fid"]) if d["kind"] in ("MF", "DF") else d["fid"]
    kind = d["kind"] + (f" SFI {d['sfi']}" if "sfi" in d and d["kind"] not in ("MF", "DF") else "")
    rights = " · ".join(_right_text(name, r) for name, r in d.get("rights", {}).items())
    rows.append((f"{prefix}{branch}", fid, len(d["fid"]), kind, _file_summary(d), rights))
    children = d.get("children", [])
    inner = prefix + ("" if top else ("   " if last else "│  "))
    for i, child in enumerate(children):
        _tree_lines(child, inner, i == len(children) - 1, False, s, rows)


def render(model: dict, out, color: bool = False, msgs: Messages | None = None) -> None:
    s = Style(color)
    msgs = msgs or Messages()
    w = msgs.word

    def p(text: str = "") -> None:
        print(text, file=out)

    atr = " ".join(model["atr"][i:i + 2] for i in range(0, len(model["atr"]), 2))
    p(f"{s('1', model['image'] or 'card')}: ATR {atr}")
    e = model["eeprom"]
    p(msgs("inspect.head", used=e["used"], size=e["size"],
           blocked=msgs("inspect.blocked" if model["card_blocked"] else "inspect.not_blocked")))

    p()
    p(s("1", msgs("inspect.files")))
    rows: list = []
    _tree_lines(model["files"], "", True, True, s, rows)
    width_a = max(len(r[0]) + r[2] for r in rows)
    width_k = max(len(r[3]) for r in rows)
    width_s = max(len(r[4]) for r in rows)
    for pre, fid, fid_len, kind, summary, rights in rows:
        pad = " " * (width_a - len(pre) - fid_len)
        p(f"  {pre}{fid}{pad}  {kind.ljust(width_k)}  {summary.ljust(width_s)}  {rights}".rstrip())

    p()
    p(s("1", msgs("inspect.keys")) + msgs("inspect.no_values"))
    if model["keys"]:
        rows = []
        for k in model["keys"]:
            if "version" in k:
                detail = f"version {k['version']}, alg id {k['algorithm_id']}"
            else:
                detail = f"tries {k['tries_left']}/{k['max_tries']}" + (" BLOCKED" if k.get("blocked") else "")
                if "next_state" in k:
                    detail += f", then state {k['next_state']}"
            rows.append((k["df"], f"{k['type']} {w(k['type_words'])}", k["id"], k["algorithm"], detail,
                         f"{k['use']} {k['use_words']}", f"{k['change']} {k['change_words']}",
                         "secure update" if k["secure_update"] else ""))
        headers = [w("DF"), msgs("inspect.key_type"), *(w(h) for h in ("id", "algorithm", "version / counter", "use",
                                                                          "change")), ""]
        for line in table(rows, headers):
            p(line)
    else:
        p(msgs("inspect.none"))

    p()
    p(s("1", msgs("inspect.purses")))
    if model["purses"]:
        rows = [(x["df"], x["fid"], msgs.purse(x["purse"]), _money(x["balance"]), _money(x["overdraw_limit"]),
                 str(x["online_counter"]), str(x["offline_counter"]), f"{x['use']} {x['use_words']}",
                 f"34/{x['tac_key_id']}", x["log_sfi"], str(x["mac_failures"]))
                for x in model["purses"]]
        for line in table(rows, [w(h) for h in ("DF", "FID", "purse", "balance", "overdraw", "online ctr",
                                                "offline ctr", "use right", "TAC key", "log SFI", "MAC failures")],
                          right={3, 4, 5, 6, 10}):
            p(line)
    else:
        p(msgs("inspect.none"))

    for h in model["history"]:
        p()
        whose = f" ({'/'.join(msgs.purse(x) for x in h['purses'])})" if h["purses"] else ""
        p(s("1", msgs("inspect.history", df=h["df"], sfi=h["sfi"], whose=whose)) +
          msgs("inspect.history_count", n=len(h["records"]), capacity=h["capacity"]))
        if h["records"]:
            rows = []
            for r in h["records"]:
                date, time_ = r["date"], r["time"]
                rows.append((str(r["n"]), str(r["counter"]), msgs.tx_type(int(r["type"], 16), r["type_words"]),
                             _money(r["amount"]),
                             _money(r["overdraw_limit"]), r["terminal"],
                             f"{date[0:4]}-{date[4:6]}-{date[6:8]}", f"{time_[0:2]}:{time_[2:4]}:{time_[4:6]}"))
            for line in table(rows, [w(h) for h in ("#", "counter", "type", "amount", "overdraw", "terminal", "date",
                                                    "time")],
                              right={0, 1, 3, 4}):
                p(line)
        else:
            p(msgs("inspect.none"))


# -- command line --------------------------------------------------------------------------

def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="show a card image: file tree, rights, keys (no values), purses, history",
                       description="Show what is on a card image, read-only: the file tree (FIDs, DF names and "
                                   "AIDs, file types, sizes, access rights in words and the keys that grant "
                                   "them), the keys (type, id, version, algorithm, try counters; never their "
                                   "values), the purses (balances, counters, overdraw limits) and each purse's "
                                   "transaction history. The image is never written or locked, so a card being "
                                   "served can be inspected.")
    p.add_argument("image", metavar="IMAGE", help="a card image (cardos new / cardos issue)")
    p.add_argument("--json", action="store_true", help="print the same as one JSON object")
    p.add_argument("--lang", choices=("en", "zh"), default="en",
                   help="language of the headings, purse and transaction words (the JSON keys stay English)")
    add_color_option(p)
    p.set_defaults(func=run)


def run(args, out=None) -> int:
    out = out or sys.stdout
    model = describe_card(load_card(args.image), args.image)  # ImageError: exit 2 in cardos.cli
    if args.json:
        json.dump(model, out, indent=1, ensure_ascii=False)
        out.write("\n")
    else:
        render(model, out, use_color(out, False if args.no_color else None), Messages(args.lang))
    return 0
