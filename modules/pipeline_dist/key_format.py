"""Distributor API keys: `pdk_` + 32 base62 characters (~190 bits) + a 6-character CRC32 checksum.

The checksum lets secret scanners recognise a leaked key and lets us refuse a mistyped one
without touching the database. At rest only an HMAC-SHA256 of the key (server-side secret) and
a short display prefix are kept; a slow password hash would buy nothing against 190 bits and
would cost the hot path hundreds of milliseconds.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib

PREFIX = "pdk_"
ALPHABET = string.digits + string.ascii_letters
BODY_LEN = 32
CHECK_LEN = 6
KEY_LEN = len(PREFIX) + BODY_LEN + CHECK_LEN
DISPLAY_LEN = len(PREFIX) + 6


def _base62(number: int, width: int) -> str:
    out = []
    while number:
        number, rem = divmod(number, 62)
        out.append(ALPHABET[rem])
    return "".join(reversed(out)).rjust(width, "0")


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECK_LEN)


def generate_key() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LEN))
    return PREFIX + body + _checksum(body)


def well_formed(key: str) -> bool:
    """Shape and checksum only: no database, no secret."""
    if len(key) != KEY_LEN or not key.startswith(PREFIX):
        return False
    body, check = key[len(PREFIX):-CHECK_LEN], key[-CHECK_LEN:]
    return all(c in ALPHABET for c in body) and hmac.compare_digest(check, _checksum(body))


def key_hash(key: str, secret: str) -> str:
    """HMAC-SHA256 with the server secret (plain SHA-256 only when no secret is configured)."""
    if secret:
        return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_LEN]
