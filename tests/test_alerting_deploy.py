"""The compose stack in ``deploy/``: every file it references exists and parses, and agrees
with the code it runs.

No images can be pulled here, so the stack is checked statically but with the real tools:
``promtool check config`` on the Prometheus config (with the committed rules), ``amtool
check-config`` on Alertmanager's, paystab's own loaders on the proxy config, the gateway's
providers file and the host-side ready file, and ``paystab … --help`` for every command
line the compose file runs (each option it passes must exist).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest_alerting import REPO, need_binary

DEPLOY = REPO / "deploy"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def _host_paths(compose: dict[str, Any]) -> list[tuple[str, Path, str]]:
    """(service, host path, container path) of every bind mount."""
    out = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, _, rest = volume.partition(":")
            if source.startswith((".", "/")):
                out.append((name, (DEPLOY / source).resolve(), rest.split(":")[0]))
    return out


def test_compose_file_parses_and_has_every_part() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"providers", "gateway", "proxy", "failover", "prometheus", "alertmanager", "grafana",
            "otel-collector", "jaeger"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        mode = service.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.removeprefix("service:") in services
        for dependency in service.get("depends_on", {}):
            assert dependency in services
    for secret in (s for svc in services.values() for s in svc.get("secrets", [])):
        assert secret in compose["secrets"]
    assert "PAYSTAB_TOKEN=" in (DEPLOY / ".env").read_text()


def test_every_referenced_file_exists_and_parses() -> None:
    mounts = _host_paths(_compose())
    assert mounts
    for service, path, _ in mounts:
        assert path.exists(), f"{service} mounts {path}, which does not exist"
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if file.suffix in (".yml", ".yaml"):
                yaml.safe_load(file.read_text())
            elif file.suffix == ".json":
                json.loads(file.read_text())
    build = _compose()["x-paystab"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    assert dockerfile.exists() and (context / "pyproject.toml").exists()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (context / source).exists(), f"Dockerfile copies missing {source}"


def test_mount_targets_match_the_configs_that_read_them() -> None:
    targets = {(svc, target): path for svc, path, target in _host_paths(_compose())}
    assert targets[("prometheus", "/etc/prometheus/rules")] == REPO / "dashboards" / "prometheus"
    assert targets[("grafana", "/var/lib/grafana/dashboards/paystab")] == REPO / "dashboards" / "grafana"
    provisioning = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/paystab.yml").read_text())
    assert provisioning["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/paystab"
    otel = yaml.safe_load((DEPLOY / "otel-collector/config.yaml").read_text())
    for pipeline in otel["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline.get(kind, []):
                assert name in otel[kind], f"pipeline uses undefined {kind[:-1]} {name}"


@pytest.mark.prometheus
def test_promtool_check_config_with_the_committed_rules(tmp_path: Path) -> None:
    promtool = need_binary("promtool", "prometheus")
    config = (DEPLOY / "prometheus/prometheus.yml").read_text()
    token = tmp_path / "token"
    token.write_text("demo")
    # the container path of the compose secret, pointed at a real file for the full check
    (tmp_path / "prometheus.yml").write_text(config.replace("/run/secrets/paystab_token", str(token)))
    shutil.copytree(REPO / "dashboards" / "prometheus", tmp_path / "rules")
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 19 rules found" in result.stdout  # the rules were loaded through the glob


@pytest.mark.alertmanager
def test_amtool_check_config() -> None:
    amtool = need_binary("amtool", "prometheus-alertmanager")
    result = subprocess.run([amtool, "check-config", str(DEPLOY / "alertmanager/alertmanager.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_generated_stack_files_load_with_paystabs_own_loaders() -> None:
    from paystab.cli.proxy_cmd import load_proxy_config
    from paystab.stack.endpoints import StackEndpoints
    from paystab.stack.gateway_main import read_providers_file

    proxies = load_proxy_config(DEPLOY / "proxy/proxies.json", allow_public=False)
    gateway_view = read_providers_file(DEPLOY / "gateway/providers.json")
    host_view = StackEndpoints.read(DEPLOY / "stack-endpoints.json")
    assert set(gateway_view) == set(host_view.providers) == {p["name"] for p in proxies}
    listens = {p["name"]: p["listen"] for p in proxies}
    for name, endpoint in gateway_view.items():  # the gateway goes through the proxy
        assert endpoint.url.endswith(listens[name])


def _command_lines() -> list[list[str]]:
    return [list(map(str, s["command"])) for s in _compose()["services"].values()
            if s.get("command") and str(s["command"][0]) in ("paystab", "python")]


@pytest.mark.parametrize("argv", _command_lines(), ids=lambda a: " ".join(a[:4]))
def test_compose_commands_match_the_cli(argv: list[str]) -> None:
    if argv[0] == "paystab":
        import itertools

        # the words before the first option: subcommands and arguments (`provider all`)
        words = list(itertools.takewhile(lambda w: not w.startswith("-"), argv[1:]))
        base = [sys.executable, "-m", "paystab", *words]
    else:
        base = [sys.executable, *argv[1:3]]  # python -m paystab.alerting.receiver
    result = subprocess.run([*base, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    for option in (w for w in argv if w.startswith("--")):
        assert re.search(rf"{re.escape(option)}\b", result.stdout), \
            f"`{' '.join(argv[:3])}` has no option {option}"


@pytest.mark.prometheus
@pytest.mark.parametrize(("interval_s", "written"), [(0.2, "200ms"), (1.5, "1500ms"), (5.0, "5s")])
def test_a_sub_second_scrape_interval_is_written_in_milliseconds_and_accepted(
        tmp_path: Path, interval_s: float, written: str) -> None:
    """Drills scrape every 200 ms: the interval must not round to 0s, which Prometheus refuses."""
    from paystab.alerting.serverconfig import ScrapeTarget, prometheus_config

    promtool = need_binary("promtool", "prometheus")
    config = prometheus_config([ScrapeTarget.parse("http://127.0.0.1:9/metrics")], [], scrape_interval_s=interval_s,
                               evaluation_interval_s=interval_s)
    job = config["scrape_configs"][0]
    assert job["scrape_interval"] == written and config["global"]["scrape_interval"] == written
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
