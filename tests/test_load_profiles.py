"""Load shapes: rates over time, parameters, validation and the catalogue."""

from __future__ import annotations

import pytest

from paystab.exceptions import InvalidInput
from paystab.loadtest.plan import build_plan, default_users
from paystab.loadtest.profiles import (
    PROFILES,
    catalogue,
    expected_arrivals,
    make_profile,
    parse_params,
)


def test_all_five_shapes_are_registered_and_listed() -> None:
    assert set(PROFILES) == {"steady", "ramp", "spike", "black-friday", "soak"}
    listed = {p["name"]: p for p in catalogue()}
    assert set(listed) == set(PROFILES)
    assert [q["name"] for q in listed["spike"]["params"]] == [
        "factor", "start_s", "rise_s", "hold_s", "fall_s"]
    assert all(q["default"] and q["unit"] and q["help"] for p in listed.values()
               for q in p["params"])


def test_steady_and_ramp() -> None:
    steady = make_profile("steady", 200, 30)
    assert steady.rate_at(0) == steady.rate_at(29.9) == 200
    assert expected_arrivals(steady) == pytest.approx(6000, rel=1e-6)
    ramp = make_profile("ramp", 100, 100, {"start_ratio": 0.1, "ramp_share": 0.5})
    assert ramp.rate_at(0) == pytest.approx(10)
    assert ramp.rate_at(25) == pytest.approx(55)
    assert ramp.rate_at(50) == ramp.rate_at(99) == pytest.approx(100)


def test_spike_is_ten_times_within_ten_seconds_then_falls_back() -> None:
    spike = make_profile("spike", 50, 120)
    v = spike.values
    assert v == {"factor": 10, "start_s": 30, "rise_s": 10, "hold_s": 30, "fall_s": 10}
    assert spike.rate_at(29) == 50
    assert spike.rate_at(35) == pytest.approx(275)  # half-way up
    assert spike.rate_at(40) == spike.rate_at(69) == 500
    assert spike.rate_at(75) == pytest.approx(275)
    assert spike.rate_at(80) == spike.rate_at(119) == 50
    assert spike.peak_rate() == 500


def test_black_friday_ramps_holds_and_drains() -> None:
    bf = make_profile("black-friday", 1000, 100)
    assert bf.rate_at(0) == pytest.approx(200)
    assert bf.rate_at(15) == pytest.approx(600)
    assert bf.rate_at(30) == bf.rate_at(79) == 1000
    assert bf.rate_at(90) == pytest.approx(600)
    assert bf.rate_at(99.99) == pytest.approx(200.4)


def test_soak_wave() -> None:
    soak = make_profile("soak", 100, 1200, {"wave_ratio": 0.2, "wave_period_s": 600})
    assert soak.rate_at(150) == pytest.approx(120)
    assert soak.rate_at(450) == pytest.approx(80)
    assert soak.peak_rate() == pytest.approx(120)
    assert make_profile("soak", 10).duration_s == 3600


@pytest.mark.parametrize(
    ("name", "rate", "duration", "params", "fragment"),
    [
        ("flash", 10, 10, None, "one of: black-friday, ramp, soak, spike, steady"),
        ("steady", 0, 10, None, "--rps"),
        ("steady", -5, 10, None, "--rps"),
        ("steady", 10, 0, None, "--duration"),
        ("spike", 10, 60, {"bogus": 1}, "one of: factor, fall_s, hold_s, rise_s, start_s"),
        ("spike", 10, 60, {"factor": 0.5}, "factor"),
        ("spike", 10, 20, {"hold_s": 30}, "exceeds the duration"),
        ("black-friday", 10, 60, {"ramp_share": 0.7, "hold_share": 0.7}, "exceeds 1"),
    ],
)
def test_bad_shapes_say_what_is_allowed(name: str, rate: float, duration: float,
                                        params: dict[str, float] | None, fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        make_profile(name, rate, duration, params)
    assert fragment in err.value.render()
    assert err.value.exit_code == 2


def test_parse_params() -> None:
    assert parse_params(["factor=10", " hold_s = 2.5"]) == {"factor": 10.0, "hold_s": 2.5}
    for bad in (["factor"], ["=3"], ["factor=ten"]):
        with pytest.raises(InvalidInput, match="KEY=NUMBER"):
            parse_params(bad)


def test_plan_sizes_the_pool_from_the_peak() -> None:
    assert default_users(200) == 400
    assert default_users(1) == 20
    assert default_users(1e9) == 10000
    plan = build_plan("spike", 50, 60)
    assert plan.users == default_users(500)
    assert build_plan("steady", 50, 10, users=7).users == 7
    with pytest.raises(InvalidInput, match="--users"):
        build_plan("steady", 50, 10, users=0)
    again = type(plan).from_json(plan.to_json())
    assert again == plan
