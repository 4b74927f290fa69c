"""Password hashes: passlib argon2id (pbkdf2_sha256 still verified), never reversible encryption."""
from __future__ import annotations

from functools import lru_cache

from passlib.context import CryptContext

# argon2id with the OWASP minimum (19 MiB, t=2, p=1): ~50 ms per verify instead of passlib's
# 100 MiB default, so a burst of logins cannot exhaust a small machine's memory.
CONTEXT = CryptContext(
    schemes=["argon2", "pbkdf2_sha256"],
    argon2__memory_cost=19456, argon2__time_cost=2, argon2__parallelism=1,
)


def hash_password(password: str) -> str:
    return CONTEXT.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return CONTEXT.hash("not a password of anyone")


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches `stored`. An unknown user (`stored` None) or a value that is
    not a passlib hash (the ecosystem's reversible encryption) is False, after the same work as a
    real check, so the answer's timing does not tell whether the user exists."""
    try:
        if not stored:
            CONTEXT.verify(password, _dummy_hash())
            return False
        return CONTEXT.verify(password, stored)
    except (ValueError, TypeError):
        CONTEXT.verify(password, _dummy_hash())
        return False
