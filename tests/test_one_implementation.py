"""One implementation each of percentile, Luhn, the loopback rule and the comparison grammar.

Each test pins the shared definition with a table, then checks that the modules that used
to carry their own copy now give the same answers through it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from paystab.stats_math import percentile

ROOT = Path(__file__).resolve().parents[1] / "paystab"


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 99.9, 100])
@pytest.mark.parametrize("values", [[7.0], [3.0, 1.0], [float(x) for x in range(1, 101)],
                                    [5.0, 5.0, 1.0, 1000.0, 2.5, 40.0, 7.0]])
def test_percentile_matches_numpy_linear(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_empty_is_none_and_q_is_in_percent() -> None:
    assert percentile([], 95) is None
    assert percentile(iter([]), 50) is None
    for bad in (-1.0, 100.5, math.nan):
        with pytest.raises(ValueError, match="percent"):
            percentile([1.0], bad)


def test_percentile_callers_share_the_definition() -> None:
    from paystab.loadtest.stats import summarize
    from paystab.slo import RequestSample, traffic

    latencies = [float(x) for x in (12, 250, 31, 44, 980, 15, 61, 77, 90, 102)]
    t = traffic([RequestSample(i, "approved", ms) for i, ms in enumerate(latencies)])
    assert (t.p50_ms, t.p95_ms, t.p99_ms) == tuple(percentile(latencies, q) for q in (50, 95, 99))
    empty = summarize([], 0, 0.0, 1.0)
    assert math.isnan(empty.p95_ms) and empty.to_json()["p95_ms"] is None
    assert traffic([]).p95_ms is None


def test_no_private_percentile_copies() -> None:
    """No module but stats_math defines a percentile or calls numpy's."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        if path.name == "stats_math.py":
            continue
        text = path.read_text()
        if "np.percentile(" in text or "np.quantile(" in text or "def percentile(" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


LOOPBACK_TABLE = [
    ("localhost", True), ("LOCALHOST", True), ("LocalHost.", True), ("api.localhost", True),
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("::ffff:127.0.0.1", True), ("[::FFFF:127.0.0.2]", True),
    ("", False), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("128.0.0.1", False),
    ("::ffff:10.0.0.1", False), ("2001:db8::1", False), ("localhost.example.com", False),
    ("notlocalhost", False), ("example.com", False),
]


@pytest.mark.parametrize(("host", "loopback"), LOOPBACK_TABLE)
def test_loopback_table(host: str, loopback: bool) -> None:
    from paystab.net import is_loopback_host

    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(("host", "loopback"), LOOPBACK_TABLE)
def test_loopback_callers_agree(host: str, loopback: bool) -> None:
    """The places that used to carry their own copy answer the same through the one rule."""
    from paystab import httpclient
    from paystab.stack.webhooks import check_webhook_url

    assert httpclient.is_loopback_host(host) is loopback
    url_host = f"[{host.strip('[]')}]" if ":" in host else host
    if url_host:
        if loopback:
            assert check_webhook_url(f"http://{url_host}:8080/hook")
        else:
            with pytest.raises(ValueError, match="loopback"):
                check_webhook_url(f"http://{url_host}:8080/hook")


def test_no_private_loopback_copies() -> None:
    """Only paystab/net.py asks ipaddress whether an address is loopback."""
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if p.name != "net.py" and ".is_loopback" in p.read_text()]
    assert offenders == []


LUHN_TABLE = [
    ("4242424242424242", True), ("4000000000000069", True), ("378282246310005", True),
    ("6011111111111117", True), ("4222222222222", True),  # 13 digits
    ("4242424242424241", False), ("0" * 12, False),  # 12 digits: Luhn-valid, not a PAN
    ("0" * 13, True), ("0" * 19, True), ("0" * 20, False), ("4242 4242 4242 4242", False),
    ("４２４２４２４２４２４２４２４２", False), ("", False),
]


@pytest.mark.parametrize(("number", "pan"), LUHN_TABLE)
def test_luhn_table_and_the_redactor_agree(number: str, pan: bool) -> None:
    from paystab.cards import luhn_valid
    from paystab.collector.redact import redact

    assert luhn_valid(number) is pan
    if number.isascii() and number.isdigit():
        assert (redact(f"card {number} end") != f"card {number} end") is pan


def test_payment_api_refuses_a_twelve_digit_number() -> None:
    """The stack used to accept 12 Luhn-valid digits its own message calls invalid."""
    from paystab.cards import luhn_valid
    from paystab.stack.catalog import TEST_CARDS

    assert all(luhn_valid(n) for n in TEST_CARDS)
    assert not luhn_valid("000000000000")


def test_no_private_luhn_copies() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if p.name != "cards.py" and ("def _luhn" in p.read_text()
                                               or "def luhn" in p.read_text())]
    assert offenders == []


@pytest.mark.parametrize(("text", "name", "op", "number", "unit", "word", "rest"), [
    ("availability >= 0.9999", "availability", ">=", 0.9999, None, None, ""),
    ("p(99)<500ms", "p(99)", "<", 500.0, "ms", None, ""),
    ("p( 99.9 ) < 1.5 s", "p( 99.9 )", "<", 1.5, "s", None, ""),
    ("failure_rate > 5% over 30s", "failure_rate", ">", 5.0, "%", None, " over 30s"),
    ("traffic.p99_ms<.5", "traffic.p99_ms", "<", 0.5, None, None, ""),
    ("x != -1e-3 and y", "x", "!=", -0.001, None, None, " and y"),
    ("orphans == null", "orphans", "==", None, None, "null", ""),
    ("rps>=5sec", "rps", ">=", 5.0, None, None, "sec"),  # 's' only as a whole unit
])
def test_the_shared_comparison_grammar(text: str, name: str, op: str, number: float | None,
                                       unit: str | None, word: str | None, rest: str) -> None:
    from paystab.comparison import match_comparison

    found = match_comparison(text)
    assert found is not None
    assert (found.name, found.op, found.number, found.unit, found.word) == (
        name, op, pytest.approx(number) if number is not None else None, unit, word)
    assert text[found.end:] == rest


@pytest.mark.parametrize("text", ["", "1 <= x", "x", "x >=", "x => 1", "__import__('os') == 0",
                                  "x <> 1"])
def test_the_shared_grammar_refuses(text: str) -> None:
    from paystab.comparison import match_comparison

    assert match_comparison(text) is None


def test_the_three_users_read_the_same_number_the_same_way() -> None:
    """5% is 0.05 in a hypothesis, a load threshold and an abort condition alike."""
    from paystab.chaos.hypothesis import Hypothesis
    from paystab.chaos.runbook_load import load_runbook_text
    from paystab.loadtest.thresholds import parse_threshold

    assert Hypothesis.parse("failure_rate <= 5%").comparisons[0].value == pytest.approx(0.05)
    assert parse_threshold("failure_rate<=5%").value == pytest.approx(0.05)
    book = load_runbook_text(RUNBOOK_WITH_ABORT)
    assert [(a.metric, a.op, a.threshold, a.window_s) for a in book.abort_when] == [
        ("failure_rate", ">", pytest.approx(0.05), 10.0)]


RUNBOOK_WITH_ABORT = """\
name: abort-grammar
description: the abort grammar
load: {rate: 20/s, duration: 60s}
abort_when:
  - failure_rate > 5% over 10s
"""


def test_no_private_comparison_grammar() -> None:
    """Only paystab/comparison.py spells the operator alternation or the operator table."""
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if p.name != "comparison.py" and ("<=|>=" in p.read_text()
                                                   or "operator.le" in p.read_text())]
    assert offenders == []
