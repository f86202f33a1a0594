"""No PAN at rest: a load with card numbers in every free-text field leaves none on disk.

Payments carry PANs (plain, spaced, dashed) in the Idempotency-Key, ``description``,
``metadata`` keys and values, and in ``customer_id`` (refused: a customer id is never a
card number); replays of the same keys must still find their payments. Afterwards every
file the stack wrote (ledgers and their WAL files, logs, ready files, the span JSONL) is
searched byte for byte, and every table of every SQLite file row by row, for each PAN sent,
the card numbers themselves included.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import stat
import uuid
from pathlib import Path

import aiohttp
import pytest

from paystab.cards import luhn_checksum_ok as _luhn
from tests.conftest import RunningStack

CARDS = ["4242424242424242", "5555555555554444", "4000000000009995"]


def _pan(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return next(body + d for d in "0123456789" if _luhn(body + d))


def _formats(pan: str) -> list[str]:
    grouped = " ".join(pan[i:i + 4] for i in range(0, len(pan), 4))
    return [pan, grouped, grouped.replace(" ", "-")]


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def _sqlite_text(path: Path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(repr(row) for t in tables for row in db.execute(f'SELECT * FROM "{t}"'))
    finally:
        db.close()


async def _load(url: str, rng: random.Random) -> tuple[list[str], dict[str, list[int | str]]]:
    sent: list[str] = []
    seen: dict[str, list[int | str]] = {"first": [], "replay": [], "customer_id": []}
    sem = asyncio.Semaphore(16)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def post(body: dict[str, object], key: str) -> tuple[int, dict[str, object]]:
            async with sem, session.post(url + "/v1/payments", json=body,
                                         headers={"Idempotency-Key": key}) as r:
                return r.status, await r.json(content_type=None)

        async def one(i: int) -> None:
            pans = [_pan(rng, rng.choice(["4", "51", "35", "37"]), rng.choice([13, 15, 16, 19]))
                    for _ in range(4)]
            sent.extend(pans)
            key_pan, text_pan, meta_pan, value_pan = (rng.choice(_formats(p)) for p in pans)
            card = rng.choice(CARDS)
            body: dict[str, object] = {
                "amount": 100 + i, "currency": "JPY", "method": "card", "country": "JP",
                "card": {"number": card, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
                "description": f"order {i} paid with {text_pan} exp 12/30",
                "metadata": {meta_pan.replace(" ", "")[:40]: f"card={value_pan}-1", "note": text_pan}}
            key = f"{key_pan}-{i}" if i % 2 else key_pan
            status, answer = await post(body, key)
            seen["first"].append(status)
            replay_status, replayed = await post(body, key)
            seen["replay"].append(replay_status)
            if status == 200:
                assert replayed["id"] == answer["id"]
            status, _ = await post(dict(body, customer_id=f"cus {text_pan}"), f"c-{uuid.uuid4()}")
            seen["customer_id"].append(status)

        await asyncio.gather(*(one(i) for i in range(120)))
    return sent + CARDS, seen


@pytest.mark.slow
def test_pans_in_every_free_text_field_and_the_key_leave_no_trace_on_disk(tmp_path: Path) -> None:
    rng = random.Random(4242)
    stack = RunningStack(tmp_path, ["--trace-jsonl", str(tmp_path / "spans.jsonl")])
    try:
        pans, seen = asyncio.run(_load(stack.endpoints.gateway_url, rng))
        secret = Path(str(stack.endpoints.gateway_ledger) + ".secret")
    finally:
        stack.stop()

    assert set(seen["first"]) == {200} and set(seen["replay"]) == {200}, seen
    assert set(seen["customer_id"]) == {422}
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    needles = {form for pan in pans for form in _formats(pan)}
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "gateway.db" for p in files) and any(p.name == "spans.jsonl" for p in files)
    assert sum(1 for p in files if _is_sqlite(p)) >= 2  # the gateway's and the providers' ledgers
    found: list[str] = []
    for path in files:
        raw = path.read_bytes()
        texts = [raw.decode("utf-8", "replace")]
        if _is_sqlite(path):
            texts.append(_sqlite_text(path))
        for text in texts:
            found += [f"{path.relative_to(tmp_path)}: {n}" for n in needles if n in text]
    assert not found, found[:20]
    # The spans were written (the search above was not vacuous) and keep only last fours.
    spans = (tmp_path / "spans.jsonl").read_text()
    assert spans.count("\n") > 10 and json.loads(spans.splitlines()[0])


def test_the_ledger_secret_is_made_once_private_and_refused_when_others_can_read_it(tmp_path: Path) -> None:
    from paystab.exceptions import EnvironmentProblem, InvalidInput
    from paystab.stack.gateway_main import read_secret_file
    from paystab.stack.ledger import keyed_hash, ledger_secret

    ledger = tmp_path / "gateway.db"
    first = ledger_secret(ledger)
    path = tmp_path / "gateway.db.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 32
    assert ledger_secret(ledger) == first  # a restarted gateway replays the same keys
    assert keyed_hash(first, "4242424242424242") != keyed_hash(b"x" * 32, "4242424242424242")
    path.chmod(0o644)
    with pytest.raises(EnvironmentProblem, match="readable by others"):
        ledger_secret(ledger)
    given = tmp_path / "given.secret"
    given.write_bytes(b"short\n")
    with pytest.raises(InvalidInput):
        read_secret_file(given)
    given.write_bytes(b"0123456789abcdef0123\n")
    assert read_secret_file(given) == b"0123456789abcdef0123"
