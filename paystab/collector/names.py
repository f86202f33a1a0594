"""Every Prometheus metric name and label paystab emits, in one place.

The gateway, the provider simulators, the fault proxy and the detector all expose metrics;
dashboards, alert rules and the series sampler read them. Keeping the names here is the
contract between those parts: change a name here and every reader follows.
Names use base units (seconds), counters end in ``_total``.
"""

from __future__ import annotations

# -- gateway: customer-facing payments ---------------------------------------------
PAYMENTS_TOTAL = "paystab_payments_total"  # {method, outcome=approved|declined|pending|failed}
PAYMENT_DURATION = "paystab_payment_duration_seconds"  # histogram {method}
GATEWAY_INFLIGHT = "paystab_gateway_inflight"  # gauge
GATEWAY_LOOP_LAG = "paystab_gateway_event_loop_lag_seconds"  # gauge: recent max loop lag
GATEWAY_SHED_TOTAL = "paystab_gateway_shed_total"  # counter: answered 503 by load shedding
RETRIES_TOTAL = "paystab_gateway_retries_total"  # {reason}
RETRY_BUDGET_EXHAUSTED_TOTAL = "paystab_gateway_retry_budget_exhausted_total"
LATE_SUCCESS_VOIDS_TOTAL = "paystab_gateway_late_success_voids_total"  # {provider}

# -- gateway: per-provider attempts and state ----------------------------------------
# outcome=approved|declined|pending|error; error_type=none|timeout|connect|provider_5xx|
# rate_limited|malformed|unknown (the suffix of the unified error.* code)
ATTEMPTS_TOTAL = "paystab_provider_attempts_total"  # {provider, outcome, error_type}
PROVIDER_LATENCY = "paystab_provider_latency_seconds"  # histogram {provider}, trace exemplars
PROVIDER_INFLIGHT = "paystab_provider_inflight"  # gauge {provider}
PROVIDER_OLDEST_INFLIGHT_AGE = "paystab_provider_oldest_inflight_age_seconds"  # gauge {provider}
PROVIDER_HEALTH_SCORE = "paystab_provider_health_score"  # gauge 0..1 {provider}
PROVIDER_BREAKER_STATE = "paystab_provider_breaker_state"  # gauge 0 closed,1 half-open,2 open
PROVIDER_DRAINED = "paystab_provider_drained"  # gauge 0/1 {provider}
FAILOVERS_TOTAL = "paystab_failovers_total"  # counter {provider, action=drain|restore}

# -- provider simulators -----------------------------------------------------------
SIM_REQUESTS_TOTAL = "paystab_sim_requests_total"  # {provider, operation, result}
SIM_ACTIVE_FAULTS = "paystab_sim_active_faults"  # gauge {provider, type}

# -- detection / failover controller -------------------------------------------------
DETECTIONS_TOTAL = "paystab_detections_total"  # counter {provider, detector}
DETECTOR_SCORE = "paystab_detector_score"  # gauge {provider, detector}
CONTROLLER_ACTIONS_TOTAL = "paystab_controller_actions_total"  # {provider, action}

# -- chaos -------------------------------------------------------------------------
ACTIVE_FAULTS = "paystab_active_faults"  # gauge {kind}
PROXY_CONNECTIONS_TOTAL = "paystab_proxy_connections_total"  # {proxy}
PROXY_BYTES_TOTAL = "paystab_proxy_bytes_total"  # {proxy, direction=upstream|downstream}
PROXY_TOXICS_ACTIVE = "paystab_proxy_toxics_active"  # gauge {proxy, type}
PROXY_CONNECTIONS_OPEN = "paystab_proxy_connections_open"  # gauge {proxy}

# -- load harness --------------------------------------------------------------------
LOAD_REQUESTS_TOTAL = "paystab_load_requests_total"  # {outcome}
LOAD_DROPPED_ARRIVALS_TOTAL = "paystab_load_dropped_arrivals_total"

ERROR_TYPES = ("timeout", "connect", "provider_5xx", "rate_limited", "malformed", "unknown")
ATTEMPT_OUTCOMES = ("approved", "declined", "pending", "error")
PAYMENT_OUTCOMES = ("approved", "declined", "pending", "failed")
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}

# Latency histogram buckets (seconds): dense around the 500 ms SLO and the timeouts.
LATENCY_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
)
