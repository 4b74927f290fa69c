"""The usage chart reads as a chart: a y axis with round ticks up to at least the tallest bar, a
dated x axis, and no label drawn over a bar or over another label."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from modules.pipeline_ops.usage_report import nice_ticks, svg_bars

CHAR_W, CHAR_H = 6.5, 11  # an 11 px font's box, generously


def _boxes(svg: str) -> tuple[list[tuple], list[tuple]]:
    root = ET.fromstring(svg)
    texts, rects = [], []
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "text":
            x, y, w = float(el.get("x")), float(el.get("y")), len(el.text) * CHAR_W
            x0 = {"start": x, "middle": x - w / 2, "end": x - w}[el.get("text-anchor", "start")]
            texts.append((x0, y - CHAR_H, x0 + w, y, el.text))
        elif tag == "rect" and float(el.get("height")) > 0:
            x, y = float(el.get("x")), float(el.get("y"))
            rects.append((x, y, x + float(el.get("width")), y + float(el.get("height")), el.findtext("title")))
    return texts, rects


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("values", [[0] * 30, [5] * 30, [1, 37, 2] * 10, [0] * 29 + [12345], [999] + [0] * 29])
def test_axes_and_no_overlaps(values):
    days = [(date(2026, 11, 1) + timedelta(days=i)).isoformat() for i in range(len(values))]
    svg = svg_bars(list(zip(days, values, strict=True)), "calls per day")
    texts, rects = _boxes(svg)
    labels = [t[4] for t in texts]
    ticks = nice_ticks(max(values))
    assert ticks[-1] >= max(values) and [str(t) for t in ticks] == [x for x in labels if x.isdigit()]
    assert "calls per day" in labels and days[-1][5:] in labels and len([x for x in labels if "-" in x]) >= 4
    assert "max" not in svg
    for t in texts:
        for r in rects:
            assert not _overlap(t, r), f"label {t[4]!r} is drawn over the bar of {r[4]}"
        for other in texts:
            assert other is t or not _overlap(t, other), f"labels {t[4]!r} and {other[4]!r} overlap"
        assert t[0] >= 0 and t[2] <= 640, f"label {t[4]!r} is cut off"
