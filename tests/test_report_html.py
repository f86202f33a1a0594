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
from paystab.report.model import DetectionRecord, Report
from tests.conftest import require
from tests.report_demo import demo_variants

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


def _card(html: str, label: str) -> str:
    match = re.search(r'<div class="card ([^"]*)"[^>]*><div class="label">' + re.escape(label)
                      + r'</div>.*?<div class="judged">([^<]*)</div>', html)
    assert match is not None, label
    return f"{match.group(1)} | {match.group(2)}"


def test_a_second_without_success_renders_through_paystab_report(tmp_path: Path) -> None:
    """The report an interrupted drill wrote: one second in which every request failed."""
    import json

    from click.testing import CliRunner

    from paystab.cli.report_cmds import report_command
    from paystab.report.model import TimelinePoint

    report = copy.deepcopy(VARIANTS["pass"])
    report.timeline[20] = TimelinePoint(20.0, 50, 0, 0, 0, 50)
    source = tmp_path / "report.json"
    source.write_text(json.dumps(report.to_json()))
    result = CliRunner().invoke(report_command, [str(source), "--html", str(tmp_path / "r.html"),
                                                 "--junit", str(tmp_path / "j.xml")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text()
    assert "Customer success ratio" in html and ">0</text>" in html  # the axis reaches 0 %
    ET.fromstring((tmp_path / "j.xml").read_text())


def test_cards_say_whether_the_verdict_judged_them() -> None:
    from paystab.report.model import HypothesisResult

    report = copy.deepcopy(VARIANTS["pass"])
    report.traffic.p95_ms = 708.0  # over the 500 ms SLO, and no hypothesis names p95_ms
    html = renderer("html").render(report)
    assert _card(html, "latency p95") == "nj warn | not judged · outside the SLO"
    assert _card(html, "failure rate") == "nj | not judged"
    assert _card(html, "availability") == "ok | ✔ judged: pass"
    assert _card(html, "MTTR") == "ok | ✔ judged: pass"
    report.hypotheses.append(HypothesisResult("p95_ms <= 500", 708.0, False))
    html = renderer("html").render(report)
    assert _card(html, "latency p95") == "bad | ✘ judged: fail"
    assert _card(html, "hypotheses") == "bad | ✘ 1 failed"
    text = renderer("text").render(report)
    assert re.search(r"latency p95 +708 ms +≤ 500 ms +judged fail: p95_ms <= 500", text), text
    assert re.search(r"failure rate .* not judged", text)


def test_inconclusive_false_failovers_and_not_applicable_in_every_renderer() -> None:
    from paystab.report.model import FailoverRecord, FalseFailover, FalseFailovers, HypothesisResult

    report = copy.deepcopy(VARIANTS["pass"])
    report.verdict = "inconclusive"
    report.inconclusive_reason = "the load generator ran out of CPU (7.2 % of arrivals dropped)"
    event = FalseFailover("card-bravo", 3.2, "hang", "oldest in-flight 0.43 s")
    report.false_failovers = FalseFailovers(1, 5.0, [event])
    report.failovers.append(FailoverRecord("card-bravo", "drain", 3.2, "hang", event.reason))
    report.hypotheses += [HypothesisResult("false_failovers == 0", 1, False),
                          HypothesisResult("lost_payments == 0", None, None, "no ledgers")]
    html, tags = parse(report)
    assert tags.stack == []
    assert '<div class="verdict inconclusive">INCONCLUSIVE' in html
    assert report.inconclusive_reason in html
    assert "1 false failover (drains outside every injected fault&#x27;s window + 5 s grace)" in html
    assert "drain (false)" in html and "oldest in-flight 0.43 s" in html
    assert "lost_payments == 0 — not applicable: no ledgers" in html
    assert _card(html, "false failovers") == "bad | ✘ judged: fail"
    text = re.sub(r"[│\s]+", " ", renderer("text").render(report))  # unwrap the banner
    for expected in ("INCONCLUSIVE", "ran out of CPU", "1 false failover", "card-bravo",
                     "not applicable: no ledgers"):
        assert expected in text, expected
    suite = ET.fromstring(renderer("junit").render(report)).find("testsuite")
    assert suite is not None
    error = suite.find("testcase[@name='the measurement was sound']/error")
    assert error is not None and error.get("type") == "Inconclusive"
    assert "ran out of CPU" in (error.get("message") or "")
    na = suite.findall("testcase[@name='lost_payments == 0'][@classname="
                       "'paystab.drill.provider-timeout.hypotheses']")[-1]
    assert na.find("failure") is None
    assert (na.find("skipped").get("message") or "") == "not applicable: no ledgers"  # type: ignore[union-attr]
    failure = suite.find("testcase[@name='false_failovers == 0']/failure")
    assert failure is not None and "3.2 s drain card-bravo by hang" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["false_failovers"] == "1" and "p95_ms" in (props["not_judged"] or "")


def test_report_check_exits_4_on_an_inconclusive_verdict(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from paystab.cli.report_cmds import report_command
    from paystab.exceptions import Inconclusive
    from paystab.report.model import HypothesisResult

    report = copy.deepcopy(VARIANTS["pass"])
    report.verdict, report.inconclusive_reason = "inconclusive", "event-loop lag 400 ms in the harness"
    report.hypotheses.append(HypothesisResult("lost_payments == 0", None, None, "no ledgers"))
    source = tmp_path / "report.json"
    source.write_text(json.dumps(report.to_json()))
    result = CliRunner().invoke(report_command, [str(source), "--check", "-q"],
                                standalone_mode=False)
    assert isinstance(result.exception, Inconclusive)
    assert result.exception.exit_code == 4 and "event-loop lag" in str(result.exception)
    report.verdict = "fail"
    report.hypotheses.append(HypothesisResult("p95_ms <= 500", 708.0, False))
    source.write_text(json.dumps(report.to_json()))
    result = CliRunner().invoke(report_command, [str(source), "--check", "-q"],
                                standalone_mode=False)
    assert str(result.exception).endswith("verdict fail (p95_ms <= 500)")  # n/a is no failure


def test_ten_providers_fit_the_legend() -> None:
    from paystab.report.model import ProviderPoint
    from paystab.report.svg import WIDTH

    report = copy.deepcopy(VARIANTS["pass"])
    names = [f"provider-number-{i}" for i in range(10)]
    report.provider_timeline = [ProviderPoint(float(t), name, 10, 0) for name in names
                                for t in range(60)]
    html = renderer("html").render(report)
    chart = html.split("<h3>Provider attempts</h3>", 1)[1].split("</svg>", 1)[0]
    legend = re.findall(r'<g transform="translate\(([\d.]+) ([\d.]+)\)">.*?<text class="legend" '
                        r'x="22" y="4">([^<]*)</text>', chart)
    assert {label for _, _, label in legend} >= set(names)
    assert len({y for _, y, _ in legend}) >= 2  # wrapped onto a second row
    assert all(float(x) + 22 + 6.6 * len(label) <= WIDTH for x, _, label in legend)


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


# -- issue 17: what a filed report must show ------------------------------------------------
def _with_traffic_and_provenance() -> Report:
    report = copy.deepcopy(VARIANTS["pass"])
    report.traffic.requests, report.traffic.pending, report.traffic.dropped_arrivals = 6010, 914, 12
    report.harness = {"arrivals": 6022, "dropped": 12, "dropped_ratio": 0.002,
                      "generator_lag_p99_ms": 105.9, "cpu_share": 0.171}
    report.load = {"profile": "steady", "rate_per_s": 100.0, "duration_s": 60.0}
    report.provenance = {"paystab_version": "9.9.9", "host": "drill-host-1",
                         "runbook_file": "/runbooks/provider-timeout.yaml",
                         "runbook_sha256": "ab" * 32, "seed": 7,
                         "command_line": "paystab drill provider-timeout --seed 7"}
    return report


def test_pending_and_dropped_arrivals_have_cards_with_their_share() -> None:
    html = renderer("html").render(_with_traffic_and_provenance())
    assert "914 (15.2 %)" in html.split('<div class="label">pending</div>', 1)[1][:200]
    assert "12 (0.2 %)" in html.split('<div class="label">dropped arrivals</div>', 1)[1][:200]


def test_provenance_is_shown_and_round_trips_through_json() -> None:
    report = _with_traffic_and_provenance()
    again = Report.from_json(report.to_json())
    assert again.provenance == report.provenance
    _, tags = parse(again)
    text = " ".join(tags.text)
    for shown in ("9.9.9", "drill-host-1", "/runbooks/provider-timeout.yaml", "ab" * 32,
                  "paystab drill provider-timeout --seed 7", "runbook sha256", "command line"):
        assert shown in text, shown
    old = report.to_json()
    del old["provenance"]  # a report written before provenance existed still reads
    assert Report.from_json(old).provenance == {}


def test_no_raw_keys_and_a_unit_on_every_number_people_read() -> None:
    html = renderer("html").render(_with_traffic_and_provenance())
    _, tags = parse(_with_traffic_and_provenance())
    text = " ".join(tags.text)
    for raw in ("rate_per_s", "duration_s", "dropped_ratio", "generator_lag_p99_ms", "cpu_share",
                "runbook_sha256", "min drained"):
        assert raw not in text, raw
    assert "target rate" in text and "100 /s" in text and "17.10 %" in text
    load = html.split('id="load"', 1)[1].split("</section>", 1)[0]
    assert "106 ms" in load and "60 s" in load
    providers = html.split('id="providers"', 1)[1].split("</section>", 1)[0]
    assert "time drained" in providers and re.search(r"\d min<", providers)
    hypotheses = html.split('id="hypotheses"', 1)[1].split("</section>", 1)[0]
    assert re.search(r">[\d.]+ (s|ms|%)<", hypotheses)  # mttr_s, p95_ms … carry their unit


def test_faults_are_labelled_by_their_runbook_names() -> None:
    from paystab.report import fmt

    assert fmt.fault_name("card-alpha-hangs-c69ff0d0") == "card-alpha-hangs"
    assert fmt.fault_name("no-suffix") == "no-suffix"
    report = copy.deepcopy(VARIANTS["pass"])
    assert report.faults, "the demo report injects a fault"
    fault = report.faults[0]
    fault.id = fmt.fault_name(fault.id) + "-c69ff0d0"
    for incident in report.incidents:
        incident.fault_id = fault.id
    html = renderer("html").render(report)
    visible = html.split('id="faults"', 1)[0]  # all but the faults table, which keeps the id
    assert "c69ff0d0" not in visible
    assert fmt.fault_name(fault.id) in html.split('id="incidents"', 1)[1]


def test_ten_providers_differ_in_colour_and_point_shape() -> None:
    from paystab.report.html_charts import PALETTE, provider_style
    from paystab.report.model import ProviderPoint

    styles = [provider_style(i) for i in range(10)]
    assert len({colour for colour, _, _ in styles}) == 10 == len(set(PALETTE))
    assert len(set(styles)) == 10
    assert len({(s[1], s[2]) for s in styles}) >= 5  # dash + shape alone tell most apart

    report = copy.deepcopy(VARIANTS["pass"])
    names = [f"p{i}" for i in range(10)]
    report.provider_timeline = [ProviderPoint(float(t), n, 10 + i, 0) for i, n in enumerate(names)
                                for t in range(40)]
    html = renderer("html").render(report)
    chart = html.split("<h3>Provider attempts</h3>", 1)[1].split("</svg>", 1)[0]
    strokes = set(re.findall(r'<path d="M[^"]*" fill="none" stroke="(#[0-9a-f]{6})"', chart))
    assert strokes >= set(PALETTE)
    assert "<circle" in chart and 'stroke-dasharray="2 2"' in chart  # shapes and dashes drawn
