"""The distributor page's key block: a key usable in a minute.

Shown once with a new key (the record page's secret block): the key with a copy button and a
ready `curl` against this server. Always: each key's state (prefix, created, expiry, last used:
time and client IP, written by `activity` every few seconds), a rotate form with a chosen grace
period, and the link to the API's docs.
"""
from __future__ import annotations

import shlex
from html import escape
from typing import Any

from litestar import Request
from litestar.utils.scope.state import ScopeState

from app.core.context import ctx_of
from app.core.i18n import Msg, gettext, pmsg
from app.web.formatting import as_datetime, local_time, zone_note
from app.web.ui import lang_of
from modules.pipeline_dist.dist_docs import PREFIX

# UI text of this module's blocks (Chinese in the catalogue, docs/i18n.md)
T_NO_KEY_YET = Msg('No key yet')
T_API_KEYS = Msg('API keys')
T_ROTATE_THE_OLD_KEY_WORKS_FOR = Msg('Rotate: the old key works for')
T_ROTATE_KEY = Msg('Rotate key')
T_DISTRIBUTOR_API_DOCS = Msg('Distributor API docs')
T_MONTHLY_STATEMENTS = Msg('Monthly statements')
T_AT_ONCE_A_LEAK = Msg('at once (a leak)')

GRACE_CHOICES = (0, 1, 24, 72, 168)  # hours the old key keeps working after a rotation


def try_it(request: Request, key: str) -> str:
    """A command that works as it is: this server, this key, the distributor's own pipelines."""
    url = str(request.base_url).rstrip("/") + PREFIX + "/pipelines"
    return f"curl -sS {shlex.quote(url)} -H {shlex.quote('Authorization: Bearer ' + key)}"


def _time(value: Any, tz_name: str) -> str:
    """A stored time as every page shows it (`app.web.formatting`); the headings name the zone."""
    when = as_datetime(value) if value is not None else None
    return "" if when is None else escape(local_time(when, tz_name))


def _when(value: Any, ip: Any, lang: str, tz_name: str) -> str:
    if value is None:
        return gettext(lang, 'never')
    return _time(value, tz_name) + (f" · {escape(str(ip))}" if ip else "")


def _csrf_input(request: Request) -> str:
    token = ScopeState.from_scope(request.scope).csrf_token
    if not isinstance(token, str):
        csrf = request.app.csrf_config
        token = request.cookies.get(csrf.cookie_name, "") if csrf else ""
    return f'<input type="hidden" name="_csrf_token" value="{escape(token)}">'


def keys_block(request: Request, tv: Any, row: dict[str, Any]) -> str:
    """Both keys' state and use, the rotate form with its grace choice, the docs link."""
    lang, tz = lang_of(request), ctx_of(request).settings.business_timezone
    rows = []
    if row.get("api_key_prefix"):
        rows.append((gettext(lang, 'Current key'), f"<code>{escape(row['api_key_prefix'])}…</code>",
                     _time(row.get("key_created_at"), tz),
                     _time(row.get("key_expires_at"), tz) or gettext(lang, 'no expiry'),
                     _when(row.get("key_last_used_at"), row.get("key_last_used_ip"), lang, tz)))
    if row.get("prev_key_expires_at"):
        rows.append((gettext(lang, 'Previous key (in its grace)'), "", "",
                     _time(row["prev_key_expires_at"], tz),
                     _when(row.get("prev_key_last_used_at"), row.get("prev_key_last_used_ip"), lang, tz)))
    note = zone_note(tz)
    head = [gettext(lang, "Key"), gettext(lang, "Prefix"), pmsg("api key", "Created").render(lang) + note,
            gettext(lang, "Expires") + note, gettext(lang, "Last used") + note]
    table = ("<div class='table-wrap'><table class='list keys'><thead><tr>"
             + "".join(f"<th scope='col'>{h}</th>" for h in head) + "</tr></thead><tbody>"
             + ("".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
                or f"<tr><td colspan='5' class='empty'>{T_NO_KEY_YET.render(lang)}</td></tr>")
             + "</tbody></table></div>")
    parts = [f"<section class='extra dist-keys'><h2>{T_API_KEYS.render(lang)}</h2>", table]
    if row.get("api_key_prefix"):
        default = ctx_of(request).settings.key_grace_hours
        options = "".join(
            f"<option value='{h}'{' selected' if h == default else ''}>"
            f"{T_AT_ONCE_A_LEAK.render(lang) if h == 0 else str(h) + ' h'}</option>"
            for h in sorted({*GRACE_CHOICES, default}))
        parts.append(
            f"<form method='post' action='{tv.base}/{escape(row['id'])}/rotate_key' class='rotate'>"
            f"{_csrf_input(request)}<label for='grace_hours'>"
            f"{T_ROTATE_THE_OLD_KEY_WORKS_FOR.render(lang)}</label> "
            f"<select id='grace_hours' name='grace_hours'>{options}</select> "
            f"<button type='submit'>{T_ROTATE_KEY.render(lang)}</button></form>")
    parts.append(f"<p><a href='{PREFIX}/docs'>{T_DISTRIBUTOR_API_DOCS.render(lang)}"
                 f"</a> · <a href='/pipeline_dist/statements?distributor_id={escape(row['id'])}'>"
                 f"{T_MONTHLY_STATEMENTS.render(lang)}</a></p></section>")
    return "".join(parts)
