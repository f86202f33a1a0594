"""Where a running stack lives: the ``--ready-file`` contract.

``paystab up --ready-file F`` writes this JSON once every part answers; drills, load runs,
the reconciler, the chaos engine and tests read it to find the gateway, the providers,
their admin APIs and their ledgers. A user's own stack can be described by the same file
(hand-written), with ledgers omitted.

Gateway admin API (on the gateway port, loopback or bearer token):
  GET  /admin/providers                 -> {"providers": [ProviderState...]}
  POST /admin/providers/{name}/drain    body {"reason": str, "source": str} (optional)
  POST /admin/providers/{name}/restore  same body; both answer the new ProviderState
  ProviderState = {"name", "methods", "state": "active"|"drained", "breaker":
                   "closed"|"half_open"|"open", "health_score", "inflight",
                   "oldest_inflight_age_s", "success_rate", "p95_ms"}

Provider admin API (one listener per providers process, ``provider_admin_url``):
  GET    /admin/providers                          -> {"providers": [{"name","url","faults"}]}
  GET    /admin/providers/{name}/faults            -> {"faults": [Fault...]}
  POST   /admin/providers/{name}/faults            body Fault -> 201 Fault (with "id")
  DELETE /admin/providers/{name}/faults/{id}       -> 204
  DELETE /admin/providers/{name}/faults            -> 204 (clear all)
  Fault = {"type": "error_burst"|"latency"|"hang"|"slow"|"drop_response"|
                   "partial_outage"|"flapping"|"webhook_delay"|"webhook_duplicate"|
                   "webhook_reorder"|"webhook_drop", "id"?: str, ...parameters}
  (parameters in stack/faults.py: error_burst{ratio, error}, latency{added_ms, jitter_ms},
   hang{ratio}, slow{duration_ms}, drop_response{ratio}, partial_outage{method|currency|
   bin_from..bin_to, error}, flapping{period_s, down_ratio, error}; error is one of
   server_error, rate_limited, malformed, bad_gateway; webhook_delay{added_ms, jitter_ms},
   webhook_duplicate{ratio, copies}, webhook_reorder{window_ms}, webhook_drop{ratio})

Per provider, besides ``url``, ``methods``, ``dialect`` and ``ledger``: ``ca_file`` (the
local CA's PEM when the providers serve HTTPS, ``--tls``), ``api_key`` (the PSP key a
client must present, for dialects that check one, e.g. stripe's ``sk_test_…``) and
``webhook_secret`` (what signs the events sent to ``--webhook-url``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paystab.exceptions import InvalidInput


@dataclass
class ProviderEndpoint:
    name: str
    url: str
    methods: list[str]
    dialect: str
    ledger: str | None = None  # SQLite path of the provider's capture ledger
    # HTTPS providers (``--tls``): the PEM file of the CA that signed their certificate.
    ca_file: str | None = None
    # The PSP API key a client must send (routed dialects such as stripe), and the secret
    # that signs the webhook events sent to ``--webhook-url``.
    api_key: str | None = None
    webhook_secret: str | None = None


@dataclass
class StackEndpoints:
    gateway_url: str
    providers: dict[str, ProviderEndpoint]
    provider_admin_url: str | None = None
    gateway_ledger: str | None = None
    gateway_pid: int | None = None
    providers_pid: int | None = None
    metrics_url: str | None = None  # gateway /metrics
    provider_metrics_url: str | None = None
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    admin_token: str | None = None
    data_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "ready file") -> StackEndpoints:
        try:
            providers = {
                name: ProviderEndpoint(**p) for name, p in dict(data.get("providers", {})).items()
            }
            fields = {k: v for k, v in data.items() if k != "providers"}
            return cls(providers=providers, **fields)
        except TypeError as exc:
            raise InvalidInput(f"not a paystab ready file: {exc}", source=source) from None

    def write(self, path: str | Path) -> None:
        """Write atomically, so a reader polling for the file never sees half of it."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".ready-")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.to_json(), fh, indent=2)
        os.replace(tmp, target)

    @classmethod
    def read(cls, path: str | Path) -> StackEndpoints:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise InvalidInput("ready file not found", source=str(p)) from None
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read the ready file: {exc}", source=str(p)) from None
        if not isinstance(data, dict):
            raise InvalidInput("not a JSON object", source=str(p))
        return cls.from_json(data, str(p))
