"""Words cardos prints, in English and Chinese (``--lang en|zh``).

One catalogue of message ids → (English, Chinese) ``str.format`` templates
and one :class:`Messages` object per command invocation, handed to whatever
prints: no global language setting. English is the text cardos printed before
it had a catalogue, so ``--lang en`` (the default) output does not change.

The Chinese words are the ones city-card people use (PBOC/CJ/T 304 manuals):
余额, 联机/脱机交易序号, 透支限额, 交易类型, 终端机编号, 交易金额, 圈存, 圈提,
消费, 取现, 复合消费, 文件, 记录, 密钥. Status-word meanings stay in
:mod:`cardos.sw`, command names in :mod:`cardos.decoder`.

>>> zh = Messages("zh")
>>> zh("shell.balance", purse=zh.purse("EP"), money="47.50")
'电子钱包余额 47.50'
>>> Messages("en")("shell.balance", purse=Messages("en").purse("EP"), money="47.50")
'EP balance 47.50'
>>> zh.field("counter", bytes.fromhex("805001020B")), zh.field("counter", bytes.fromhex("805000020B"))
('脱机交易序号', '联机交易序号')
>>> zh.pad("余额", 6) + "|", Messages("en").pad("balance", 9, right=True) + "|"
('余额  |', '  balance|')
"""
from __future__ import annotations

import unicodedata

LANGS = ("en", "zh")

# message id -> (English, Chinese); placeholders are str.format fields
CATALOGUE: dict[str, tuple[str, str]] = {
    # cardos shell
    "shell.intro": ("cardos shell on {label} — ATR {atr}; help lists the commands",
                    "cardos shell：{label} — ATR {atr}；help 列出全部命令"),
    "shell.no_mf": ("no MF selected ({reason})", "未选中 MF（{reason}）"),
    "shell.usage": ("usage: {text}", "用法：{text}"),
    "shell.failure": ("Failure: {text}", "失败：{text}"),
    "shell.error": ("error: {text}", "错误：{text}"),
    "shell.unknown": ("unknown command {word!r} (help lists the commands)", "未知命令 {word!r}（help 列出全部命令）"),
    "shell.entering": ("(entering the purse application aid:{aid})", "（进入钱包应用 aid:{aid}）"),
    "shell.already_mf": ("already in the MF", "已在 MF"),
    "shell.app_blocked": ("the application is blocked (selected; file commands answer 6A81)",
                          "应用已锁定（已选择；文件命令回 6A81）"),
    "shell.ef_current": ("{fid} is an EF of {where}: it is now the current file (cat reads it)",
                         "{fid} 是 {where} 下的 EF：现为当前文件（cat 读取它）"),
    "shell.pin_verified": ("PIN verified", "口令校验通过"),
    "shell.success": ("Success!", "成功！"),
    "shell.random": ("random {hex}", "随机数 {hex}"),
    "shell.balance": ("{purse} balance {money}", "{purse}余额 {money}"),
    "shell.no_transactions": ("no transactions", "无交易记录"),
    "shell.no_keys": ("no keys (start the shell with --keys FILE)", "无密钥（用 --keys FILE 启动 shell）"),
    "shell.needs_keys": ("{what} needs keys: start the shell with --keys FILE (a key set, or 'sample')",
                         "{what}需要密钥：用 --keys FILE 启动 shell（密钥集文件，或 'sample'）"),
    "shell.amount_usage": ("{kind} AMOUNT [ep|ed]  (AMOUNT in fen (分), or in yuan with a decimal point: 2.50)",
                           "{kind} 金额 [ep|ed]（金额以分为单位，或带小数点的元：2.50）"),
    "shell.sfi_range": ("{target}: sfi:N with N in hex, 1 to 1F", "{target}：sfi:N，N 为十六进制 1 到 1F"),
    "shell.fid_digits": ("{target}: a FID is 4 hex digits (or sfi:N)", "{target}：文件标识为 4 位十六进制数（或 sfi:N）"),
    "shell.apdu_short": ("an APDU has at least 4 bytes (CLA INS P1 P2)", "APDU 至少 4 字节（CLA INS P1 P2）"),
    "shell.one_purse": ("one purse: ep or ed", "只能指定一个钱包：ep 或 ed"),
    "shell.file_type": ("type", "文件类型"),
    "shell.no_files": ("(no files found)", "（未找到文件）"),
    "shell.dir_apps": ("applications listed in the DIR file:", "目录文件中登记的应用："),
    "shell.binary": ("{label}: binary, {n} bytes", "{label}：二进制文件，{n} 字节"),
    "shell.records": ("{label}: {n} record(s)", "{label}：{n} 条记录"),
    "shell.record": ("record {n}: {text}", "记录 {n}：{text}"),
    "shell.no_ef": ("no current EF: cat FID, cat sfi:N, or cd to an EF first",
                    "无当前 EF：cat FID、cat sfi:N，或先 cd 到一个 EF"),
    "shell.record_text": ("counter {counter}  {type}  amount {amount}  overdraw {overdraw}  terminal {terminal}  "
                          "{date} {time}",
                          "交易序号 {counter}  {type}  交易金额 {amount}  透支限额 {overdraw}  终端机编号 {terminal}  "
                          "{date} {time}"),
    # cardos shell: transaction record lines (load, purchase)
    "tx.line": ("{type}: card {serial} counter {counter} amount {amount} balance {balance} terminal {terminal}"
                "{extra} {date} {time} TAC {tac}",
                "{type}：卡号 {serial} 交易序号 {counter} 交易金额 {amount} 余额 {balance} 终端机编号 {terminal}"
                "{extra} {date} {time} TAC {tac}"),
    "tx.tsn": (" tsn {tsn}", " 终端交易序号 {tsn}"),
    "tx.new_limit": (" new limit {limit}", " 新透支限额 {limit}"),
    # the decoded trace (cardos run, decode, shell)
    "trace.response": ("response", "响应"),
    # cardos run
    "run.card": ("card: {card}", "卡片：{card}"),
    "run.ok": ("ok", "通过"),
    "run.fail": ("FAIL", "失败"),
    "run.expected_got": ("expected {expected}, got {actual}", "期望 {expected}，实际 {actual}"),
    "run.skipped": ("skipped: {why}", "跳过：{why}"),
    "run.summary": ("{scripts} script(s): {counts} — {apdus} APDUs, {checks} checks, {failures} failed ({seconds} s)",
                    "{scripts} 个脚本：{counts} — {apdus} 条 APDU，{checks} 项检查，{failures} 项失败（{seconds} 秒）"),
    "run.count": ("{n} {status}", "{status} {n}"),
    "run.count_separator": (", ", "，"),
    "run.none_run": ("none run", "未运行"),
    "run.failed_list": ("failed:", "失败项："),
    "run.status.passed": ("passed", "通过"),
    "run.status.failed": ("failed", "失败"),
    "run.status.error": ("error", "出错"),
    "run.status.skipped": ("skipped", "跳过"),
    "run.status.transport": ("transport", "传输失败"),
    "check.sw": ("status word {sw} ({meaning}), expected {expected}", "状态字 {sw}（{meaning}），期望 {expected}"),
    "check.data": ("response data {shown} does not match {expected}: {why}",
                   "响应数据 {shown} 与 {expected} 不符：{why}"),
    "check.no_data": ("no data", "无数据"),
    "check.is_not": ("{value} is not {pattern}", "{value} 不是 {pattern}"),
    "check.matches": ("{value} matches {pattern}", "{value} 与 {pattern} 相符"),
    "check.empty": ("(empty)", "（空）"),
    # why response data does not match a pattern (cardos.scripting.patterns)
    "pattern.byte": ("byte {k} is {got}, expected {want}", "第 {k} 字节为 {got}，期望 {want}"),
    "pattern.length": ("{n} bytes, expected {want}", "{n} 字节，期望 {want} 字节"),
    "pattern.from_byte": ("no match from byte {k} ({got})", "从第 {k} 字节（{got}）起不符"),
    "pattern.too_short": ("{n} bytes, too short for the pattern", "{n} 字节，比模式短"),
    # cardos inspect
    "inspect.head": ("EEPROM {used} of {size} bytes used; card {blocked}",
                     "EEPROM 已用 {used} / {size} 字节；卡片{blocked}"),
    "inspect.blocked": ("BLOCKED", "已锁定"),
    "inspect.not_blocked": ("not blocked", "未锁定"),
    "inspect.files": ("Files", "文件"),
    "inspect.keys": ("Keys", "密钥"),
    "inspect.no_values": ("  (values are never shown)", "（从不显示密钥值）"),
    "inspect.key_type": ("type", "密钥类型"),
    "inspect.purses": ("Purses", "钱包"),
    "inspect.none": ("  none", "  无"),
    "inspect.history": ("Transaction history {df} SFI {sfi}{whose}", "交易明细 {df} SFI {sfi}{whose}"),
    "inspect.history_count": ("  {n} of {capacity} records, newest first", "  {n} / {capacity} 条记录，最新在前"),
}

# column headings and labels (English word -> Chinese)
WORDS: dict[str, str] = {
    "#": "#", "counter": "交易序号", "type": "交易类型", "amount": "交易金额", "overdraw": "透支限额",
    "terminal": "终端机编号", "date": "交易日期", "time": "交易时间", "card": "卡片", "ATR": "ATR", "path": "路径",
    "DF name": "DF 名称", "keys": "密钥", "FCI": "FCI", "name / content": "名称 / 内容",
    "DF": "DF", "purse": "钱包", "balance": "余额", "online ctr": "联机交易序号", "offline ctr": "脱机交易序号",
    "use right": "使用权限", "TAC key": "TAC 密钥", "log SFI": "明细 SFI", "MAC failures": "MAC 错误次数",
    "id": "标识", "algorithm": "算法", "version / counter": "版本 / 次数", "use": "使用权限", "change": "更改权限",
    "current EF": "当前 EF",
    # FCI tags (cardos shell info)
    "FCI template": "FCI 模板", "proprietary data": "专用数据", "SFI of the DIR file": "目录文件短文件标识符",
    "issuer data (0015)": "发卡方自定义数据（0015）", "FCI issuer discretionary data": "FCI 发卡方自定义数据",
    "application serial": "应用序列号",
    # key types (cardos inspect; reference §2 key file)
    "encryption": "加密密钥", "decryption": "解密密钥", "MAC": "MAC 密钥", "TAC (DTK)": "TAC 密钥（内部密钥）",
    "line protection (DAMK)": "线路保护密钥", "PIN unblock (DPUK)": "口令解锁密钥", "PIN reload (DRPK)": "重装口令密钥",
    "external authentication": "外部认证密钥", "PIN": "口令", "overdraw update (DUK)": "修改透支限额密钥",
    "unload (DULK)": "圈提密钥", "purchase (DPK)": "消费/取现密钥", "load (DLK)": "圈存密钥",
    # file kinds (cardos shell ls)
    "binary": "二进制", "records": "记录", "(protected)": "（受保护）", "records (protected)": "记录（受保护）",
    "other": "其他", "EF": "EF",
}

# decoded field names (cardos.decoder layouts) -> Chinese label
FIELDS: dict[str, str] = {
    "key_id": "密钥索引号", "amount": "交易金额", "terminal": "终端机编号", "balance": "余额",
    "counter": "交易序号", "key_version": "密钥版本号", "algorithm": "算法标识", "random": "随机数",
    "overdraw_limit": "透支限额", "limit": "透支限额", "date": "交易日期", "time": "交易时间",
    "tsn": "终端交易序号", "type": "交易类型", "mac": "MAC", "mac1": "MAC1", "mac2": "MAC2", "mac3": "MAC3",
    "tac": "TAC", "fid": "文件标识", "fci": "文件控制信息", "df_name": "DF名称", "name": "DF名称",
    "cryptogram": "认证密文", "result": "运算结果", "pin": "口令", "encrypted_pin": "加密口令",
    "old_pin": "原口令", "new_pin": "新口令", "separator": "分隔符", "file_type": "文件类型", "size": "文件空间",
    "create_right": "建立权限", "erase_right": "擦除权限", "app_file_id": "应用文件标识", "reserved": "保留",
    "df_sfi": "短文件标识符", "add_right": "增加权限", "use_right": "使用权限", "tac_key_id": "TAC密钥标识",
    "record_sfi": "明细文件短文件标识符", "read_right": "读权限", "write_right": "写权限", "protection": "线路保护",
    "key_type": "密钥类型", "change_right": "更改权限", "header3": "参数3", "header4": "参数4", "key": "密钥",
    "data": "数据",
}

# transaction type byte (reference §3.3) -> Chinese
TX_TYPES: dict[int, str] = {
    0x01: "电子存折圈存", 0x02: "电子钱包圈存", 0x03: "电子存折圈提", 0x04: "电子存折取现",
    0x05: "电子存折消费", 0x06: "电子钱包消费", 0x07: "修改透支限额", 0x09: "复合消费",
}
PURSES: dict[str, str] = {"EP": "电子钱包", "ED": "电子存折"}

_ONLINE_INIT = (0x00, 0x04, 0x05)  # INITIALIZE FOR LOAD / UPDATE / UNLOAD answer the online counter
_OFFLINE_INIT = (0x01, 0x02, 0x03)  # ... PURCHASE / CASH WITHDRAW / CAPP PURCHASE the offline counter


class Phrase(str):
    """A catalogue message said in English that another :class:`Messages` can say again in its language.

    For code that explains something without knowing who will print it (a pattern that did not match).
    """

    key: str
    values: dict

    def __new__(cls, key: str, **values) -> "Phrase":
        phrase = super().__new__(cls, CATALOGUE[key][0].format(**values))
        phrase.key, phrase.values = key, values
        return phrase


def display_width(text: str) -> int:
    """Terminal columns of ``text``: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


class Messages:
    """The words of one language; ``msgs(id, **values)`` formats a catalogue entry."""

    def __init__(self, lang: str = "en"):
        if lang not in LANGS:
            raise ValueError(f"language {lang!r}: one of {', '.join(LANGS)}")
        self.lang = lang
        self.zh = lang == "zh"

    def __call__(self, key: str, **values) -> str:
        return CATALOGUE[key][1 if self.zh else 0].format(**values)

    def again(self, text: str) -> str:
        """``text`` in this language when it is a :class:`Phrase`, else as it is."""
        return self(text.key, **text.values) if isinstance(text, Phrase) else text

    def word(self, english: str) -> str:
        """A column heading or label: ``english`` itself, or its Chinese."""
        return WORDS.get(english, english) if self.zh else english

    def field(self, name: str, command: bytes = b"") -> str:
        """The label of a decoded field; ``command`` tells the online from the offline counter."""
        if not self.zh:
            return name
        if name == "counter" and len(command) >= 3 and command[1] == 0x50:
            if command[2] in _ONLINE_INIT:
                return "联机交易序号"
            if command[2] in _OFFLINE_INIT:
                return "脱机交易序号"
        return FIELDS.get(name, name)

    def tx_type(self, code: int, english: str) -> str:
        """A transaction type byte in words (``english``: how the caller says it in English)."""
        return TX_TYPES.get(code, english) if self.zh else english

    def purse(self, name: str) -> str:
        """``EP`` / ``ED`` (电子钱包 / 电子存折)."""
        return PURSES.get(name, name) if self.zh else name

    def pad(self, text: str, width: int, right: bool = False) -> str:
        """``text`` padded to ``width`` terminal columns (left-aligned, or right with ``right``)."""
        fill = " " * max(0, width - display_width(text))
        return fill + text if right else text + fill

    def transaction(self, record) -> str:
        """A :class:`cardos.terminal.records.TransactionRecord` on one line (English: its ``str``)."""
        if not self.zh:
            return str(record)
        d = record.to_dict()
        extra = self("tx.tsn", tsn=d["tsn"]) if record.tsn else ""
        if record.type == 0x07:
            extra += self("tx.new_limit", limit=f"{record.overdraw_limit / 100:.2f}")
        return self("tx.line", type=self.tx_type(record.type, record.type_name), serial=d["serial"],
                    counter=record.counter, amount=f"{record.amount / 100:.2f}",
                    balance=f"{record.balance / 100:.2f}", terminal=d["terminal"], extra=extra, date=d["date"],
                    time=d["time"], tac=d["tac"])
