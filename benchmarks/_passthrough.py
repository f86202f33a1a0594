"""The baseline for the gateway benchmark: the thinnest sensible aiohttp hop.

It takes a payment, builds the provider call with the same dialect the gateway uses, sends
it over a pooled session and returns the provider's answer. No idempotency, routing, ledger
or telemetry: what is left of the gateway's cost once those are taken away.
Run: ``python -m benchmarks._passthrough PROVIDERS_READY_FILE PROVIDER PORT READY_FILE``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from paystab.stack.dialects import get_dialect
from paystab.stack.dialects.base import Card, ChargeRequest
from paystab.stack.gateway_main import read_providers_file


def main() -> None:
    providers_file, provider, port, ready = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    endpoint = read_providers_file(providers_file)[provider]
    dialect = get_dialect(endpoint.dialect)
    base = endpoint.url.rstrip("/")
    counter = 0
    # the provider's credentials, presented as the gateway presents them (stripe: a bearer key)
    auth = getattr(dialect, "client_auth_headers", None)
    auth_headers = auth(endpoint.api_key) if auth is not None and endpoint.api_key else {}

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def pay(request: web.Request) -> web.Response:
        nonlocal counter
        counter += 1
        body = json.loads(await request.read())
        card = body["card"]
        charge = ChargeRequest(f"pt-{counter}-{os.getpid()}", f"pt{counter}", body["amount"], body["currency"],
                               body["method"], body["country"],
                               Card(card["number"], card["exp_month"], card["exp_year"], card["cvc"]))
        call = dialect.charge_call(charge)
        async with request.app["session"].request(call.method, base + call.path, data=call.body,
                                                  headers={**call.headers, **auth_headers}) as r:
            answer = dialect.parse_charge(r.status, r.headers.get("Content-Type", ""), await r.read())
        return web.json_response({"status": answer.code, "provider": provider})

    app = web.Application()
    app.router.add_post("/v1/payments", pay)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)

    async def on_ready(_app: web.Application) -> None:
        ready.write_text(json.dumps({"port": port, "pid": os.getpid()}))

    app.on_startup.append(on_ready)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
