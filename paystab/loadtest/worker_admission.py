"""Who may join a ``paystab load --master`` run: identities, the token proof, the seats.

The admission policy of distributed load, kept apart from Locust (importing Locust
gevent-patches the process) so the CLI can check its flags and tests can pin the rules
in-process. A worker says what it would run — paystab's payment, a flow (sha256 of its
checked JSON) or a locustfile (sha256 of its bytes) — and proves it holds the master's token
with an HMAC of its Locust client id (the token never travels). :meth:`Admission.judge`
admits it, or says why not: another protocol, a missing or wrong proof, another flow, or
every seat taken (a late worker would take users from a running open-model run).
``distributed.py`` applies it to Locust's messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paystab.exceptions import InvalidInput
from paystab.net import is_loopback_host

PROTOCOL = 1  # bumped when the paystab messages below change shape
MSG_HELLO = "paystab_hello"
MSG_WELCOME = "paystab_welcome"
MSG_REFUSED = "paystab_refused"
DEFAULT_PORT = 5557  # Locust's master port
REFUSED_FLOW, REFUSED_TOKEN, REFUSED_FULL = "flow", "token", "full"


@dataclass(frozen=True)
class RunIdentity:
    """What a process would send: its kind, a label for messages, a digest that decides."""

    kind: str  # payment | flow | locustfile
    label: str
    digest: str  # sha256 hex

    def describe(self) -> str:
        if self.kind == "payment":
            return "paystab's own payment"
        return f"{self.kind} {self.label} (sha256 {self.digest[:12]})"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "label": self.label, "digest": self.digest}


def identify(flow: dict[str, Any] | None, locustfile: str | None) -> RunIdentity:
    """The identity of a plan's flow or a locustfile (``--flow`` and ``-f`` exclude each other)."""
    if locustfile:
        data = Path(locustfile).read_bytes()
        return RunIdentity("locustfile", Path(locustfile).name, hashlib.sha256(data).hexdigest())
    if flow is not None:
        canonical = json.dumps(flow, sort_keys=True, separators=(",", ":")).encode()
        return RunIdentity("flow", str(flow.get("name") or "flow"),
                           hashlib.sha256(canonical).hexdigest())
    return RunIdentity("payment", "payment", hashlib.sha256(b"paystab-payment/1").hexdigest())


def token_proof(token: str, client_id: str) -> str:
    """What a worker shows for the shared token: the token never goes on the wire."""
    return hmac.new(token.encode(), f"paystab-load-worker:{client_id}".encode(),
                    hashlib.sha256).hexdigest()


def hello(identity: RunIdentity, client_id: str, token: str | None) -> dict[str, Any]:
    """The ``paystab_hello`` a worker sends once Locust has acknowledged it."""
    return {"protocol": PROTOCOL, "identity": identity.to_json(), "time": time.time(),
            "proof": token_proof(token, client_id) if token else ""}


def check_bind(host: str, token: str | None) -> None:
    """The master listens on loopback unless a token guards it (docs/security.md)."""
    if not is_loopback_host(host) and not token:
        raise InvalidInput(f"refusing to bind the load master to {host} without a token",
                           source="--master-bind-host",
                           expected="127.0.0.1, or PAYSTAB_TOKEN (or --token) for any other "
                                    "address: workers must then present it")


def host_of(client_id: str) -> str:
    """Locust names a worker ``<hostname>_<uuid hex>``."""
    return client_id.rsplit("_", 1)[0]


@dataclass
class WorkerSeat:
    """One admitted worker, as the result reports it."""

    id: str
    joined_at: float  # epoch s
    clock_offset_s: float  # its clock minus ours at hello (one-way: includes the latency)
    lost_at: float | None = None
    lost_reason: str = ""
    checkouts: int = 0  # records it sent (what the merged summary adds up)
    dropped: int = 0  # arrivals it could not start
    issued: int = 0  # arrivals its pacer scheduled (checkouts + dropped + any cut off)

    def count_batch(self, data: Any) -> None:
        """A ``paystab_batch`` from this worker (``session.py`` defines its shape)."""
        self.checkouts += len(data.get("rows") or ())
        self.dropped += sum(int(count) for _tick, count in data.get("dropped") or ())
        self.issued = max(self.issued, int(data.get("issued") or 0))

    def to_json(self, run_start: float | None) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "host": host_of(self.id),
                                "clock_offset_s": round(self.clock_offset_s, 3),
                                "checkouts": self.checkouts, "dropped": self.dropped,
                                "issued": self.issued}
        if self.lost_at is not None:
            data["lost_at_s"] = round(self.lost_at - (run_start or self.lost_at), 3)
            data["reason"] = self.lost_reason
        return data


@dataclass
class Admission:
    """Who may join: the master's identity and token, and how many seats there are."""

    identity: RunIdentity
    expected: int
    token: str | None = None
    seats: dict[str, WorkerSeat] = field(default_factory=dict)
    refused: list[dict[str, str]] = field(default_factory=list)
    open: bool = True

    def judge(self, client_id: str, data: Any) -> tuple[str, str] | None:
        """None to admit, else (code, reason) for the worker to print."""
        if not isinstance(data, dict) or data.get("protocol") != PROTOCOL:
            return REFUSED_FLOW, (f"paystab load protocol {PROTOCOL} expected; the worker "
                                  "runs another paystab version")
        if self.token is not None:
            proof = str(data.get("proof") or "")
            if not hmac.compare_digest(proof, token_proof(self.token, client_id)):
                return REFUSED_TOKEN, ("token missing or wrong: the master has one; give the "
                                       "worker the same PAYSTAB_TOKEN")
        theirs = data.get("identity") or {}
        if theirs.get("kind") != self.identity.kind or theirs.get("digest") != self.identity.digest:
            other = RunIdentity(str(theirs.get("kind")), str(theirs.get("label")),
                                str(theirs.get("digest") or ""))
            return REFUSED_FLOW, (f"the master runs {self.identity.describe()}, this worker "
                                  f"{other.describe()}: start it with the same "
                                  f"{_flag(self.identity.kind)}")
        if not self.open or len(self.seats) >= self.expected:
            return REFUSED_FULL, (f"the master expected {self.expected} workers and they have "
                                  "joined (a late worker would take users from a running run)")
        return None


def _flag(kind: str) -> str:
    return {"flow": "--flow FILE", "locustfile": "-f FILE"}.get(kind, "options (no --flow, no -f)")
