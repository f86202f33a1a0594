"""What the locustfile adds to stock ``locust``: ``--paystab-*`` options, the shape, the report.

Under ``locust -f paystab/loadtest/locustfile.py`` Locust owns the process; these hooks read
the plan from the command line (``-u``/``-t`` are honoured when the ``--paystab-`` forms are
absent), attach the session, stop the test once the run has drained (the shape returns
``None``), then print the summary, write ``--paystab-json``/``--paystab-csv`` and set the
exit code from ``--paystab-threshold`` (1 on a breach; 0 otherwise — retried attempts are
not errors). Workers get everything from the master; a worker announces paystab's payment
with ``paystab_hello`` so it may also join a ``paystab load --master`` (``distributed.py``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from locust import LoadTestShape
from locust.env import Environment
from locust.event import Events
from locust.runners import WorkerRunner

from paystab.exceptions import PaystabError
from paystab.loadtest.mix import PaymentMix
from paystab.loadtest.plan import LoadPlan, build_plan
from paystab.loadtest.profiles import parse_params
from paystab.loadtest.records import write_csv
from paystab.loadtest.result import build_result
from paystab.loadtest.session import LoadSession, attach, session_for
from paystab.loadtest.thresholds import parse_thresholds
from paystab.loadtest.worker_admission import MSG_HELLO

log = logging.getLogger("paystab.load")


class PaystabShape(LoadTestShape):
    """Keeps the plan's pool of users alive until the run has drained, then stops."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        runner = self.runner
        if runner is None:
            return None
        session = session_for(runner.environment)
        if session.plan is None or session.finished.is_set():
            return None
        users = session.plan.users
        return users, float(max(users, 1) * 5)


def add_options(parser: Any) -> None:
    group = parser.add_argument_group("paystab", "payment load (see docs/load.md)")
    group.add_argument("--paystab-profile", default="steady",
                       help="steady | ramp | spike | black-friday | soak")
    group.add_argument("--paystab-rps", type=float, default=50.0, help="arrival rate, payments/s")
    group.add_argument("--paystab-duration", type=float, default=None,
                       help="seconds (default: -t, else the profile's default)")
    group.add_argument("--paystab-users", type=int, default=None,
                       help="pool of checkout users (default: -u, else 2 s of peak arrivals)")
    group.add_argument("--paystab-seed", type=int, default=0, help="payment mix seed")
    group.add_argument("--paystab-param", default="", help="shape parameters: k=v,k=v")
    group.add_argument("--paystab-mix", default="", help="payment mix YAML file")
    group.add_argument("--paystab-threshold", action="append", default=[],
                       help="k6-style threshold, repeatable, e.g. 'p(99)<500'")
    group.add_argument("--paystab-window", type=float, default=30.0, help="window seconds")
    group.add_argument("--paystab-json", default="", help="write the result JSON here")
    group.add_argument("--paystab-csv", default="", help="write one CSV line per checkout")


def plan_from_options(options: Any) -> LoadPlan:
    duration = options.paystab_duration
    if duration is None and getattr(options, "run_time", None):
        duration = float(options.run_time)
    users = options.paystab_users or getattr(options, "num_users", None)
    pairs = [p for p in str(options.paystab_param or "").split(",") if p.strip()]
    mix = PaymentMix.load(options.paystab_mix) if options.paystab_mix else None
    return build_plan(options.paystab_profile, options.paystab_rps, duration, users=users,
                      seed=options.paystab_seed, params=parse_params(pairs), mix=mix)


def _report(session: LoadSession, options: Any) -> None:
    plan = session.plan
    if plan is None or session.run_start is None:
        return
    result = build_result(
        plan, session.sink, target_url=str(session.environment.host),
        run_start=session.run_start, elapsed_s=time.time() - session.run_start,
        thresholds=parse_thresholds(options.paystab_threshold),
        window_s=options.paystab_window, processes=max(session.share_count, 1),
        interrupted=not session.finished.is_set(), harness_cpu_s=session.harness_cpu_s(),
        interrupted_checkouts=session.interrupted_checkouts,
    )
    s = result.summary
    log.info("paystab: %d checkouts (%d approved, %d declined, %d pending, %d failed), "
             "%d dropped arrivals, p95 %.1f ms, p99 %.1f ms", s.requests, s.approved,
             s.declined, s.pending, s.failed, s.dropped, s.p95_ms, s.p99_ms)
    for t in result.thresholds:
        log.info("paystab: %s", t.describe())
    if options.paystab_json:
        result.write_json(options.paystab_json)
    if options.paystab_csv:
        write_csv(result.records, options.paystab_csv)
    session.environment.process_exit_code = 0 if result.passed else 1


def _hello(environment: Environment, runner: WorkerRunner) -> None:
    """Announce paystab's payment to a ``paystab load --master`` (which admits only workers
    that do; a stock master ignores it). The token comes from ``PAYSTAB_TOKEN``."""
    from paystab.loadtest.distributed_worker import register_hello
    from paystab.loadtest.worker_admission import identify

    def refused(answer: dict[str, Any]) -> None:
        log.error("paystab: the load master refused this worker: %s", answer.get("reason"))
        environment.process_exit_code = 2
        runner.quit()

    register_hello(runner, identify(None, None), os.environ.get("PAYSTAB_TOKEN") or None,
                   on_refused=refused)


def install(events: Events) -> None:
    """Register the stock-Locust hooks on ``events`` (the locustfile passes locust.events)."""
    events.init_command_line_parser.add_listener(add_options)  # type: ignore[no-untyped-call]

    def on_init(environment: Environment, runner: Any, **_kw: Any) -> None:
        if isinstance(runner, WorkerRunner):
            attach(environment, None)
            _hello(environment, runner)
            return
        if runner is not None and hasattr(runner, "clients"):  # a stock master: hellos are fine
            runner.register_message(MSG_HELLO, lambda **_kw: None)
        options: Any = environment.parsed_options
        try:
            plan = plan_from_options(options)
            parse_thresholds(options.paystab_threshold)
        except PaystabError as exc:
            sys.stderr.write(f"paystab: {exc.render()}\n")
            sys.exit(int(exc.exit_code))
        session = attach(environment, plan)
        environment.stop_timeout = max(environment.stop_timeout or 0.0, plan.drain_s)
        environment.events.test_stop.add_listener(  # type: ignore[no-untyped-call]
            lambda **_: _report(session, options))

    events.init.add_listener(on_init)  # type: ignore[no-untyped-call]
