"""The published OpenAPI documents: complete, rendered from the code, and held to by the gateway.

schemathesis (the CLI, from PyPI) fuzzes a live reference gateway from its own
``/openapi.json``: every check it has (server errors, status codes, content types, response
schemas and headers, negative data rejected, schema-valid data accepted, 405s, stateful
links create → read back and same key → replay). Schema-valid data may still be refused
with 422 for what a schema cannot say (a Luhn-invalid number, a card scheme nobody routes)
or answered 404 (an id never created) or 409/502/503/504 (a payment in flight, a failing
provider): those are the statuses the acceptance check is told to expect.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from paystab.chaos.proxy_server.openapi import proxy_document
from paystab.stack.openapi import gateway_document
from paystab.stack.payment_api import CARD_NUMBER, IDEMPOTENCY_KEY, payment_request_schema
from tests.conftest import RunningStack, require

CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "409", "422", "502", "503", "504"]
"""


def _schemathesis() -> Path:
    exe = Path(sys.executable).parent / "schemathesis"
    require("schemathesis", exe.exists(), "pip install -e '.[test]'")
    return exe


def _routes(app_paths: set[tuple[str, str]], document: dict[str, object]) -> set[tuple[str, str]]:
    paths = document["paths"]
    assert isinstance(paths, dict)
    documented = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    return app_paths - documented


def test_every_gateway_route_is_documented_and_the_body_schema_is_the_validators() -> None:
    from paystab.collector.telemetry import setup_telemetry
    from paystab.stack.catalog import StackSettings
    from paystab.stack.gateway import Gateway, GatewayOptions

    gateway = Gateway(StackSettings(), {}, ":memory:", setup_telemetry("t", enabled=False),
                      GatewayOptions(key_secret=b"k" * 32))
    try:
        app = gateway.app()
        routes = {(r.method, r.resource.canonical) for r in app.router.routes()  # type: ignore[union-attr]
                  if r.method != "HEAD"}
        document = gateway_document()
        assert _routes(routes, document) == set()
        components = document["components"]
        assert isinstance(components, dict)
        assert components["schemas"]["PaymentRequest"] == payment_request_schema()
        card = payment_request_schema()["oneOf"][0]["properties"]["card"]["properties"]["number"]
        assert card["pattern"] == CARD_NUMBER.pattern
        post = document["paths"]["/v1/payments"]["post"]  # type: ignore[index]
        assert post["parameters"][0]["schema"]["pattern"] == IDEMPOTENCY_KEY.pattern
    finally:
        gateway.ledger.close()


def test_every_proxy_route_is_documented_with_every_registered_toxic() -> None:
    from prometheus_client import CollectorRegistry

    from paystab.chaos.proxy_server.api import build_app
    from paystab.chaos.proxy_server.collection import ProxyCollection
    from paystab.chaos.proxy_server.toxics import toxic_types

    app = build_app(ProxyCollection(), CollectorRegistry())
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()  # type: ignore[union-attr]
              if r.method != "HEAD"}
    document = proxy_document()
    assert _routes(routes, document) == set()
    variants = document["components"]["schemas"]["ToxicIn"]["oneOf"]  # type: ignore[index]
    assert [v["title"] for v in variants] == toxic_types()
    assert "latency" in variants[toxic_types().index("latency")]["properties"]["attributes"]["properties"]


@pytest.mark.slow
def test_schemathesis_finds_nothing_against_the_live_gateway(tmp_path: Path) -> None:
    exe = _schemathesis()
    stack = RunningStack(tmp_path)  # its own: the fuzzer drains and restores providers
    try:
        url = stack.endpoints.gateway_url
        with urllib.request.urlopen(url + "/openapi.json", timeout=10) as answer:
            served = json.loads(answer.read())
        assert served["openapi"] == "3.1.0"
        config = tmp_path / "schemathesis.toml"
        config.write_text(CONFIG)
        report = tmp_path / "report.json"
        run = subprocess.run(
            [str(exe), "--config-file", str(config), "--no-color", "run", url + "/openapi.json",
             "--checks", "all", "--max-examples", "25", "--workers", "2", "--seed", "20261206",
             "--generation-database", "none", "--request-timeout", "10",
             "--report", "json", "--report-json-path", str(report)],
            capture_output=True, text=True, timeout=240, cwd=tmp_path)
        output = run.stdout[-6000:] + run.stderr[-2000:]
        assert run.returncode == 0, output
        assert "Stateful" in run.stdout and "API Links" in run.stdout, output
        summary = json.loads(report.read_text())
        assert summary["failures"] == [] and summary["errors"] == [], output
        assert summary["operations"]["tested"] == summary["operations"]["total"] >= 9, output
        assert {name: p["status"] for name, p in summary["phases"].items()} == {
            "examples": "success", "coverage": "success", "fuzzing": "success", "stateful": "success"}, output
        assert summary["test_cases"]["generated"] >= 500, output
    finally:
        stack.stop()
    log = (tmp_path / "data" / "gateway.log").read_text(errors="replace")
    assert "Traceback" not in log and "Error handling request" not in log, log[-3000:]
