"""Password schemes of the RBAC database: argon2 for our own, the ecosystem's format for a shared one.

`argon2` (the default, for the embedded RBAC database the app creates): passlib argon2id, with
pbkdf2_sha256 still verified. `ecosystem` (for an RBAC database shared with the platform's other
apps): those apps store `base64(SALT + RC4(sha1(KEY + SALT), password))` and check a login by
encoding what was typed and comparing; a user we create must log in there too, so on a shared
database we write that format, and we never rewrite a row into one the other apps cannot read.
The format is reversible by anyone holding the key: docs/rbac.md says what that means and what a
platform must change to move off it. RC4 comes from `cryptography` (its `decrepit` module), not
from our own code.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher
from passlib.context import CryptContext

from app.core.config import Settings

# argon2id with the OWASP minimum (19 MiB, t=2, p=1): ~50 ms per verify instead of passlib's
# 100 MiB default, so a burst of logins cannot exhaust a small machine's memory.
CONTEXT = CryptContext(
    schemes=["argon2", "pbkdf2_sha256"],
    argon2__memory_cost=19456, argon2__time_cost=2, argon2__parallelism=1,
)
ECOSYSTEM_SALT = b"AFUqx9WZuI32lnHk"  # fixed by the ecosystem: every app of the platform uses it
SCHEMES = ("argon2", "ecosystem")


def ecosystem_encode(password: str, key: str) -> str:
    """The ecosystem's stored form of `password` (deterministic: that is how it is checked)."""
    rc4_key = hashlib.sha1(key.encode() + ECOSYSTEM_SALT).digest()
    data = Cipher(ARC4(rc4_key), mode=None).encryptor().update(password.encode("utf-8"))
    return base64.b64encode(ECOSYSTEM_SALT + data).decode("ascii")


def is_passlib_hash(stored: str | None) -> bool:
    return bool(stored) and CONTEXT.identify(stored) is not None


def is_ecosystem_value(stored: str | None) -> bool:
    """Does `stored` look like the ecosystem's format (base64 starting with the fixed salt)?"""
    try:
        return base64.b64decode(stored or "", validate=True).startswith(ECOSYSTEM_SALT)
    except ValueError:
        return False


def password_format(stored: str | None) -> str:
    """`argon2`, `pbkdf2_sha256`, `ecosystem`, `empty` or `unknown`: for `rbac check`."""
    if not stored:
        return "empty"
    if is_passlib_hash(stored):
        return CONTEXT.identify(stored)
    return "ecosystem" if is_ecosystem_value(stored) else "unknown"


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return CONTEXT.hash("not a password of anyone")


@dataclass(frozen=True)
class PasswordScheme:
    """How this app writes passwords (`name`) and which stored forms it accepts at login."""

    name: str = "argon2"
    key: str = ""  # the platform's key of the ecosystem format (settings.rbac_password_key)

    @classmethod
    def of(cls, settings: Settings) -> PasswordScheme:
        return cls(settings.rbac_password_scheme, settings.rbac_password_key)

    def hash(self, password: str) -> str:
        return ecosystem_encode(password, self.key) if self.name == "ecosystem" else CONTEXT.hash(password)

    def verify(self, password: str, stored: str | None) -> bool:
        """True when `password` matches `stored`. An unknown user (`stored` None) or a value of
        no accepted form is False after the same work as a real check, so timing does not tell
        whether the user exists. The ecosystem form is accepted only under that scheme."""
        if stored and is_passlib_hash(stored):
            try:
                return CONTEXT.verify(password, stored)
            except (ValueError, TypeError):
                return False
        CONTEXT.verify(password, _dummy_hash())
        if self.name == "ecosystem" and stored and is_ecosystem_value(stored):
            return hmac.compare_digest(ecosystem_encode(password, self.key), stored)
        return False


DEFAULT = PasswordScheme()


def hash_password(password: str, scheme: PasswordScheme = DEFAULT) -> str:
    return scheme.hash(password)


def verify_password(password: str, stored: str | None, scheme: PasswordScheme = DEFAULT) -> bool:
    return scheme.verify(password, stored)
