"""``paystab drill provider-timeout --stack FILE`` against a stand-in shop that is not
paystab's gateway: a stdlib HTTP service with its own checkout API (``POST /api/checkout``
answering ``{"state": "succeeded"}``) that charges two Stripe-dialect simulators with plain
HTTP, fails over on its own when a PSP times out, exposes per-PSP counters on /metrics and
has a switch (``PUT /admin/psp/NAME``) the drill's webhook actuator throws.

One run checks the whole path: the simulators named in the file start, the service starts
with their URLs and keys in its environment, the load goes through the file's flow, the hang
goes to card-alpha's simulator, detection reads the service's /metrics, the drain goes
through the service's switch, the hypotheses on reconciliation (no ledgers in the file) are
"not applicable", and everything started is stopped afterwards.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest_chaos import env_with_state

SHOP = r'''
import json, os, threading, time, urllib.error, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PSPS = [("card-alpha", os.environ["ALPHA_URL"], os.environ["ALPHA_KEY"]),
        ("card-bravo", os.environ["BRAVO_URL"], os.environ["BRAVO_KEY"])]
TIMEOUT_S = 0.3
lock = threading.Lock()
enabled = {name: True for name, _, _ in PSPS}
counts = {}
inflight = {name: {} for name, _, _ in PSPS}
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def count(psp, outcome, error_type=""):
    with lock:
        counts[(psp, outcome, error_type)] = counts.get((psp, outcome, error_type), 0) + 1


def charge(name, url, key, order, idem):
    form = urllib.parse.urlencode({
        "amount": order["amount"], "currency": order["currency"].lower(), "confirm": "true",
        "payment_method_data[type]": "card", "payment_method_data[card][number]": order["card"],
        "payment_method_data[card][exp_month]": "12", "payment_method_data[card][exp_year]": "2030",
        "payment_method_data[card][cvc]": "123", "metadata[order_id]": idem}).encode()
    request = urllib.request.Request(url + "/v1/payment_intents", data=form, headers={
        "Authorization": "Bearer " + key, "Idempotency-Key": idem + "-" + name,
        "Content-Type": "application/x-www-form-urlencoded"})
    token = object()
    with lock:
        inflight[name][token] = time.monotonic()
    try:
        with opener.open(request, timeout=TIMEOUT_S) as answer:
            status = json.load(answer).get("status")
        outcome = "approved" if status == "succeeded" else "error"
        count(name, outcome, "" if outcome == "approved" else "status")
        return outcome
    except urllib.error.HTTPError as exc:
        if exc.code == 402:
            count(name, "declined")
            return "declined"
        count(name, "error", "http_%d" % exc.code)
    except (TimeoutError, OSError):
        count(name, "error", "timeout")
    finally:
        with lock:
            inflight[name].pop(token, None)
    return "error"


class Shop(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, doc, kind="application/json"):
        body = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/healthz":
            return self.answer(200, {"ok": True})
        if self.path == "/metrics":
            lines = []
            with lock:
                for (psp, outcome, error_type), n in sorted(counts.items()):
                    lines.append('paystab_provider_attempts_total{provider="%s",outcome="%s",'
                                 'error_type="%s"} %d' % (psp, outcome, error_type, n))
                now = time.monotonic()
                for psp, started in inflight.items():
                    oldest = now - min(started.values()) if started else 0.0
                    lines.append('paystab_provider_inflight{provider="%s"} %d' % (psp, len(started)))
                    lines.append('paystab_provider_oldest_inflight_age_seconds{provider="%s"} %.3f'
                                 % (psp, oldest))
            return self.answer(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4")
        self.answer(404, {"error": "not found"})

    def do_PUT(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        name = self.path.rsplit("/", 1)[-1]
        if not self.path.startswith("/admin/psp/") or name not in enabled:
            return self.answer(404, {"error": "no such psp"})
        with lock:
            enabled[name] = bool(body.get("enabled"))
        self.answer(200, {"psp": name, "enabled": enabled[name]})

    def do_POST(self):
        order = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path != "/api/checkout":
            return self.answer(404, {"error": "not found"})
        with lock:
            ordered = sorted(PSPS, key=lambda p: not enabled[p[0]])
        for name, url, key in ordered:
            outcome = charge(name, url, key, order, self.headers.get("Idempotency-Key", ""))
            if outcome == "approved":
                return self.answer(200, {"state": "succeeded", "psp": name})
            if outcome == "declined":
                return self.answer(402, {"state": "declined", "psp": name})
        self.answer(502, {"state": "failed"})


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Shop).serve_forever()
'''

STACK = """\
version: 1
name: stand-in-shop
service:
  command: [{python}, shop.py]
  env:
    PORT: "{port}"
    ALPHA_URL: "${{simulators.card-alpha.url}}"
    ALPHA_KEY: "${{simulators.card-alpha.api_key}}"
    BRAVO_URL: "${{simulators.card-bravo.url}}"
    BRAVO_KEY: "${{simulators.card-bravo.api_key}}"
  health: http://127.0.0.1:{port}/healthz
  start_timeout: 20s
checkout:
  base_url: http://127.0.0.1:{port}
  flow:
    steps:
      - name: pay
        path: /api/checkout
        headers: {{Idempotency-Key: "{{{{ key }}}}"}}
        json: {{amount: "{{{{ amount }}}}", currency: "{{{{ currency }}}}", card: "{{{{ card }}}}"}}
        classify:
          - {{status: 200, path: $.state, equals: succeeded, outcome: approved}}
simulators:
  - {{name: card-alpha, dialect: stripe, methods: [card]}}
  - {{name: card-bravo, dialect: stripe, methods: [card]}}
telemetry:
  interval_s: 200ms
  sources:
    - {{kind: metrics_url, url: "http://127.0.0.1:{port}/metrics"}}
failover:
  actuators:
    - kind: webhook
      url: http://127.0.0.1:{port}/admin/psp/{{provider}}
      method: PUT
      body: '{{{{"enabled": {{enabled}}}}}}'
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_provider_timeout_drill_of_a_stand_in_shop(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "shop.py").write_text(SHOP)
    port = _free_port()
    stack = shop / "stack.yaml"
    stack.write_text(STACK.format(python=json.dumps(sys.executable), port=port))
    out = tmp_path / "drill"
    env = env_with_state(tmp_path / "state")
    run = subprocess.run(
        [sys.executable, "-m", "paystab", "drill", "provider-timeout", "--stack", str(stack),
         "--duration", "20", "--rps", "50", "--no-live", "--out", str(out)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    context = f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    assert (out / "report.json").exists(), context
    report = json.loads((out / "report.json").read_text())
    assert report["target"].startswith("stack 'stand-in-shop'"), context
    assert report["traffic"]["requests"] >= 500, context  # through the flow, not /v1/payments
    assert report["traffic"]["approved"] > 0, context
    [fault] = report["faults"]
    assert fault["kind"] == "provider.hang" and fault["target"] == "card-alpha", context
    assert any(d["provider"] == "card-alpha" for d in report["detections"]), context
    assert any(f["provider"] == "card-alpha" and f["action"] == "drain"
               for f in report["failovers"]), context
    status = {h["expr"]: h["status"] for h in report["hypotheses"]}
    for expr in ("double_charges == 0", "lost_payments == 0", "orphans == 0"):
        assert status[expr] == "not_applicable", context
    assert report["verdict"] == "pass", context
    assert run.returncode == 0, context
    assert not _listening(port), "the service was left running"
    sims = json.loads((out / "stack" / "simulators.json").read_text())
    assert not any(_listening(int(p["url"].rsplit(":", 1)[1].split("/")[0]))
                   for p in sims["providers"].values()), "a simulator was left running"
