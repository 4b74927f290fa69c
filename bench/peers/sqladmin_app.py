"""SQLAdmin over the `pipelines` table, the peer `bench/peers.py` compares Pipeline-App with.

Run by that script in its own virtual environment (never the project's `py3/`):

    PEER_DB=mysql+aiomysql://root@127.0.0.1:3306/DB PEER_PASSWORD=... \
        uvicorn sqladmin_app:app --app-dir bench/peers --workers 1

The list is set up as Pipeline-App's: the same 6 columns, 20 rows a page, newest first
(`created_at` then `id`, descending, so all three servers show the same 20 rows), search on code,
name and owner, a filter on status. It reads the same async MySQL driver (aiomysql). Login is
SQLAdmin's documented session backend: one admin whose password comes from the environment,
kept in Starlette's signed session cookie.
"""
from __future__ import annotations

import os
from datetime import datetime

from sqladmin import Admin, ModelView
from sqladmin.authentication import AuthenticationBackend
from sqladmin.filters import StaticValuesFilter
from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request

PASSWORD = os.environ["PEER_PASSWORD"]


class Base(DeclarativeBase):
    pass


class Pipeline(Base):
    """The existing table, mapped whole (the list selects every column, as the other two do)."""

    __tablename__ = "pipelines"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(32))
    published_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_by: Mapped[str | None] = mapped_column(String(32))


STATUSES = [("draft", "Draft"), ("active", "Active"), ("disabled", "Disabled"), ("archived", "Archived")]


class PipelineAdmin(ModelView, model=Pipeline):
    column_list = [Pipeline.code, Pipeline.name, Pipeline.status, Pipeline.owner, Pipeline.published_version,
                   Pipeline.created_at]
    column_labels = {Pipeline.code: "Code", Pipeline.name: "Name", Pipeline.status: "Status",
                     Pipeline.owner: "Owner", Pipeline.published_version: "Published version",
                     Pipeline.created_at: "Created at"}
    column_searchable_list = [Pipeline.code, Pipeline.name, Pipeline.owner]
    column_sortable_list = column_list
    column_default_sort = [(Pipeline.created_at, True), (Pipeline.id, True)]
    column_filters = [StaticValuesFilter(Pipeline.status, STATUSES)]
    page_size = 20
    page_size_options = [20]


class OneAdmin(AuthenticationBackend):
    """User `admin` with the password of the environment; the session cookie says who is in."""

    async def login(self, request: Request) -> bool:
        form = await request.form()
        if form.get("username") != "admin" or form.get("password") != PASSWORD:
            return False
        request.session.update({"user_id": "admin"})
        return True

    async def logout(self, request: Request) -> bool:
        request.session.clear()
        return True

    async def authenticate(self, request: Request) -> bool:
        return request.session.get("user_id") == "admin"


app = Starlette()
engine = create_async_engine(os.environ["PEER_DB"])  # the default pool, as Pipeline-App has
admin = Admin(app, engine, authentication_backend=OneAdmin(secret_key=os.environ.get("PEER_SECRET", PASSWORD * 2)))
admin.add_view(PipelineAdmin)
