"""How values read for people: money, unit prices and times, one function per kind for every page.

Stored values stay exact (Decimal at the column's scale, naive UTC); only what a page shows is
rounded or moved into a zone:

* money (`format: money`): the currency's minor units (CNY 2, JPY 0, from Babel's CLDR data),
  rounded half up as on an invoice, with grouping ("1,234.50");
* a unit price (`format: unit_price`): the column's scale with trailing zeros trimmed to at least
  the currency's minor units ("0.008333", "0.02");
* a time: the business time zone (`PIPELINE_TZ`), to the second; pages say which zone once per
  column or field (`zone_note`), not in every cell, so cells stay short and line up.

Babel rather than hand-written rounding tables: it knows every currency's minor units and each
language's separators. The pages pass the language and the zone in; nothing here reads a request.
"""
from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from babel.numbers import format_decimal, get_currency_precision
from markupsafe import Markup, escape

from app.core.clock import to_local, to_utc

DEFAULT_CURRENCY = "CNY"
_LOCALES = {"zh": "zh_CN", "en": "en"}


@lru_cache(maxsize=64)
def minor_units(currency: str | None) -> int:
    """Decimal places of the currency's minor unit (an unknown code: Babel's default, 2)."""
    return get_currency_precision((currency or DEFAULT_CURRENCY).upper())


def _decimal(value: Any) -> Decimal | None:
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _pattern(least: int, most: int) -> str:
    return "#,##0" + ("." + "0" * least + "#" * (most - least) if most else "")


def money(value: Any, currency: str | None = None, lang: str = "zh") -> str:
    """An amount in the currency's minor units: 30 → "30.00", 0.125 → "0.13" (half up)."""
    number = _decimal(value)
    if number is None:
        return str(value)
    places = minor_units(currency)
    rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return format_decimal(rounded, format=_pattern(places, places), locale=_LOCALES.get(lang, "en"))


def unit_price(value: Any, currency: str | None = None, scale: int | None = 6, lang: str = "zh") -> str:
    """A price per unit at the column's scale, trailing zeros trimmed to the currency's minor units:
    0.008333 → "0.008333", 0.020000 → "0.02"."""
    number = _decimal(value)
    if number is None:
        return str(value)
    least = minor_units(currency)
    most = max(least, scale if scale is not None else 6)
    rounded = number.quantize(Decimal(1).scaleb(-most), rounding=ROUND_HALF_UP)
    return format_decimal(rounded, format=_pattern(least, most), locale=_LOCALES.get(lang, "en"))


def local_time(value: datetime, tz_name: str) -> str:
    """A stored (naive UTC) time in the business zone, to the second: "2026-12-02 00:00:00"."""
    return to_local(value, tz_name).strftime("%Y-%m-%d %H:%M:%S")


def typed_time(text: str, tz_name: str) -> str:
    """A time typed into a form (a `datetime-local` value, in the business zone) as the naive UTC
    text the store takes; text that is no time is returned as it is, for the store's message."""
    try:
        return to_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")), tz_name).isoformat(sep=" ")
    except (ValueError, OverflowError):
        return text


def zone_note(tz_name: str) -> Markup:
    """What a column heading or a field title says of its times: the zone's name."""
    return Markup(' <small class="tz">({})</small>').format(escape(tz_name))


def cell(f: Any, value: Any, row: dict[str, Any], lang: str, tz_name: str) -> str | None:
    """A value by its field's kind (money, unit price, datetime), or None when the kind has no
    display of its own (the caller shows it as it is)."""
    if f.type == "decimal" and f.format in ("money", "unit_price"):
        currency = row.get("currency") or DEFAULT_CURRENCY
        if f.format == "money":
            return money(value, currency, lang)
        return unit_price(value, currency, f.dec, lang)
    if f.is_datetime:
        when = as_datetime(value)
        return None if when is None else local_time(when, tz_name)
    return None


def as_datetime(value: Any) -> datetime | None:
    """A stored time as rows reach the pages: a datetime, or its ISO text (`jsonable`)."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
