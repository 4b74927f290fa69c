"""The start page: the modules and tables this user may open."""
from __future__ import annotations

from litestar import Request, get
from litestar.response import Template

from app.web.render import render


@get("/", include_in_schema=False)
async def home(request: Request) -> Template:
    return render(request, "home.html")


handlers = [home]
