"""Fault parameters, the registry and the blast radius: validation without side effects."""

from __future__ import annotations

import pytest

from paystab.chaos.allow import AllowList
from paystab.chaos.base import Fault, FaultSpec, Resource, invalid_target
from paystab.chaos.params import Param, choice, duration, parse_cli_params, parse_params, ratio
from paystab.chaos.registry import build_spec, fault_class, kinds
from paystab.exceptions import ExitCode, InvalidInput


def _cli_spec(kind: str, target: str, *pairs: str) -> FaultSpec:
    return build_spec(
        kind, kind, target, parse_cli_params(pairs),
        kind_error=lambda p, e: InvalidInput(p, source="KIND", expected=e),
        target_error=lambda exc: invalid_target(exc, "--target", None, target),
        param_error=lambda n, p, e: InvalidInput(p, source="--param", field=n, expected=e),
    )


def test_every_backend_registers_its_kinds() -> None:
    names = set(kinds())
    for backend in ("provider", "proxy", "iptables", "docker", "process"):
        assert any(n.startswith(backend + ".") for n in names), backend
    assert {"provider.error_burst", "provider.latency", "provider.hang", "provider.slow",
            "provider.drop_response", "provider.partial_outage", "provider.flapping",
            "proxy.latency", "proxy.bandwidth", "proxy.slow_close", "proxy.timeout",
            "proxy.reset_peer", "proxy.slicer", "proxy.limit_data", "proxy.down",
            "iptables.partition", "docker.pause", "docker.stop", "docker.kill",
            "docker.restart", "docker.disconnect", "process.stop", "process.kill",
            "process.restart"} <= names
    for cls in kinds().values():
        assert cls.summary and cls.kind in names


def test_durations_need_units_and_come_back_in_seconds() -> None:
    spec = _cli_spec("provider.latency", "card-alpha", "added=300ms", "jitter=1s")
    assert spec.params == {"added": 0.3, "jitter": 1.0}
    with pytest.raises(InvalidInput) as err:
        _cli_spec("provider.latency", "card-alpha", "added=300")
    assert err.value.exit_code == ExitCode.INVALID_INPUT
    assert err.value.field == "added" and err.value.source == "--param"
    assert "unit" in (err.value.expected or "")


def test_ratios_enums_and_ranges() -> None:
    assert _cli_spec("provider.hang", "card-alpha", "ratio=25%").params == {"ratio": 0.25}
    assert _cli_spec("provider.hang", "card-alpha").params == {"ratio": 1.0}
    for bad in ("ratio=1.5", "ratio=half", "ratio=-0.1"):
        with pytest.raises(InvalidInput, match=r"ratio|0\.\.1"):
            _cli_spec("provider.hang", "card-alpha", bad)
    with pytest.raises(InvalidInput) as err:
        _cli_spec("provider.error_burst", "card-alpha", "error=teapot")
    assert "server_error" in (err.value.expected or "")
    with pytest.raises(InvalidInput, match="too large"):
        _cli_spec("docker.stop", "web", "timeout=2h")


def test_unknown_or_mistyped_parameter_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as err:
        _cli_spec("provider.hang", "card-alpha", "ratoi=0.5")
    assert "unknown parameter 'ratoi'" in err.value.message
    assert "ratio" in (err.value.expected or "")
    with pytest.raises(InvalidInput, match="missing parameter 'added'"):
        _cli_spec("provider.latency", "card-alpha")
    with pytest.raises(InvalidInput, match="NAME=VALUE"):
        parse_cli_params(["ratio"])
    with pytest.raises(InvalidInput, match="twice"):
        parse_cli_params(["ratio=1", "ratio=0.5"])


def test_unknown_kind_suggests_the_closest() -> None:
    with pytest.raises(InvalidInput) as err:
        fault_class("provider.hnag")
    assert "did you mean 'provider.hang'" in err.value.message


def test_cross_parameter_checks() -> None:
    with pytest.raises(InvalidInput, match="selector"):
        _cli_spec("provider.partial_outage", "card-alpha")
    with pytest.raises(InvalidInput, match="go together"):
        _cli_spec("provider.partial_outage", "card-alpha", "bin_from=4000")
    spec = _cli_spec("provider.partial_outage", "card-alpha", "method=card")
    assert spec.params == {"method": "card", "error": "server_error"}


@pytest.mark.parametrize(("kind", "target", "identity"), [
    ("provider.hang", "card-alpha", "provider:card-alpha"),
    ("provider.hang", "card-alpha@http://127.0.0.1:9100", "provider:card-alpha"),
    ("proxy.latency", "alpha", "proxy:alpha"),
    ("proxy.latency", "localhost:9001", "127.0.0.1:9001"),
    ("iptables.partition", "127.0.0.1:9001", "127.0.0.1:9001"),
    ("iptables.partition", "card-alpha", "provider:card-alpha"),
    ("docker.pause", "psp-alpha", "container:psp-alpha"),
    ("process.stop", "pid:1234", "pid:1234"),
    ("process.stop", "pidfile:/run/x.pid", "pidfile:/run/x.pid"),
    ("process.stop", "gateway", "process:gateway"),
])
def test_targets_are_named_for_the_blast_radius(kind: str, target: str, identity: str) -> None:
    assert fault_class(kind).check_target(target) == identity


@pytest.mark.parametrize(("kind", "target"), [
    ("iptables.partition", "127.0.0.1:99999"), ("iptables.partition", "a b"),
    ("process.stop", "pid:abc"), ("docker.pause", "bad name!"),
    ("provider.hang", "card-alpha@ftp://x"), ("proxy.down", "x y"),
])
def test_malformed_targets_are_exit_2(kind: str, target: str) -> None:
    with pytest.raises(InvalidInput) as err:
        _cli_spec(kind, target)
    assert err.value.source == "--target" and err.value.exit_code == 2


class _Fake(Fault):
    kind = "test.fake"
    summary = "a fault that touches given names"

    @classmethod
    def check_target(cls, target: str) -> str:
        return target

    @classmethod
    def resolve(cls, spec: FaultSpec, ctx: object) -> dict[str, object]:  # type: ignore[override]
        return {}

    def touches(self) -> Resource:
        return Resource(tuple(self.spec.target.split(",")))

    def inject(self) -> None:
        raise AssertionError("never injected")

    def clear(self) -> None:
        pass


def test_allow_list_forms_and_wildcards() -> None:
    allow = AllowList.parse(["localhost:9001", "provider:card-*", "container:web", "pid:42"])
    assert allow.entries == ("127.0.0.1:9001", "provider:card-*", "container:web", "pid:42")
    ok = [_Fake("a", FaultSpec("a", "test.fake", t), {}) for t in
          ("provider:card-alpha", "container:web", "x:1,127.0.0.1:9001", "pid:42")]
    allow.check(ok)
    refused = _Fake("b", FaultSpec("b", "test.fake", "provider:wallet-grab"), {})
    with pytest.raises(InvalidInput) as err:
        allow.check([*ok, refused])
    assert "outside the blast radius" in err.value.message and "wallet-grab" in err.value.message
    for bad in ("pid:abc", "nothing", "host:99999", "container:"):
        with pytest.raises(InvalidInput):
            AllowList.parse([bad])


def test_param_helpers_format_units() -> None:
    assert duration("d", "").format(0.25) == "250ms"
    assert ratio("r", "").parse("0.5") == 0.5
    assert choice("c", "", ("a", "b")).parse("b") == "b"
    p = Param("n", "int", "", lo=1)
    with pytest.raises(InvalidInput):
        parse_params("k", (p,), {"n": "0"},
                     lambda n, pr, e: InvalidInput(pr, field=n, expected=e))
