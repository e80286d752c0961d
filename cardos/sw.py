"""Status words as typed constants (reference §3.13).

Fixed status words are members of :class:`SW`; the three families whose low
byte carries a number (``61XX`` bytes available, ``6CXX`` exact length,
``63CX`` tries left) are built by the helper functions below.
"""
from __future__ import annotations

from enum import IntEnum


class SW(IntEnum):
    OK = 0x9000
    DATA_MAY_BE_CORRUPT = 0x6281
    SELECTED_FILE_INVALID = 0x6283
    STATE_UNCHANGED = 0x6400
    EEPROM_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    CLA_PROTECTION_MISMATCH = 0x6900
    COMMAND_NOT_ACCEPTED = 0x6901
    WRONG_FILE_TYPE = 0x6981
    SECURITY_NOT_SATISFIED = 0x6982
    AUTH_BLOCKED = 0x6983
    REFERENCE_DATA_INVALID = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    SM_MISSING = 0x6987
    SM_WRONG = 0x6988
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NO_SPACE = 0x6A84
    WRONG_P1P2 = 0x6A86
    FILE_EXISTS = 0x6A86  # FMCOS answers CREATE of an existing FID with 6A86 (not ISO 6A89)
    KEY_NOT_FOUND = 0x6A88
    WRONG_OFFSET = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    INVALID_DATA = 0x6F00
    MAC_INVALID = 0x9302
    APP_PERMANENTLY_BLOCKED = 0x9303
    INSUFFICIENT_FUNDS = 0x9401
    COUNTER_AT_MAXIMUM = 0x9402
    KEY_INDEX_NOT_SUPPORTED = 0x9403
    MAC_UNAVAILABLE = 0x9406


def bytes_available(n: int) -> int:
    """``61XX``: XX more response bytes wait for GET RESPONSE (00 means 256 or more)."""
    return 0x6100 | (n if n < 0x100 else 0)


def exact_length(n: int) -> int:
    """``6CXX``: resend the command with Le = XX (00 means 256)."""
    return 0x6C00 | (n if n < 0x100 else 0)


def tries_left(n: int) -> int:
    """``63CX``: verification failed, X tries left."""
    return 0x63C0 | (n & 0x0F)


MEANINGS: dict[int, tuple[str, str]] = {
    SW.OK: ("success", "成功"),
    SW.DATA_MAY_BE_CORRUPT: ("returned data may be corrupt", "回送的数据可能错误"),
    SW.SELECTED_FILE_INVALID: ("selected file invalidated (blocked)", "选择文件无效"),
    SW.STATE_UNCHANGED: ("state of non-volatile memory unchanged", "状态标志未改变"),
    SW.EEPROM_FAILURE: ("memory write failed", "写EEPROM不成功"),
    SW.WRONG_LENGTH: ("wrong length", "长度错误"),
    SW.CLA_PROTECTION_MISMATCH: ("CLA does not match the line protection", "CLA与线路保护要求不匹配"),
    SW.COMMAND_NOT_ACCEPTED: ("command not accepted (no valid session)", "命令不接受（无效状态）"),
    SW.WRONG_FILE_TYPE: ("command incompatible with file or key type", "命令与文件结构不相容"),
    SW.SECURITY_NOT_SATISFIED: ("security status not satisfied", "不满足安全状态"),
    SW.AUTH_BLOCKED: ("key or PIN blocked", "认证方法锁定"),
    SW.REFERENCE_DATA_INVALID: ("reference data invalid (no challenge)", "引用数据无效（随机数无效）"),
    SW.CONDITIONS_NOT_SATISFIED: ("conditions of use not satisfied", "使用条件不满足"),
    SW.SM_MISSING: ("secure messaging data missing", "无安全报文"),
    SW.SM_WRONG: ("secure messaging MAC wrong", "安全报文数据项不正确"),
    SW.WRONG_DATA: ("wrong data field", "数据域参数错误"),
    SW.FUNCTION_NOT_SUPPORTED: ("function not supported / card or application blocked", "功能不支持或卡/应用锁定"),
    SW.FILE_NOT_FOUND: ("file not found", "未找到文件"),
    SW.RECORD_NOT_FOUND: ("record not found", "未找到记录"),
    SW.NO_SPACE: ("not enough space", "文件中存储空间不够"),
    SW.WRONG_P1P2: ("wrong P1 P2 (or file exists)", "参数P1P2不正确（或文件已存在）"),
    SW.KEY_NOT_FOUND: ("key not found", "密钥未找到"),
    SW.WRONG_OFFSET: ("offset outside the file", "偏移量越界"),
    SW.INS_NOT_SUPPORTED: ("instruction not supported", "INS不支持"),
    SW.CLA_NOT_SUPPORTED: ("class not supported", "CLA不支持"),
    SW.INVALID_DATA: ("no precise diagnosis", "数据无效"),
    SW.MAC_INVALID: ("MAC invalid", "MAC无效"),
    SW.APP_PERMANENTLY_BLOCKED: ("application permanently blocked", "应用已被永久锁定"),
    SW.INSUFFICIENT_FUNDS: ("insufficient balance", "金额不足"),
    SW.COUNTER_AT_MAXIMUM: ("transaction counter at maximum", "交易计数器到达最大值"),
    SW.KEY_INDEX_NOT_SUPPORTED: ("key index not supported", "密钥索引不支持"),
    SW.MAC_UNAVAILABLE: ("required MAC unavailable", "所需MAC不可用"),
}


def describe(sw: int, lang: str = "en") -> str:
    """A short meaning of ``sw`` in English (``en``) or Chinese (``zh``)."""
    index = 1 if lang == "zh" else 0
    if sw in MEANINGS:
        return MEANINGS[sw][index]
    high, low = sw >> 8, sw & 0xFF
    if high == 0x61:
        return (f"{low or 256} more bytes available", f"还有{low or 256}字节可取")[index]
    if high == 0x6C:
        return (f"wrong Le, exact length {low or 256}", f"Le错误，实际长度{low or 256}")[index]
    if sw & 0xFFF0 == 0x63C0:
        return (f"verification failed, {low & 0xF} tries left", f"认证失败，还剩{low & 0xF}次")[index]
    return ("unknown status word", "未知状态字")[index]
