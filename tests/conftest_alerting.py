"""Helpers for the alerting tests: real binaries, the Prometheus HTTP API, PromQL variables.

Not a pytest conftest (the lead owns tests/conftest.py): the alerting tests import it.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import require

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def need_binary(name: str, package: str) -> str:
    """The binary's path; skip (fail under CI=true) when missing, with the apt hint."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    require(name, path is not None, f"apt-get install {package}")
    assert path is not None
    return path


def prom_query(base_url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """Run an instant query against a real Prometheus; returns the result vector."""
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = f"{base_url}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(condition: Callable[[], T | None], timeout_s: float, what: str,
             interval_s: float = 0.25) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last: {last!r})")


def grafana_to_promql(expr: str, rate_interval: str = "15s", provider: str = ".*") -> str:
    """Replace the Grafana variables the dashboards use with values Prometheus accepts."""
    return (expr.replace("$__rate_interval", rate_interval)
            .replace("$__interval", rate_interval)
            .replace("$provider", provider))


class OtlpSink:
    """A real OTLP/HTTP receiver on 127.0.0.1 (aiohttp, in a thread) that decodes protobuf.

    ``POST /v1/traces`` and ``/v1/metrics`` bodies are ``ExportTraceServiceRequest`` /
    ``ExportMetricsServiceRequest`` (gzip accepted); the answer is the matching empty
    ``Export*ServiceResponse``, as the OTLP spec asks. Decoded spans and metrics are kept as
    plain dicts for assertions.
    """

    def __init__(self) -> None:
        import asyncio

        self.spans: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the OTLP sink did not start")

    # -- server -------------------------------------------------------------------------
    def _run(self) -> None:
        import asyncio

        from aiohttp import web

        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    @staticmethod
    async def _body(request: Any) -> bytes:
        import gzip

        raw: bytes = await request.read()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        return raw

    async def _traces(self, request: Any) -> Any:
        from aiohttp import web
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb

        message = pb.ExportTraceServiceRequest()
        message.ParseFromString(await self._body(request))
        decoded = []
        for resource_spans in message.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    decoded.append({
                        "name": span.name, "kind": span.kind,
                        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "attributes": _attributes(span.attributes),
                        "events": [{"name": e.name, "attributes": _attributes(e.attributes)}
                                   for e in span.events],
                        "status_code": span.status.code, "status_message": span.status.message,
                        "resource": resource,
                    })
        with self._lock:
            self.spans.extend(decoded)
            self.requests += 1
        return web.Response(body=pb.ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb

        message = pb.ExportMetricsServiceRequest()
        message.ParseFromString(await self._body(request))
        decoded = []
        for resource_metrics in message.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    points = getattr(metric, kind).data_points if kind else []
                    decoded.append({
                        "name": metric.name, "kind": kind, "unit": metric.unit,
                        "points": [{"attributes": _attributes(p.attributes),
                                    "value": p.as_double if p.HasField("as_double")
                                    else p.as_int}
                                   for p in points if hasattr(p, "as_int")],
                    })
        with self._lock:
            self.metrics.extend(decoded)
            self.requests += 1
        return web.Response(body=pb.ExportMetricsServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _attributes(attributes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [getattr(v, v.WhichOneof("value")) for v in value.array_value.values]
        elif kind is not None:
            out[kv.key] = getattr(value, kind)
    return out


class BoundedLoad:
    """Payments POSTed to a gateway from a background thread, bounded in count and time.

    A plain aiohttp loop on 127.0.0.1 (not the load harness): ``rate_per_s`` payments per
    second at most, ``max_count`` in all, never longer than ``max_s``; :meth:`stop` ends it
    early. Answers are tallied by HTTP status.
    """

    def __init__(self, gateway_url: str, rate_per_s: float = 40.0, max_count: int = 6000,
                 max_s: float = 110.0, seed: int = 11) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.rate_per_s, self.max_count, self.max_s, self.seed = rate_per_s, max_count, max_s, seed
        self.statuses: dict[int, int] = {}
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> BoundedLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        import asyncio

        asyncio.run(self._loop())

    async def _loop(self) -> None:
        import asyncio
        import random
        import uuid

        import aiohttp

        from tests.payments import payment_body

        rng = random.Random(self.seed)
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=10)
        pending: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def one(body: dict[str, Any]) -> None:
                key = f"alerting-{uuid.uuid4()}"
                try:
                    async with session.post(f"{self.gateway_url}/v1/payments", json=body,
                                            headers={"Idempotency-Key": key}) as response:
                        await response.read()
                        status = response.status
                except (TimeoutError, aiohttp.ClientError):
                    status = 0
                self.statuses[status] = self.statuses.get(status, 0) + 1

            while (not self._stop.is_set() and self.sent < self.max_count
                   and time.monotonic() - started < self.max_s):
                due = started + self.sent / self.rate_per_s
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(min(delay, 0.2))
                    continue
                if len(pending) >= 64:  # bounded concurrency: wait rather than pile up
                    await asyncio.wait(set(pending), return_when=asyncio.FIRST_COMPLETED)
                    continue
                task = asyncio.create_task(one(payment_body(rng)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                self.sent += 1
            if pending:
                await asyncio.wait(set(pending), timeout=15)
