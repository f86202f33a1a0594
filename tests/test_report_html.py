"""The HTML report: self-contained structure, charts, escaping, and a real browser render.

The structure tests always run. ``test_renders_in_headless_chromium`` renders the demo
report with Debian's ``chromium`` and checks the screenshot; it skips when chromium is
missing (fails under CI=true). Regenerate the docs screenshot with::

    python -m tests.test_report_html docs/img/report.png
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest

from paystab.report.base import renderer, write_report
from paystab.report.demo import demo_variants
from paystab.report.model import DetectionRecord, Report
from tests.conftest import require

VARIANTS = demo_variants()


class Tags(HTMLParser):
    """Every start tag with its attributes, and the open-tag stack balance."""

    VOID: ClassVar[set[str]] = {"meta", "br", "hr", "img", "input", "link", "line", "rect", "path"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(report: Report) -> tuple[str, Tags]:
    html = renderer("html").render(report)
    tags = Tags()
    tags.feed(html)
    tags.close()
    return html, tags


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_self_contained_and_balanced(name: str) -> None:
    html, tags = parse(VARIANTS[name])
    assert html.startswith("<!DOCTYPE html>") and tags.stack == []
    names = {t for t, _ in tags.tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed"}
    for tag, attrs in tags.tags:
        for key, value in attrs.items():
            if key in ("src", "href") or (value and "://" in value):
                pytest.fail(f"external reference <{tag} {key}={value!r}>")
    assert "@import" not in html and "url(" not in html and "://" not in html
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        ET.fromstring(svg)  # every chart is well-formed SVG


def test_pass_report_has_every_chart_and_section() -> None:
    _, tags = parse(VARIANTS["pass"])
    svgs = [a for t, a in tags.tags if t == "svg"]
    assert len(svgs) == 6
    sections = {a.get("id") for t, a in tags.tags if t == "section"}
    assert {"hypotheses", "charts", "incidents", "events", "reconciliation", "slo",
            "providers", "faults", "load"} <= sections
    titles = [a for t, a in tags.tags if t == "h3"]
    assert len(titles) == 6
    text = " ".join(tags.text)
    for expected in ("Customer success ratio", "Customer latency", "Provider attempts",
                     "Provider failures", "Provider state", "Error-budget burn",
                     "latency (ms, log scale)", "seconds since the drill started",
                     "customer success (%)", "SLO 99.99 %", "SLO p95 ≤ 500 ms",
                     "alpha-hang: provider.hang on provider:card-alpha from 15 s to 35 s",
                     "15.6 s drain: card-alpha — hang detected", "PASS"):
        assert expected in text, expected


def test_markers_and_bands_match_the_events() -> None:
    html = renderer("html").render(VARIANTS["pass"])
    success = ET.fromstring(re.findall(r"<svg.*?</svg>", html, flags=re.S)[0])
    tooltips = [t.text or "" for t in success.iter("title")]
    assert sum("detection:" in t for t in tooltips) == 3
    assert sum(" drain: " in t for t in tooltips) == 2
    assert sum(" restore: " in t for t in tooltips) == 2
    assert sum(t.startswith(("alpha-hang:", "paypay-slow:")) for t in tooltips) == 2


def test_everything_from_the_report_is_escaped() -> None:
    report = copy.deepcopy(VARIANTS["pass"])
    report.runbook = "<script>alert(1)</script>"
    report.detections.append(DetectionRecord("a&b", "<img src=x>", 20.0, "\"quoted\" <blink>"))
    html, tags = parse(report)
    assert not {t for t, _ in tags.tags} & {"script", "img", "blink"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_unmeasured_report_still_renders() -> None:
    _, tags = parse(VARIANTS["unmeasured"])
    text = " ".join(tags.text)
    assert "No time series in this report." in text and "not recovered" in text
    assert "n/a" in text and "—" in text


def screenshot(html_path: Path, png_path: Path, height: int = 2400) -> None:
    """Render ``html_path`` with headless Chromium into ``png_path`` (1280 px wide)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary is not None
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={png_path}",
             f"--window-size=1280,{height}", html_path.resolve().as_uri()],
            check=True, capture_output=True, timeout=120)


def test_renders_in_headless_chromium(tmp_path: Path) -> None:
    require("chromium", bool(shutil.which("chromium") or shutil.which("chromium-browser")),
            "apt-get install chromium")
    html = write_report(VARIANTS["fail"], tmp_path / "report.html", "html")
    png = tmp_path / "report.png"
    screenshot(html, png)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 50_000
    from PIL import Image  # pillow: a test dependency (pyproject [test])

    image = Image.open(png).convert("RGB")
    assert image.size == (1280, 2400)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 200  # text, charts and tables drawn, not a blank page
    # the red FAIL banner is in the top-left corner
    banner = image.crop((90, 20, 400, 70)).getcolors(maxcolors=1 << 16) or []
    assert any(r > 150 and g < 80 and b < 80 for _, (r, g, b) in banner)


if __name__ == "__main__":  # regenerate the screenshot the docs show
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/report.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        page = write_report(VARIANTS["pass"], Path(tmp) / "report.html", "html")
        screenshot(page, target, height=int(sys.argv[2]) if len(sys.argv) > 2 else 2300)
    print(f"wrote {target}")
