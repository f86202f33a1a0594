"""``paystab init``: a commented starter stack file that validates as written.

The starter describes a typical small shop: its own service started by the drill, a
checkout flow (create an order, pay it), two PSPs stood in by paystab's simulators, its
/metrics for detection and a webhook as its failover switch. Every line a user must change
says so. It validates with no environment variable set (the ``${env:…}`` examples are
comments), so ``paystab init && paystab stack validate stack.yaml`` is exit 0; a test keeps it
that way.
"""

from __future__ import annotations

from pathlib import Path

from paystab.exceptions import InvalidInput

STARTER = """\
# A paystab stack file: how to drill YOUR payment stack.
#   paystab stack validate stack.yaml                     check it (every problem at once)
#   paystab drill provider-timeout --stack stack.yaml     drill it
# Guide: docs/your-stack.md. JSON Schema for editors: `paystab schema export .schemas`.
# Relative paths are relative to this file. ${env:NAME} is read from the environment.
version: 1
name: my-shop

# Your service. The drill starts it AFTER the simulators (argv, no shell, in this folder,
# killed if paystab dies) and stops it after. Leave this block out if the stack runs already.
service:
  command: [python3, app.py]                       # CHANGE: how you start your service
  env:                                             # added to paystab's own environment
    PORT: "8080"
    STRIPE_API_BASE: "${simulators.card-alpha.url}"       # filled once the simulators run
    STRIPE_API_KEY: "${simulators.card-alpha.api_key}"
    ADYEN_API_BASE: "${simulators.card-bravo.url}"
    # DATABASE_URL: "${env:SHOP_DATABASE_URL}"     # secrets stay in the environment
  health: http://127.0.0.1:8080/healthz            # 2xx once it is ready
  start_timeout: 30s

# How load reaches your stack: a flow (below), a flow_file: flow.yaml, or your own
# locustfile: locustfile.py. Answers are classified into approved / declined / pending /
# failed (a 2xx with no rule continues; a 402 is declined; anything else failed).
checkout:
  base_url: http://127.0.0.1:8080                  # CHANGE: where your checkout API is
  flow:
    name: checkout
    steps:
      - name: order                                # 1. create the order
        path: /api/orders
        json: {amount: "{{ amount }}", currency: "{{ currency }}", customer: "{{ customer }}"}
        extract: {order_id: $.id}
      - name: pay                                  # 2. pay it, idempotently
        path: /api/orders/{{ order_id }}/pay
        headers: {Idempotency-Key: "{{ key }}"}
        json: {card: "{{ card }}"}
        classify:
          - {status: 200, path: $.state, equals: succeeded, outcome: approved}
          - {status: 402, outcome: declined, code: $.reason}
          - {status: 200, path: $.state, equals: pending, outcome: pending}

# paystab's PSP simulators standing in for your PSPs (stripe, adyen, paypay, komoju speak
# the real APIs: the official SDKs accept them). Runbook faults target these names.
simulators:
  - name: card-alpha                               # the name your metrics and switch use
    dialect: stripe
    methods: [card]
    env: STRIPE_API_BASE
  - name: card-bravo
    dialect: adyen
    methods: [card]
    env: ADYEN_API_BASE

# Where detection reads your telemetry: the same sources as `paystab watch` (prometheus
# with PromQL templates, otlp, metrics_url). Leave out: no detection (hypotheses about
# detection and failover are then "not applicable").
telemetry:
  interval_s: 500ms
  sources:
    - kind: prometheus                             # CHANGE: your Prometheus and metric names
      url: http://127.0.0.1:9090
      provider_label: psp
      window_s: 5s
      queries:
        attempts: sum by (psp) (shop_psp_requests_total)
        failures: sum by (psp) (shop_psp_requests_total{result="error"})
        oldest_inflight_age: max by (psp) (shop_psp_oldest_inflight_seconds)

# How your failover switch is thrown (webhook, command, gateway, alertmanager actuators).
failover:
  actuators:
    - kind: webhook                                # CHANGE: your switch
      url: http://127.0.0.1:8080/admin/psp/{provider}
      method: PUT
      body: '{{"enabled": {enabled}}}'
  safety: {max_actions: 3, per_s: 5m}
  # when a slow host, not a provider, explains a detection, nothing is drained:
  # host_lag_s: 250ms      # your loop_lag metric from which hang/latency is the host's
  # host_share: 0.5        # or this share of the other providers detected at once

# Your ledgers, for the double-charge / lost-payment / orphan checks (leave out: those
# hypotheses are "not applicable"). See docs/your-stack.md, "Ledgers".
# ledgers:
#   merchant:
#     kind: sql
#     url: "${env:SHOP_DATABASE_URL}"
#     query: SELECT id AS reference, state AS status, amount, currency FROM orders
#   psp: [{kind: simulators}]

# How hard your stack may be drilled: the runbooks' rates suit paystab's reference gateway.
# A runbook whose load peaks above max_rps runs with its whole shape scaled down to peak
# there (the report says so); --rps on the command line wins.
# load:
#   max_rps: 100

# Blast radius for faults outside the simulators (the simulators are always allowed).
faults:
  allow: []
"""


def write_starter(path: Path, force: bool = False) -> Path:
    """Write the starter to ``path``; an existing file is kept unless ``force`` (exit 2)."""
    if path.exists() and not force:
        raise InvalidInput("the file exists; nothing written", source=str(path),
                           hint="pass --force to overwrite it, or give another PATH")
    if path.is_dir():
        raise InvalidInput("is a folder", source=str(path), expected="a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STARTER, encoding="utf-8")
    return path
