"""Routing: breakers, health excluding declines, drain/degrade, exploration, retry budget."""

from __future__ import annotations

from paystab.collector.stats import GatewayStats
from paystab.stack.catalog import BreakerSettings, RoutingSettings, default_providers
from paystab.stack.routing import Breaker, HealthWindow, RetryBudget, Router


def make_router(exploration: float = 0.0) -> Router:
    specs = default_providers()
    stats = GatewayStats()
    for s in specs:
        stats.provider(s.name, s.methods)
    return Router(specs, stats.providers, RoutingSettings(exploration_share=exploration), seed=1)


def test_breaker_opens_above_five_percent_then_half_opens_and_closes() -> None:
    b = Breaker(BreakerSettings(failure_ratio=0.05, window_s=10, min_calls=20, open_s=5, half_open_probes=2))
    now = 1000.0
    for _ in range(19):
        b.record(False, now)
    b.record(True, now)  # 1/20 = 5 %: not above
    assert b.state == "closed"
    b.record(True, now)  # 2/21 > 5 %
    assert b.state == "open" and not b.allows(now + 1)
    assert b.allows(now + 5.1) and b.state == "half_open"
    b.on_send()
    assert not b.allows(now + 5.2)  # one probe at a time
    b.record(False, now + 5.3)
    b.on_send()
    b.record(False, now + 5.4)
    assert b.state == "closed"


def test_breaker_reopens_on_a_failed_probe_and_forgets_old_buckets() -> None:
    b = Breaker(BreakerSettings(min_calls=5, window_s=10, open_s=1))
    for _ in range(5):
        b.record(True, 0.0)
    assert b.state == "open"
    assert b.allows(1.5)
    b.on_send()
    b.record(True, 1.6)
    assert b.state == "open"
    c = Breaker(BreakerSettings(min_calls=5, window_s=10))
    for _ in range(5):
        c.record(True, 0.0)  # not enough calls... opens at the fifth
    d = Breaker(BreakerSettings(min_calls=5, window_s=2))
    for _ in range(4):
        d.record(True, 0.0)
    d.record(False, 5.0)  # old failures aged out: 0/1
    assert d.state == "closed"


def test_health_ignores_declines_and_penalises_failures() -> None:
    router = make_router()
    route = router.routes["card-alpha"]
    for _ in range(200):
        router.record(route, counts_against=False, ok=False, latency_s=0.04)  # declines
    assert route.health.rates(_now())[0] > 0.99
    for _ in range(50):
        router.record(route, counts_against=True, ok=False, latency_s=0.04)
    assert route.health.rates(_now())[0] < 0.1


def _now() -> float:
    import time

    return time.monotonic()


def test_candidates_respect_brand_method_currency_and_backups_come_last() -> None:
    router = make_router()
    jcb = [r.spec.name for r in router.candidates("card", "JPY", "JP", "jcb", set())]
    assert jcb[0] == "card-delta" and jcb[-1] == "card-backup" and len(jcb) == 2
    visa = [r.spec.name for r in router.candidates("card", "JPY", "JP", "visa", set())]
    assert visa[-1] == "card-backup" and len(visa) == 5
    wallets = [r.spec.name for r in router.candidates("wallet", "JPY", "JP", "paypay", set())]
    assert set(wallets) == {"wallet-paypay", "wallet-kakao", "wallet-grab"}
    assert router.candidates("wallet", "EUR", "NL", "paypay", set()) == []
    konbini = [r.spec.name for r in router.candidates("konbini", "JPY", "JP", None, {"konbini-east"})]
    assert konbini == ["konbini-west"]


def test_drained_providers_are_skipped_until_all_are_drained_then_degrade() -> None:
    router = make_router()
    router.routes["wallet-paypay"].drained = True
    names = [r.spec.name for r in router.candidates("wallet", "JPY", "JP", "paypay", set())]
    assert "wallet-paypay" not in names
    for name in ("wallet-kakao", "wallet-grab"):
        router.routes[name].drained = True
    degraded = [r.spec.name for r in router.candidates("wallet", "JPY", "JP", "paypay", set())]
    assert set(degraded) == {"wallet-paypay", "wallet-kakao", "wallet-grab"}


def test_a_provider_holding_an_old_attempt_is_routed_around() -> None:
    router = make_router()
    first = router.candidates("card", "USD", "US", "visa", set())[0]
    first.stats.inflight[1] = _now() - 5.0  # waiting 5 s: it stopped answering
    assert router.candidates("card", "USD", "US", "visa", set())[0].spec.name != first.spec.name


def test_exploration_share_sends_a_small_fraction_elsewhere() -> None:
    router = make_router(exploration=0.05)
    firsts = [router.candidates("card", "USD", "US", "visa", set())[0].spec.name for _ in range(4000)]
    best = max(set(firsts), key=firsts.count)
    share = 1 - firsts.count(best) / len(firsts)
    assert 0.02 < share < 0.09


def test_retry_budget_caps_retries_to_a_share_of_first_attempts() -> None:
    budget = RetryBudget(ratio=0.2, min_per_s=0.0)
    budget.tokens = 0.0
    granted = 0
    for _ in range(1000):
        budget.on_first_attempt()
        if budget.try_spend():
            granted += 1
    assert 195 <= granted <= 200


def test_health_window_forgets_old_blocks() -> None:
    w = HealthWindow(block_s=1.0, window_s=3.0)
    for _ in range(10):
        w.record(False, 0.0, now=100.0)
    assert w.rates(100.5)[0] < 0.2
    w.record(True, 0.05, now=104.0)
    assert w.rates(104.0)[0] > 0.9
