"""The list rows as list.html rendered them before build/templates/rows/: a loop over the
columns with one `show()` (app.web.views.common.display) per cell (generic_rows.html beside this
file). Only the equivalence test and bench/list_profile.py --generic use it, to hold the compiled
rows to the old output and speed."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GENERIC_ROWS = Path(__file__).with_suffix(".html")



@contextmanager
def generic_rows(web_app: Any) -> Iterator[None]:
    """While inside, every list page of `web_app` (in this process) renders its rows the old way."""
    from app.web.ui import lang_of, zone_of
    from app.web.views import list as list_view
    from app.web.views.common import display

    template = web_app.template_engine.engine.from_string(GENERIC_ROWS.read_text(encoding="utf-8"))
    compiled = list_view.render

    def render(request: Any, name: str, **context: Any) -> Any:
        show = display(context["tv"], context["texts"], lang_of(request), zone_of(request))
        return compiled(request, name, **{**context, "rows_template": template, "show": show})

    list_view.render = render
    try:
        yield
    finally:
        list_view.render = compiled
