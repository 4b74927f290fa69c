"""Settings of the benchmark's Django admin: production-like (DEBUG off, persistent database
connections), the admin's default apps and middleware, everything else left at Django's defaults.

`PEER_DB` is a `mysql://user:password@host:port/name` URL; PyMySQL stands in for mysqlclient,
which needs C headers this machine lacks. Django's own tables (users, sessions, content types)
live in the same throwaway database as `pipelines`; the run drops it whole.
"""
from __future__ import annotations

import os
from urllib.parse import urlsplit

import pymysql

pymysql.install_as_MySQLdb()

_db = urlsplit(os.environ["PEER_DB"])
SECRET_KEY = os.environ.get("PEER_SECRET", "bench-only-" + "x" * 40)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "django_site.urls"
WSGI_APPLICATION = "django_site.wsgi.application"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_site",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {
    "ENGINE": "django.db.backends.mysql",
    "NAME": _db.path.lstrip("/"),
    "USER": _db.username or "root",
    "PASSWORD": _db.password or "",
    "HOST": _db.hostname or "127.0.0.1",
    "PORT": str(_db.port or 3306),
    "CONN_MAX_AGE": 600,  # one connection per thread, kept: Django's default (0) reconnects per request
    "OPTIONS": {"charset": "utf8mb4"},
}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False  # the table holds naive DATETIMEs, as Pipeline-App writes them
STATIC_URL = "/static/"
