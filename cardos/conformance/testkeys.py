"""Keys the suite writes into its scratch DF (never into an issued application).

Public test values: they only ever protect files the suite creates and
erases again. 16-byte keys are 2-key 3DES, 8-byte keys single DES.
"""
AUTH = bytes.fromhex("A1A2A3A4A5A6A7A8B1B2B3B4B5B6B7B8")
AUTH_OTHER = bytes.fromhex("C1C2C3C4C5C6C7C8D1D2D3D4D5D6D7D8")
AUTH_DES = bytes.fromhex("0102030405060708")          # reference §7 row 2 key
LINE = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
LINE_OTHER = bytes.fromhex("FFEEDDCCBBAA99887766554433221100")
UNBLOCK = bytes.fromhex("37373737373737371122334455667788")
RELOAD = bytes.fromhex("38383838383838381122334455667788")
VECTOR = bytes.fromhex("1122334455667788")            # reference §7 row 1 key

__all__ = ["AUTH", "AUTH_DES", "AUTH_OTHER", "LINE", "LINE_OTHER", "RELOAD", "UNBLOCK", "VECTOR"]
