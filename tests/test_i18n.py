"""``--lang zh``: field names, messages and summaries in Chinese (shell, decode, run, inspect), English unchanged.

Each command runs as a real ``cardos`` subprocess on a city card issued with the shipped TEST keys; the
Chinese output must carry the Chinese labels and none of the English labels they replace, and the default
output must carry the English ones and no Chinese at all.
"""
from __future__ import annotations

import json
import re
import string
import subprocess

import pytest

from cardos.i18n import CATALOGUE, FIELDS, Messages, display_width

from .pcsc_fixtures import ROOT, cardos_command
from .test_shell import image, issued_image  # noqa: F401  (fixtures: a copy of a city card issued with TEST keys)

CJK = re.compile(r"[\u4e00-\u9fff]")
NOW = "2026-05-01T09:30:00"


def cardos(*args: str, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(cardos_command(*args), input=stdin, capture_output=True, text=True, timeout=60,
                          cwd=cwd or ROOT)


def without(text: str, *english: str) -> list:
    """The English labels still in ``text`` (each checked as a word, so ``counter`` does not match 交易序号)."""
    return [word for word in english if re.search(rf"(?<![\w.]){re.escape(word)}(?![\w])", text)]


# -- the catalogue ---------------------------------------------------------------------------------------

def test_every_message_has_both_languages_with_the_same_placeholders():
    fields = string.Formatter()
    for key, (en, zh) in CATALOGUE.items():
        assert en and zh, key
        assert {f for _t, f, _s, _c in fields.parse(en) if f} == {f for _t, f, _s, _c in fields.parse(zh) if f}, key


def test_messages_refuse_an_unknown_language_and_leave_english_as_it_was():
    with pytest.raises(ValueError, match="language 'fr'"):
        Messages("fr")
    en = Messages("en")
    assert [en.field(name) for name in FIELDS] == list(FIELDS)  # English field names are the decoder's own
    assert en.tx_type(0x06, "EP purchase") == "EP purchase" and Messages("zh").tx_type(0x06, "x") == "电子钱包消费"


# -- cardos shell -----------------------------------------------------------------------------------------

SESSION = "info\nbalance\nload 10.00\npurchase 2.50\nhistory\ncat sfi:18 1\nls\nnosuch\n"


def test_shell_in_chinese(image):
    done = cardos("shell", "--card", str(image), "--keys", "test", "--lang", "zh", stdin=SESSION)
    out = done.stdout
    assert done.returncode == 1, out  # the unknown command failed
    for label in ("路径", "终端机编号", "FCI 模板", "电子钱包余额 0.00",
                  "电子钱包圈存：卡号 3100000000000042 交易序号 0 交易金额 10.00 余额 10.00",
                  "电子钱包消费：卡号 3100000000000042 交易序号 0 交易金额 2.50 余额 7.50", "终端交易序号 00000000",
                  "交易类型", "透支限额", "交易日期", "SFI 18：1 条记录", "记录 1：交易序号 1  电子钱包消费",
                  "用法：未知命令 'nosuch'", "FID   文件类型", "0018  EF 记录", "0015  EF 二进制",
                  # the decoded trace: command names, field names, the counter by its kind, status words
                  "圈存初始化（电子钱包）", "余额=00000000 (0.00) 联机交易序号=0000", "脱机交易序号=0000",
                  "密钥索引号=01 交易金额=000003E8 (10.00)", "交易类型=06 (电子钱包消费)", "90 00  成功"):
        assert label in out, label
    assert without(out, "EP balance", "EP load", "EP purchase", "counter", "amount", "overdraw", "terminal",
                   "path", "usage", "Failure", "record", "records", "binary", "balance=", "key_id=", "success", "unknown command") == []


def test_shell_in_english_is_unchanged(image):
    out = cardos("shell", "--card", str(image), "--keys", "test", stdin=SESSION).stdout
    for label in ("path       3F00", "EP balance 0.00", "EP load: card 3100000000000042 counter 0 amount 10.00",
                  " #  counter  type", "SFI 18: 1 record(s)", "record 1: counter 1  EP purchase",
                  "usage: unknown command 'nosuch'", "FID   type", "0018  EF records", "key_id=01 amount=000003E8 (10.00)", "90 00  success"):
        assert label in out, label
    assert not CJK.search(out), CJK.findall(out)


# -- cardos run -------------------------------------------------------------------------------------------

SCRIPT = """\
00 A4 04 00 09 A0 00 00 00 03 86 98 07 01 00
purse.load amount=20.00
purse.balance                     => [00000001] 9000
expect ${purse.balance} == 00000002
00 A4 00 00 02 3F 01              => 9000
"""


def test_run_summary_and_mismatches_in_chinese(image, tmp_path):
    script = tmp_path / "shop.apdu"
    script.write_text(SCRIPT)
    args = ("run", "--card", str(image), "--keys", "test", "--keep-going", "--now", NOW, "--no-color", str(script))
    zh = cardos(*args, "--lang", "zh")
    assert zh.returncode == 1, zh.stderr
    out = zh.stdout
    for label in ("卡片：", "通过   => 9000", "# 电子钱包圈存：卡号 3100000000000042 交易序号 0 交易金额 20.00",
                  "响应数据 000007D0 与 [00 00 00 01] 不符", "失败 ", "状态字 6A82（未找到文件），期望 9000",
                  "== 1 个脚本：失败 1 — ", "项检查，3 项失败", "失败项：", "余额=000007D0 (20.00)"):
        assert label in out, label
    assert "000007D0 不是 00 00 00 02: 第 2 字节为 07，期望 00" in out
    assert without(out, "ok", "FAIL", "script(s)", "failed", "failed:", "status word", "response data", "expected",
                   "byte", "is not", "EP load", "balance=", "card:") == []
    en = cardos(*args).stdout
    for label in ("ok   => 9000", "# EP load: card 3100000000000042 counter 1 amount 20.00",  # the card's second load
                  "status word 6A82 (file not found), expected 9000", "== 1 script(s): 1 failed — ", "failed:",
                  "response data 00000FA0 does not match [00 00 00 01]: byte 2 is 0F, expected 00",
                  "00000FA0 is not 00 00 00 02: byte 2 is 0F, expected 00"):
        assert label in en, label
    assert not CJK.search(en), CJK.findall(en)


def test_json_keys_stay_english_with_lang_zh(image, tmp_path):
    script = tmp_path / "shop.apdu"
    script.write_text(SCRIPT)
    done = cardos("run", "--card", str(image), "--keys", "test", "--now", NOW, "--json", "-", "--lang", "zh",
                  str(script))
    events = [json.loads(line) for line in done.stdout.splitlines()]
    balance = next(e for e in events if e["event"] == "exchange" and e["command"].startswith("805C"))
    assert balance["name"] == "读余额（电子钱包）" and balance["response_fields"] == {"balance": "000007D0"}


# -- cardos decode ----------------------------------------------------------------------------------------

def test_decode_in_chinese_and_back(image, tmp_path):
    script = tmp_path / "shop.apdu"
    script.write_text(SCRIPT)
    trace = cardos("run", "--card", str(image), "--keys", "test", "--keep-going", "--now", NOW, "--no-color",
                   str(script)).stdout
    (tmp_path / "en.log").write_text(trace)
    zh = cardos("decode", str(tmp_path / "en.log"), "--lang", "zh", "--no-color").stdout
    for label in ("圈存初始化（电子钱包）", "密钥索引号=01 交易金额=000007D0 (20.00) 终端机编号=010203040506",
                  "联机交易序号=0000 密钥版本号=01 算法标识=00 随机数=", "交易日期=20260501 (2026-05-01)",
                  "交易时间=093000 (09:30:00) MAC2=", "余额=000007D0 (20.00)"):
        assert label in zh, label
    assert without(zh, "key_id=", "amount=", "terminal=", "balance=", "counter=", "date=", "time=") == []
    # a Chinese trace reads back as the same APDUs (its field lines are not taken for comments)
    (tmp_path / "zh.log").write_text(zh)
    again = cardos("decode", str(tmp_path / "zh.log"), "--no-color").stdout
    english = cardos("decode", str(tmp_path / "en.log"), "--no-color").stdout
    assert [x for x in again.splitlines() if x.startswith("  >")] == \
        [x for x in english.splitlines() if x.startswith("  >")]
    assert "# 密钥索引号" not in cardos("decode", str(tmp_path / "zh.log"), "--lang", "zh").stdout


# -- cardos inspect ---------------------------------------------------------------------------------------

def test_inspect_in_chinese(image):
    done = cardos("shell", "--card", str(image), "--keys", "test", stdin="load 10.00\npurchase 2.50\n")
    assert done.returncode == 0, done.stdout
    out = cardos("inspect", str(image), "--lang", "zh").stdout
    for label in ("EEPROM 已用", "卡片未锁定", "文件", "密钥（从不显示密钥值）", "钱包", "电子钱包", "电子存折",
                  "余额", "透支限额", "联机交易序号", "脱机交易序号", "交易明细 3F00/1001 SFI 18 (电子钱包/电子存折)",
                  "2 / 10 条记录，最新在前", "电子钱包消费", "电子钱包圈存", "圈存密钥", "消费/取现密钥", "TAC 密钥"):
        assert label in out, label
    assert without(out, "Purses", "Keys", "Files", "Transaction history", "balance", "overdraw", "online ctr",
                   "offline ctr", "EP purchase", "EP load", "newest first", "load (DLK)") == []
    purses = next(i for i, x in enumerate(out.splitlines()) if x == "钱包")
    header, ep = out.splitlines()[purses + 1:purses + 3]
    # right-aligned under 余额, counting two terminal columns for each Chinese character
    assert display_width(ep[:ep.index("7.50") + 4]) == display_width(header[:header.index("余额") + 2])
    en = cardos("inspect", str(image)).stdout
    assert "Purses" in en and "EP purchase" in en and not CJK.search(en)
