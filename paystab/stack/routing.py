"""Provider choice: health scores, circuit breakers, drain state and the retry budget.

For each payment the router lists the providers that can take it (method, currency,
country, card or wallet brand), drops drained ones and open breakers, and orders the rest
by a health score: the success rate over recent blocks **excluding customer declines**
(a decline is the customer's answer, not the provider's failure), discounted for latency,
fee and, strongly, for a provider whose oldest in-flight attempt has waited far longer than
its usual latency (it has probably stopped answering; the gateway's own timeout has not
fired yet). A small exploration share keeps measuring providers that are not first.
Backups are used only when no primary can take the payment. When every provider of a
method is drained the router degrades to the drained ones rather than refuse payments.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass

from paystab.collector.stats import ProviderStats
from paystab.stack.catalog import BreakerSettings, ProviderSpec, RoutingSettings

GOOD_LATENCY_S = 0.2
# How long the slow-moving part of a health score is reused (see Route.score).
SCORE_TTL_S = 0.025


class Breaker:
    """Per-provider circuit breaker over a rolling window of one-second buckets.

    closed → open when, over ``window_s``, at least ``min_calls`` attempts were made and the
    share that counted against the provider is above ``failure_ratio``; open → half_open
    after ``open_s``; half_open lets one probe through at a time and closes after
    ``half_open_probes`` successes in a row, or opens again on any failure.
    """

    def __init__(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self.state = "closed"
        self._buckets: deque[list[float]] = deque()  # [second, calls, failures]
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._probe_successes = 0

    def _bucket(self, now: float) -> list[float]:
        second = float(int(now))
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0.0, 0.0])
            horizon = second - self.settings.window_s
            while self._buckets and self._buckets[0][0] <= horizon:
                self._buckets.popleft()
        return self._buckets[-1]

    def allows(self, now: float) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open":
            if now - self._opened_at >= self.settings.open_s:
                self.state = "half_open"
                self._probe_in_flight = False
                self._probe_successes = 0
            else:
                return False
        return not self._probe_in_flight

    def on_send(self) -> None:
        if self.state == "half_open":
            self._probe_in_flight = True

    def record(self, failed: bool, now: float) -> None:
        bucket = self._bucket(now)
        bucket[1] += 1
        if failed:
            bucket[2] += 1
        if self.state == "half_open":
            self._probe_in_flight = False
            if failed:
                self._open(now)
            else:
                self._probe_successes += 1
                if self._probe_successes >= self.settings.half_open_probes:
                    self.state = "closed"
                    self._buckets.clear()
            return
        if self.state == "closed" and failed:
            calls = sum(b[1] for b in self._buckets)
            failures = sum(b[2] for b in self._buckets)
            if calls >= self.settings.min_calls and failures / calls > self.settings.failure_ratio:
                self._open(now)

    def _open(self, now: float) -> None:
        self.state = "open"
        self._opened_at = now
        self._probe_in_flight = False


class LatencyEstimate:
    """Exponentially time-decayed mean latency of successes (half-life ``half_life_s``).

    Time-decayed rather than a window mean so that a few slow attempts (a cold start, a
    GC pause) stop counting within seconds even for a provider that gets little traffic.
    """

    def __init__(self, initial_s: float, half_life_s: float = 5.0) -> None:
        self.value_s = initial_s
        self.half_life_s = half_life_s
        self._last: float | None = None

    def observe(self, latency_s: float, now: float) -> None:
        if self._last is None:
            weight = 0.5
        else:
            weight = 1.0 - 0.5 ** (max(now - self._last, 0.0) / self.half_life_s)
            weight = max(weight, 0.05)
        self.value_s += weight * (min(latency_s, 5.0) - self.value_s)
        self._last = now


class HealthWindow:
    """Successes and provider-side failures in blocks; declines are not counted at all."""

    def __init__(self, block_s: float, window_s: float) -> None:
        self.block_s = block_s
        self.blocks = max(1, int(window_s / block_s))
        self._data: deque[list[float]] = deque()  # [block index, ok, failed, latency sum]

    def record(self, ok: bool, latency_s: float, now: float) -> None:
        index = float(int(now / self.block_s))
        if not self._data or self._data[-1][0] != index:
            self._data.append([index, 0.0, 0.0, 0.0])
            while self._data and self._data[0][0] <= index - self.blocks:
                self._data.popleft()
        block = self._data[-1]
        if ok:
            block[1] += 1
            block[3] += latency_s
        else:
            block[2] += 1

    def rates(self, now: float) -> tuple[float, float | None]:
        """(success rate with a weak optimistic prior, mean latency of successes or None)."""
        horizon = int(now / self.block_s) - self.blocks
        ok = failed = lat = 0.0
        for index, b_ok, b_failed, b_lat in self._data:
            if index > horizon:
                ok += b_ok
                failed += b_failed
                lat += b_lat
        success = (ok + 2.0) / (ok + failed + 2.0)
        return success, (lat / ok if ok else None)


@dataclass
class Route:
    """One provider as the router sees it."""

    spec: ProviderSpec
    stats: ProviderStats
    breaker: Breaker
    health: HealthWindow
    latency: LatencyEstimate
    drained: bool = False
    _base: float = 1.0
    _suspect_after_s: float = 0.3
    _base_at: float = float("-inf")

    def score(self, settings: RoutingSettings, now: float) -> float:
        """The health score, 0..1; asked per payment, so the slow-moving part is cached.

        Success rate (declines excluded), latency and fee move slowly and are recomputed at
        most every ``SCORE_TTL_S`` (a failure recomputes them at once); the in-flight-age
        suspicion is checked fresh every time.
        """
        if now - self._base_at > SCORE_TTL_S:
            self._refresh(settings, now)
        # A provider that holds an attempt far longer than usual has likely stopped
        # answering: route around it before its timeouts start to count.
        if self.stats.inflight and self.stats.oldest_inflight_age_s(now) > self._suspect_after_s:
            return self._base * 0.05
        return self._base

    def _refresh(self, settings: RoutingSettings, now: float) -> None:
        success, _ = self.health.rates(now)
        # Failure ratios up to the normal level (the seeds alert only above 1 %) are all
        # healthy: without this tolerance a handful of failures would outweigh the fee
        # difference and traffic would swing between providers on noise.
        success = min(1.0, success + settings.healthy_failure_ratio)
        latency_s = self.latency.value_s
        # Below GOOD_LATENCY_S every provider is as good as any other (the fee decides);
        # above it the penalty grows linearly up to latency_weight at one second more.
        slow = min(1.0, max(0.0, latency_s - GOOD_LATENCY_S) / 1.0)
        latency_penalty = slow * settings.latency_weight
        fee_penalty = min(1.0, self.spec.fee_bps / 500.0) * settings.fee_weight
        self._base = success * (1.0 - latency_penalty) * (1.0 - fee_penalty)
        self._suspect_after_s = max(0.3, 8.0 * latency_s)
        self._base_at = now

    def invalidate(self) -> None:
        """Recompute the cached part of the score on the next ask."""
        self._base_at = float("-inf")


class Router:
    def __init__(self, specs: list[ProviderSpec], stats: dict[str, ProviderStats],
                 settings: RoutingSettings, seed: int | None = None) -> None:
        self.settings = settings
        self.routes = {
            s.name: Route(s, stats[s.name], Breaker(settings.breaker),
                          HealthWindow(settings.health_block_s, settings.health_window_s),
                          LatencyEstimate(s.latency.median_ms / 1000.0))
            for s in specs
        }
        self._rng = random.Random(seed)
        # Which providers can take a kind of payment never changes while the gateway runs.
        self._able: dict[tuple[str, str, str, str | None], tuple[Route, ...]] = {}

    def _able_for(self, method: str, currency: str, country: str, brand: str | None) -> tuple[Route, ...]:
        kind = (method, currency, country, brand)
        able = self._able.get(kind)
        if able is None:
            able = tuple(r for r in self.routes.values() if r.spec.supports(method, currency, country, brand))
            if len(self._able) < 4096:  # bounded: kinds come from validated fields, but still
                self._able[kind] = able
        return able

    def routable(self, method: str, currency: str, country: str, brand: str | None) -> bool:
        """Whether any configured provider takes this kind of payment, drained or not."""
        return bool(self._able_for(method, currency, country, brand))

    def candidates(self, method: str, currency: str, country: str, brand: str | None,
                   exclude: set[str]) -> list[Route]:
        """Providers to try in order. Empty when none can take the payment at all."""
        now = time.monotonic()
        able = [r for r in self._able_for(method, currency, country, brand) if r.spec.name not in exclude]
        if not able:
            return []
        usable = [r for r in able if not r.drained and r.breaker.allows(now)]
        primaries = [r for r in usable if not r.spec.backup]
        pool = primaries or usable
        if not pool:
            # Everything drained or open: degrade to whatever can take it, best first,
            # rather than refuse the customer outright.
            pool = [r for r in able if r.breaker.state != "open"] or able
        settings = self.settings
        scored = sorted(pool, key=lambda r: r.score(settings, now), reverse=True)
        if len(scored) > 1 and self._rng.random() < self.settings.exploration_share:
            pick = self._rng.randrange(1, len(scored))
            scored.insert(0, scored.pop(pick))
        if primaries:  # backups stay available as the last resort of this payment
            scored += [r for r in usable if r.spec.backup and r not in scored]
        return scored

    def record(self, route: Route, counts_against: bool, ok: bool, latency_s: float) -> None:
        now = time.monotonic()
        route.breaker.record(counts_against, now)
        if ok or counts_against:  # declines are neither success nor failure for health
            route.health.record(ok, latency_s, now)
        if ok:
            route.latency.observe(latency_s, now)
        elif counts_against:
            route.invalidate()  # a failure re-ranks at once
        route.stats.breaker_state = route.breaker.state

    def refresh_gauges(self) -> None:
        now = time.monotonic()
        for route in self.routes.values():
            route.breaker.allows(now)  # lets open → half_open show up without traffic
            route.stats.breaker_state = route.breaker.state
            route.stats.health_score = round(route.score(self.settings, now), 4)
            route.stats.drained = route.drained


class RetryBudget:
    """At most ``ratio`` extra attempts per first attempt, plus a small floor per second.

    A token bucket: every first attempt adds ``ratio`` tokens, time adds ``min_per_s``;
    a retry spends one. Without it, retries during an outage multiply load on the
    providers that are still healthy, which is how one provider's outage becomes all of them.
    """

    def __init__(self, ratio: float, min_per_s: float) -> None:
        self.ratio = ratio
        self.min_per_s = min_per_s
        self.cap = max(10.0, min_per_s * 10)
        self.tokens = self.cap
        self._last = time.monotonic()

    def on_first_attempt(self) -> None:
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.cap, self.tokens + (now - self._last) * self.min_per_s)
        self._last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
