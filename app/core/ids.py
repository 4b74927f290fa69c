"""Row ids: 32 hex characters, time-ordered so new rows land at the end of the index."""
from __future__ import annotations

import secrets
import time


def new_id() -> str:
    """12 hex digits of milliseconds since the epoch + 20 random hex digits (80 bits)."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(10)}"
