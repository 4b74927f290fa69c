"""Settings: `conf/config.yaml`, overridden by environment variables, resolved once per process."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(os.environ.get("PIPELINE_HOME") or Path(__file__).resolve().parents[2])

ENV = {
    "rbac_default_orgid": "SAGE_RBAC_DEFAULT_ORG",
    "database": "PIPELINE_DB",
    "rbac_database": "SAGE_RBAC_DB",
    "port": "PIPELINE_PORT",
    "host": "PIPELINE_HOST",
    "workers": "PIPELINE_WORKERS",
    "data_dir": "PIPELINE_DATA",
    "business_timezone": "PIPELINE_TZ",
    "key_secret": "PIPELINE_KEY_SECRET",
    "rbac_password_scheme": "SAGE_RBAC_PASSWORD_SCHEME",
    "rbac_password_key": "SAGE_RBAC_PASSWORD_KEY",
    "metrics_token": "PIPELINE_METRICS_TOKEN",
    "access_contact": "PIPELINE_ACCESS_CONTACT",
    "session_cache_seconds": "PIPELINE_SESSION_CACHE_SECONDS",
    "list_count_limit": "PIPELINE_LIST_COUNT_LIMIT",
}


@dataclass
class Settings:
    database: str
    rbac_database: str
    port: int = 9090
    host: str = "127.0.0.1"
    workers: int = 1
    data_dir: Path = ROOT / "data"
    business_timezone: str = "Asia/Shanghai"
    key_secret: str = ""
    key_grace_hours: float = 24
    call_lease_minutes: float = 10
    session_hours: float = 12
    key_cache_seconds: float = 3
    rbac_cache_seconds: float = 3
    session_cache_seconds: float = 3  # a session row is re-read this often per worker
    rbac_defaults: dict[str, list[str]] = field(default_factory=dict)
    rbac_password_scheme: str = "argon2"   # argon2 (our own RBAC database) or ecosystem (a shared one)
    rbac_password_key: str = "ytguiojbhvhbnkl"  # the platform's key of the ecosystem format
    rbac_default_orgid: str = "pipeline-app"      # users.orgid of users created here unless told
    rbac_default_orgname: str = "Pipeline-App"    # the organisation made for it when missing
    metrics_token: str | None = None  # a scraper's bearer token for /metrics; None = grants only
    access_contact: str | None = None  # whom the 403 page names besides the users who may grant
    list_count_limit: int = 10_000  # a list counts at most this many rows; above it says "more than"
    root: Path = ROOT

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"


def _secret(data_dir: Path) -> str:
    """A per-installation HMAC secret, made once and kept beside the data it protects."""
    path = data_dir / "key_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def load_settings(config: Path | None = None) -> Settings:
    raw: dict[str, Any] = yaml.safe_load((config or ROOT / "conf" / "config.yaml").read_text()) or {}
    for key, var in ENV.items():
        if os.environ.get(var):
            raw[key] = os.environ[var]
    data_dir = Path(raw.get("data_dir") or "data")
    data_dir = data_dir if data_dir.is_absolute() else ROOT / data_dir
    return Settings(
        database=raw.get("database") or f"sqlite:///{data_dir / 'pipeline.db'}",
        rbac_database=raw.get("rbac_database") or f"sqlite:///{data_dir / 'rbac.db'}",
        port=int(raw.get("port") or 9090),
        host=str(raw.get("host") or "127.0.0.1"),
        workers=int(raw.get("workers") or 1),
        data_dir=data_dir,
        business_timezone=str(raw.get("business_timezone") or "Asia/Shanghai"),
        key_secret=str(raw.get("key_secret") or "") or _secret(data_dir),
        key_grace_hours=float(raw.get("key_grace_hours", 24)),
        call_lease_minutes=float(raw.get("call_lease_minutes", 10)),
        session_hours=float(raw.get("session_hours", 12)),
        key_cache_seconds=float(raw.get("key_cache_seconds", 3)),
        rbac_cache_seconds=float(raw.get("rbac_cache_seconds", 3)),
        session_cache_seconds=float(raw.get("session_cache_seconds", 3)),
        rbac_defaults={k: list(v) for k, v in (raw.get("rbac_defaults") or {}).items()},
        rbac_password_scheme=_choice(raw, "rbac_password_scheme", ("argon2", "ecosystem")),
        rbac_password_key=str(raw.get("rbac_password_key") or "ytguiojbhvhbnkl"),
        rbac_default_orgid=str(raw.get("rbac_default_orgid") or "pipeline-app"),
        rbac_default_orgname=str(raw.get("rbac_default_orgname") or "Pipeline-App"),
        metrics_token=str(raw.get("metrics_token") or "") or None,
        access_contact=str(raw.get("access_contact") or "") or None,
        list_count_limit=max(1, int(raw.get("list_count_limit") or 10_000)),
    )


def _choice(raw: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    """A setting that must be one of `allowed` (the first is the default): a typo is refused at
    startup with the setting's name, never silently replaced."""
    value = str(raw.get(key) or allowed[0])
    if value not in allowed:
        raise SystemExit(f"config: {key} (env {ENV.get(key, '-')}) must be one of {', '.join(allowed)}, not {value!r}")
    return value
