"""``paystab drill RUNBOOK --stack FILE``: the :class:`Target` a stack file describes.

:meth:`StackTarget.start` starts the PSP simulators the file names (one ``paystab provider
all`` child, as the reference stack does, configured with exactly those names and dialects),
then the user's ``service`` with its ``env`` templates filled from the simulators' URLs and
keys (own session, killed with paystab, stopped after the drill), and waits for its health
URL. A file with ``ready_file`` (``paystab up`` writes one) starts nothing: the running
stack's ready file gives the endpoints. The rest of the drill reaches the stack through
what the file says, and only that:

* load: ``checkout`` (a flow, a flow file, the user's locustfile or paystab's payment API),
  sent to ``checkout.base_url`` (:meth:`load_source`);
* faults: the runbook's provider faults go to the simulators' admin API (the fault
  targets are simulator names); anything else must be in the file's ``faults.allow`` too
  (:meth:`check_blast_radius`);
* detection and failover: the file's ``telemetry`` and ``failover`` as a watch config,
  the machinery of ``drill --watch`` (:meth:`detection`);
* reconciliation: the file's ``ledgers`` through :mod:`paystab.ledgers` (:meth:`reconcile`).

What the file does not give is not measured, and :meth:`not_provided` names the report
variables that depend on it, so hypotheses on them are "not applicable", never failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from paystab.anomaly.admin_client import GatewayAdmin
from paystab.anomaly.controller import FailoverController, FailoverEvent
from paystab.chaos.base import Fault
from paystab.children import child_env, forget, python_command, spawn
from paystab.collector.series import Sample
from paystab.drill.detection import DrillDetection, watch_detection
from paystab.drill.target import Target, get_status
from paystab.exceptions import EnvironmentProblem
from paystab.report.model import ReconciliationRecord
from paystab.stack.endpoints import StackEndpoints
from paystab.stackfile.load import LoadedStack
from paystab.stackfile.templates import fill_simulators

_CARD_BRANDS = ["visa", "mastercard", "jcb", "amex"]
_WALLET_BRANDS = ["paypay", "kakaopay", "grabpay"]
_DETECTION = ("detections", "max_ttd_s")
_FAILOVER = ("drains", "restores", "failovers", "degrades", "max_ttm_s", "false_failovers")
_RECONCILIATION = ("double_charges", "lost_payments", "orphans", "amount_mismatches",
                   "voided_late_successes")


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class _NoAdmin(GatewayAdmin):
    """The controller's admin when the stack has no failover switch: never called, since
    no telemetry means no samples and so no decision."""

    def __init__(self) -> None:
        super().__init__("http://paystab-no-failover.invalid")


class _NoSource:
    def poll(self, now: float) -> list[Sample]:
        return []


class StackTarget(Target):
    """A stack described by a stack file, started (or found running) for one drill."""

    def __init__(self, loaded: LoadedStack, data_dir: Path, seed: int) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.data_dir = data_dir
        self.seed = seed
        self.simulators_proc: subprocess.Popen[bytes] | None = None
        self.service_proc: subprocess.Popen[bytes] | None = None
        self._load_source: tuple[dict[str, Any] | None, list[type[Any]] | None] | None = None

    # -- start / stop ------------------------------------------------------------------------
    def start(self) -> StackEndpoints:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackEndpoints:
        spec = self.spec
        base_url = spec.checkout.base_url.rstrip("/")
        if spec.ready_file is not None:
            self.endpoints = StackEndpoints.read(spec.ready_file)
            self.endpoints.gateway_url = base_url
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.endpoints = StackEndpoints(gateway_url=base_url, providers={},
                                            data_dir=str(self.data_dir))
            if spec.simulators:
                self._start_simulators()
            if spec.service is not None:
                self._start_service()
        if get_status(base_url + "/healthz") == 0:
            raise EnvironmentProblem(f"the stack's checkout {base_url} does not answer",
                                     hint="start the stack, or add a service: block to "
                                          f"{self.loaded.source}")
        return self.endpoints

    def _simulators_config(self) -> dict[str, Any]:
        """A ``paystab provider --config`` file running exactly the file's simulators."""
        from paystab.stack.catalog import default_providers

        providers: dict[str, Any] = {p.name: {"enabled": False} for p in default_providers()}
        for sim in self.spec.simulators:
            entry: dict[str, Any] = {"dialect": sim.dialect, "methods": list(sim.methods)}
            if "card" in sim.methods:
                entry["card_brands"] = _CARD_BRANDS
            if "wallet" in sim.methods:
                entry["wallet_brands"] = _WALLET_BRANDS
            if sim.latency_median is not None:
                entry["latency"] = {"median": f"{sim.latency_median * 1000:g}ms"}
            if sim.decline_mix is not None:
                entry["decline_mix"] = dict(sim.decline_mix)
            providers[sim.name] = entry
        return {"seed": self.seed, "providers": providers}

    def _start_simulators(self) -> None:
        from paystab.stack.supervisor import _wait_for_file

        config = self.data_dir / "simulators.yaml"
        config.write_text(yaml.safe_dump(self._simulators_config(), sort_keys=False))
        ready = self.data_dir / "simulators.json"
        ready.unlink(missing_ok=True)
        log_path = self.data_dir / "simulators.log"
        with log_path.open("ab") as log:
            self.simulators_proc = spawn(
                python_command("-m", "paystab", "provider", "all", "--port", "0",
                               "--admin-port", "0", "--config", str(config),
                               "--data-dir", str(self.data_dir / "simulators"),
                               "--ready-file", str(ready),
                               *(["--tls"] if any(s.tls for s in self.spec.simulators) else [])),
                what="paystab provider all (stack file)", stdout=log,
                stderr=subprocess.STDOUT, env=child_env(), stdin=subprocess.DEVNULL)
        _wait_for_file(ready, self.simulators_proc, log_path, "the PSP simulators")
        sims = StackEndpoints.read(ready)
        assert self.endpoints is not None
        self.endpoints.providers = sims.providers
        self.endpoints.provider_admin_url = sims.provider_admin_url
        self.endpoints.provider_metrics_url = sims.provider_metrics_url
        self.endpoints.providers_pid = sims.providers_pid

    def simulator_value(self, name: str, field: str) -> str | None:
        """What ``${simulators.NAME.FIELD}`` stands for in the running stack."""
        assert self.endpoints is not None
        if field == "admin_url":
            return self.endpoints.provider_admin_url
        endpoint = self.endpoints.providers.get(name)
        value = getattr(endpoint, field, None) if endpoint is not None else None
        return None if value is None else str(value)

    def service_env(self) -> dict[str, str]:
        service = self.spec.service
        assert service is not None
        env = dict(os.environ) if service.inherit_env else {"PATH": os.environ.get("PATH", "")}
        env.update({k: fill_simulators(v, self.simulator_value) for k, v in service.env.items()})
        return env

    def _start_service(self) -> None:
        service = self.spec.service
        assert service is not None
        argv = [fill_simulators(a, self.simulator_value) for a in service.command]
        log_path = self.data_dir / "service.log"
        try:
            with log_path.open("ab") as log:
                self.service_proc = spawn(argv, what=f"{self.spec.name} service", stdout=log,
                                          stderr=subprocess.STDOUT, env=self.service_env(),
                                          cwd=str(self.loaded.base_dir), stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot start the service {argv[0]!r}: {exc}",
                                     hint=f"service.command in {self.loaded.source}") from None
        health = service.health or self.spec.checkout.base_url.rstrip("/") + "/healthz"
        deadline = time.monotonic() + service.start_timeout
        while time.monotonic() < deadline:
            status = get_status(health, timeout_s=1.0)
            if 200 <= status < 300 or (service.health is None and status):
                return
            if self.service_proc.poll() is not None:
                raise EnvironmentProblem(
                    f"the service exited with code {self.service_proc.returncode} before "
                    f"{health} answered; its log ({log_path}) ends with:\n{_tail(log_path)}")
            time.sleep(0.1)
        raise EnvironmentProblem(f"the service did not answer {health} with 2xx within "
                                 f"{service.start_timeout:g}s; its log ({log_path}) ends "
                                 f"with:\n{_tail(log_path)}",
                                 hint="service.start_timeout, or service.health")

    def stop(self) -> None:
        service = self.spec.service
        self._stop(self.service_proc, service.stop_timeout if service is not None else 10.0)
        self._stop(self.simulators_proc, 10.0)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
        """SIGTERM to the child's whole session (its own children too), then SIGKILL."""
        if proc is None:
            return
        for sig in (signal.SIGCONT, signal.SIGTERM):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        forget(proc)

    def describe(self) -> str:
        return f"stack '{self.spec.name}' ({self.loaded.source}) at {self.spec.checkout.base_url}"

    # -- what the drill reads through the file -----------------------------------------------
    def load_source(self) -> tuple[dict[str, Any] | None, list[type[Any]] | None]:
        """``(flow as JSON, None)``, ``(None, paced User classes)`` or ``(None, None)`` for
        paystab's own payment API."""
        checkout = self.spec.checkout
        if checkout.flow is not None:
            return checkout.flow.model_dump(mode="json", by_alias=True), None
        if checkout.flow_file is not None:
            from paystab.loadtest.sources import load_flow_json

            return load_flow_json(checkout.flow_file), None
        if checkout.locustfile is not None:
            from paystab.loadtest.userfile import load_user_classes, paced

            return None, [paced(c) for c in load_user_classes(checkout.locustfile)]
        return None, None

    def load_plan(self, runbook: Any) -> tuple[Any, list[type[Any]] | None]:
        """The load plan and User classes for ``runbook``'s load through ``checkout``:
        ``(None, None)`` for paystab's own payment (the runbook's plan as usual). Read once;
        a bad flow file or locustfile is exit 2 on the first call, before anything starts."""
        if self._load_source is None:
            self._load_source = self.load_source()
        flow, user_classes = self._load_source
        if flow is None:
            return None, user_classes
        from paystab.loadtest.plan import build_plan

        load = runbook.load
        return build_plan(load.profile, load.rate_per_s, load.duration_s, users=load.users,
                          seed=runbook.seed, params=dict(load.params), flow=flow), None

    def probes(self, probes: Sequence[Any]) -> list[Any]:
        """The runbook's steady-state probes for this stack: ``http: /healthz`` (the
        gateway's health, in the bundled runbooks) asks ``service.health`` when the file
        names one."""
        import dataclasses

        health = self.spec.service.health if self.spec.service is not None else None
        if health is None:
            return list(probes)
        return [dataclasses.replace(p, http=health) if p.http in ("/healthz", "healthz") else p
                for p in probes]

    def check_blast_radius(self, faults: Sequence[Fault]) -> None:
        """Every fault must touch only the simulators or what ``faults.allow`` names (exit 2);
        the runbook's own ``allow`` was checked already: both must permit."""
        from paystab.chaos.allow import AllowList

        allow = AllowList.parse([*(f"provider:{s.name}" for s in self.spec.simulators),
                                 *self.spec.faults.allow], source=self.loaded.source,
                                field="faults.allow")
        if self.spec.ready_file is not None:
            allow = AllowList.parse([*allow.entries, *(f"provider:{n}" for n in (
                self.endpoints.providers if self.endpoints else {}))])
        allow.check(faults, source=f"{self.loaded.source} (faults.allow)")

    def watch_config(self) -> Any:
        """The file's telemetry and failover as a :class:`~paystab.watch.config.WatchConfig`."""
        from paystab.watch.config import AdminApi, Failover, ProviderSpec, Safety, WatchConfig

        telemetry, failover = self.spec.telemetry, self.spec.failover
        if telemetry is None:
            return None
        providers = telemetry.providers or [ProviderSpec(name=s.name, methods=list(s.methods))
                                            for s in self.spec.simulators]
        policy = {} if failover is None else {
            k: getattr(failover, k) for k in Failover.model_fields}
        # model_construct: every part was validated with the stack file (and its durations
        # are seconds now, which the watch models would read again as unit-less numbers).
        return WatchConfig.model_construct(
            interval_s=telemetry.interval_s, providers=providers, sources=telemetry.sources,
            detectors=telemetry.detectors, failover=Failover.model_construct(**policy),
            actuators=failover.actuators if failover is not None else [],
            safety=failover.safety if failover is not None else Safety(),
            admin=AdminApi(listen="127.0.0.1:0"),
            decision_log=str(self.data_dir / "decisions.jsonl"),
            dry_run=failover is None or failover.dry_run or not failover.actuators)

    def detection(self, on_event: Callable[[FailoverEvent], None]) -> DrillDetection:
        config = self.watch_config()
        if config is None:
            return DrillDetection(FailoverController(_NoAdmin(), on_event=on_event), _NoSource(),
                                  0.5, True, f"none: {self.loaded.source} has no telemetry")
        return watch_detection(config, self.loaded.path, on_event)

    def not_provided(self) -> dict[str, str]:
        """Report variables this stack cannot give, with the reason shown in the report."""
        out: dict[str, str] = {}
        if self.spec.telemetry is None:
            out.update(dict.fromkeys((*_DETECTION, *_FAILOVER),
                                     "the stack file has no telemetry to detect from"))
        elif self.spec.failover is None or not self.spec.failover.actuators \
                or self.spec.failover.dry_run:
            out.update(dict.fromkeys(_FAILOVER, "the stack file has no failover actuator"))
        if self.spec.ledgers is None and not (self.endpoints and self.endpoints.gateway_ledger):
            out.update(dict.fromkeys(_RECONCILIATION, "the stack file has no ledgers"))
        return out

    # -- after the load ---------------------------------------------------------------------
    def settle(self, timeout_s: float = 30.0) -> int | None:
        if self.spec.ready_file is None:
            return None  # not paystab's gateway: no in-doubt attempts to ask about
        return super().settle(timeout_s)

    def reconcile(self) -> ReconciliationRecord | None:
        ledgers = self.spec.ledgers
        if ledgers is None:  # a running reference stack still has its own ledgers
            return super().reconcile() if self.spec.ready_file is not None else None
        from paystab.ledgers.reconcile import reconcile_ledgers

        assert self.endpoints is not None
        books = {name: p.ledger for name, p in self.endpoints.providers.items() if p.ledger}
        result = reconcile_ledgers(ledgers, self.loaded.base_dir, books)
        return ReconciliationRecord(result.double_charges, result.lost_payments, result.orphans,
                                    result.voided_late_successes,
                                    [f.__dict__ for f in result.findings[:50]],
                                    amount_mismatches=result.amount_mismatches)


def not_applicable(results: list[Any], hypotheses: Sequence[Any],
                   not_provided: dict[str, str]) -> list[Any]:
    """``results`` (report HypothesisResults, in runbook order) with every hypothesis that
    reads a variable in ``not_provided`` turned "not applicable" (ok None, the reason shown)."""
    import dataclasses

    out = list(results)
    for i, hypothesis in enumerate(hypotheses):
        missing = [c.variable for c in hypothesis.comparisons if c.variable in not_provided]
        if missing and i < len(out) and out[i].ok is not None:
            out[i] = dataclasses.replace(out[i], ok=None, status="not_applicable",
                                         expected=f"not applicable: {not_provided[missing[0]]}")
    return out
