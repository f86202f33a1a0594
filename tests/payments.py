"""A small bounded payment driver for tests: real HTTP to the gateway on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

CARDS = ["4242424242424242", "4000000000009995", "4000000000000002", "4000000000000069",
         "4100000000000019", "5555555555554444", "3530111333300000", "4012888888881881"]


def payment_body(rng: random.Random, method: str | None = None) -> dict[str, Any]:
    method = method or rng.choice(["card", "card", "card", "wallet", "konbini", "bank_transfer"])
    amount = rng.randint(100, 50_000)
    if method == "card":
        number = rng.choice(CARDS)
        return {"amount": amount, "currency": "JPY", "method": "card", "country": "JP",
                "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}}
    if method == "wallet":
        return {"amount": amount, "currency": "JPY", "method": "wallet", "country": "JP",
                "wallet": {"brand": rng.choice(["paypay", "kakaopay", "grabpay"])}}
    return {"amount": amount, "currency": "JPY", "method": method, "country": "JP"}


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    key: str
    request: dict[str, Any]


async def _send(session: aiohttp.ClientSession, url: str, body: dict[str, Any], key: str) -> Answer:
    async with session.post(url + "/v1/payments", json=body, headers={"Idempotency-Key": key}) as r:
        text = await r.text()
        return Answer(r.status, json.loads(text) if text else {}, key, body)


async def send_many(url: str, bodies: list[dict[str, Any]], concurrency: int = 32,
                    timeout_s: float = 30.0) -> list[Answer]:
    sem = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one(body: dict[str, Any]) -> Answer:
            async with sem:
                return await _send(session, url, body, f"test-{uuid.uuid4()}")
        return await asyncio.gather(*(one(b) for b in bodies))


def run_payments(url: str, n: int, seed: int = 1, method: str | None = None,
                 concurrency: int = 32) -> list[Answer]:
    rng = random.Random(seed)
    bodies = [payment_body(rng, method) for _ in range(n)]
    return asyncio.run(send_many(url, bodies, concurrency))


def post(url: str, body: Any, key: str | None, content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    async def go() -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": content_type}
        if key is not None:
            headers["Idempotency-Key"] = key
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with aiohttp.ClientSession() as s, s.post(url + "/v1/payments", data=data, headers=headers) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, {"raw": text}
    return asyncio.run(go())


def admin(url: str, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    async def go() -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as s, s.request(method, url + path, json=body, headers=headers) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text else None)
    return asyncio.run(go())
