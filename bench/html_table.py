"""What a list page shows a person: its table's column headers and each row's code.

`bench/peers.py` reads the list pages of three different admin apps with it, so it knows no
app's markup: the list is the page's table with the most body rows; a header cell without text
(a checkbox, an actions column) is not a column; a row's code is its first cell that is exactly
`bench-<n>`.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser


class Tables(HTMLParser):
    """Every table of a page: its header texts and its body rows' cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.part, self.cell = "", None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append({"head": [], "rows": []})
        elif tag in ("thead", "tbody") and self.tables:
            self.part = tag
        elif tag == "tr" and self.part == "tbody":
            self.tables[-1]["rows"].append([])
        elif tag in ("th", "td") and self.tables:
            self.cell = []

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self.cell is not None and self.tables:
            text = " ".join("".join(self.cell).split())
            table = self.tables[-1]
            if self.part == "thead":
                table["head"].append(text)
            elif table["rows"]:
                table["rows"][-1].append(text)
            self.cell = None
        elif tag in ("thead", "tbody"):
            self.part = ""


CODE = re.compile(r"bench-\d+")  # the codes bench/peers.py fills in


def shown(html: str) -> tuple[list[str], list[str]]:
    """(the list table's non-empty header texts, the code of each body row)."""
    parser = Tables()
    parser.feed(html)
    best = max(parser.tables, key=lambda t: len(t["rows"]), default={"head": [], "rows": []})
    codes = [next((c for c in row if CODE.fullmatch(c)), "?") for row in best["rows"]]
    return [h for h in best["head"] if h], codes
