"""``paystab load`` (run a load profile) and ``paystab load capacity`` (find the limit).

Parse, validate, call, render. Everything a user can get wrong is checked before any
network traffic (exit 2, listing what is allowed); an unreachable target is exit 4 before
any load is counted; breached thresholds exit 1 naming the threshold and the window;
an interrupted run exits 3 after writing what it has. Locust (which gevent-patches the
process on import) is imported inside the commands only.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

from paystab.cli.conventions import (
    check_json_dest,
    emit_json,
    json_option,
    plain_output,
    positive_rate,
)
from paystab.cli.plain import show
from paystab.exceptions import Aborted, Inconclusive, InvalidInput, VerdictFailed
from paystab.outputs import check_output_file
from paystab.units import DURATION_EXPECTED, parse_cli_duration_s


def _rate(value: str | None, source: str) -> float | None:
    return positive_rate(value, source)


def _seconds(value: str | None, source: str, allow_zero: bool = False) -> float | None:
    if value is None:
        return None
    try:
        return parse_cli_duration_s(value, allow_zero=allow_zero)
    except ValueError as exc:
        raise InvalidInput(str(exc), source=source, expected=DURATION_EXPECTED) from None


@contextmanager
def _graceful_stop() -> Iterator[threading.Event]:
    """Ctrl-C or SIGTERM stops the arrivals; the run drains, writes its outputs, exits 3.

    Only called after Locust is imported (gevent-patched), so the event is cooperative and
    gevent's signal handler runs in the hub rather than interrupting a greenlet mid-send.
    """
    import gevent

    stop = threading.Event()
    handlers = [gevent.signal_handler(sig, stop.set) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        yield stop
    finally:
        for handler in handlers:
            handler.cancel()


def _target_options(fn: Any) -> Any:
    fn = click.option("--ready-file", type=click.Path(dir_okay=False),
                      help="ready file of `paystab up`: use its gateway")(fn)
    return click.option("--target", "--host", "target", metavar="URL",
                        help="base URL of the stack under load (--host: Locust's name)")(fn)


def _common_options(fn: Any) -> Any:
    for decorator in reversed([
        click.option("--users", "-u", type=int, help="pool of checkout users (default: 2 s of peak "
                                              "arrivals)"),
        click.option("--processes", type=int, default=1, show_default=True,
                     help="load processes: 1 = in-process, N = a master + N local workers"),
        click.option("--threshold", "thresholds", multiple=True, metavar="EXPR",
                     help="k6-style, repeatable: 'failure_rate<0.005', 'p(99)<500'"),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="payment mix seed (same seed → same payments)"),
        json_option("the result as JSON: on stdout (--json, --json -) or into FILE"),
        click.option("--expected-peak", metavar="N", help="expected peak payments/s"),
        click.option("--no-live", is_flag=True, help="no live view"),
    ]):
        fn = decorator(fn)
    return fn


def _master_options(fn: Any) -> Any:
    for decorator in reversed([
        click.option("--master", is_flag=True,
                     help="run as the master of `paystab load worker`s on other machines"),
        click.option("--expect-workers", type=int, metavar="N",
                     help="with --master: workers to wait for; the rate is shared among them"),
        click.option("--expect-workers-max-wait", default="60", show_default=True, metavar="S",
                     help="with --master: exit 4 when fewer workers joined by then"),
        click.option("--master-bind-host", default="127.0.0.1", show_default=True,
                     help="with --master: address to listen on (not loopback: needs a token)"),
        click.option("--master-bind-port", type=int, default=5557, show_default=True,
                     help="with --master: port to listen on (0: any free port, printed)"),
        click.option("--token", envvar="PAYSTAB_TOKEN", default=None,
                     help="with --master: workers must show it (env PAYSTAB_TOKEN)"),
    ]):
        fn = decorator(fn)
    return fn


def _console() -> Console:
    return Console(width=140) if not Console().is_terminal else Console()


@click.group("load", invoke_without_command=True)
@_target_options
@click.option("--profile", default="steady", show_default=True,
              help="load shape (see --list-profiles)")
@click.option("--rps", metavar="N", help="arrival rate, payments/s (default 50)")
@click.option("--duration", "-t", "--run-time", "duration", metavar="S",
              help="seconds, or 30s/2m (default: the profile's; --run-time: Locust's name)")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="shape parameter, repeatable (see --list-profiles)")
@click.option("--mix", "mix_path", type=click.Path(dir_okay=False),
              help="payment mix YAML (methods, markets, decline share)")
@click.option("--window", default="30", show_default=True, metavar="S",
              help="threshold window, seconds")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False),
              help="write one CSV line per checkout")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="write Locust's HTML report")
@click.option("--list-profiles", is_flag=True, help="list the load profiles and exit")
@click.option("--flow", "flow_path", type=click.Path(dir_okay=False),
              help="checkout flow YAML (steps, templates, classification; docs/load.md)")
@click.option("-f", "--locustfile", type=click.Path(dir_okay=False),
              help="your locustfile: its User classes, paced by paystab")
@click.option("-r", "--spawn-rate", type=float, metavar="N",
              help="users started per second while the pool fills (default: all at once); "
                   "arrivals begin once every user is started, so it paces the users' on_start, "
                   "not the arrival rate (that is --rps in the --profile's shape)")
@click.option("--headless", is_flag=True,
              help="no live view, as --no-live (paystab has no web UI)")
@_master_options
@_common_options
@click.pass_context
def load(ctx: click.Context, target: str | None, ready_file: str | None, profile: str,
         rps: str | None, duration: str | None, params: tuple[str, ...], mix_path: str | None,
         window: str, csv_path: str | None, html_path: str | None, list_profiles: bool,
         flow_path: str | None, locustfile: str | None, spawn_rate: float | None,
         headless: bool, master: bool, expect_workers: int | None, expect_workers_max_wait: str,
         master_bind_host: str, master_bind_port: int, token: str | None,
         users: int | None, processes: int, thresholds: tuple[str, ...], seed: int,
         json_dest: str | None, expected_peak: str | None, no_live: bool) -> None:
    """Run checkout load against a payment gateway at an open-model arrival rate.

    Thresholds are checked over the whole run and per window: exit 1 names the breach.
    With --master, the load comes from `paystab load worker` processes on other machines.
    """
    if ctx.invoked_subcommand is not None:
        return
    from paystab.loadtest.profiles import catalogue, parse_params
    from paystab.loadtest.render import profiles_table

    console = _console()
    if list_profiles:
        show(profiles_table(catalogue()))
        return
    from paystab.loadtest.mix import PaymentMix
    from paystab.loadtest.plan import build_plan
    from paystab.loadtest.sources import load_flow_json, load_locustfile
    from paystab.loadtest.target import check_reachable, resolve_target
    from paystab.loadtest.thresholds import parse_thresholds

    plan = build_plan(profile, _rate(rps, "--rps") or 50.0, _seconds(duration, "--duration"),
                      users=users, seed=seed, params=parse_params(list(params)),
                      mix=PaymentMix.load(mix_path) if mix_path else None,
                      flow=load_flow_json(flow_path, locustfile))
    parse_thresholds(list(thresholds))
    window_s = _seconds(window, "--window") or 30.0
    peak = _rate(expected_peak, "--expected-peak")
    _check_processes(processes, plan.users)
    if spawn_rate is not None and not spawn_rate > 0:
        raise InvalidInput(f"spawn rate must be > 0, got {spawn_rate:g}", source="--spawn-rate",
                           expected="users started per second, > 0 (or leave it out: all at "
                           "once)")
    _check_outputs(json_dest, ("--csv", csv_path), ("--html", html_path))
    _check_master(master, expect_workers, processes, plan.users, master_bind_host, token)
    wait_s = _seconds(expect_workers_max_wait, "--expect-workers-max-wait") or 60.0
    user_classes, target = load_locustfile(locustfile, target, ready_file)
    url = resolve_target(target, ready_file)
    check_reachable(url)

    from paystab.loadtest.records import write_csv
    from paystab.loadtest.render import result_view
    from paystab.loadtest.runner import run_load  # imports Locust (gevent-patches)

    with _graceful_stop() as stop:
        remote = None
        if master and expect_workers is not None:
            from paystab.loadtest.distributed import RemoteWorkers
            from paystab.loadtest.worker_admission import identify

            remote = RemoteWorkers(
                expect_workers, identify(plan.flow, locustfile), bind_host=master_bind_host,
                bind_port=master_bind_port, token=token, wait_s=wait_s, stop_event=stop,
                announce=lambda text: click.echo(f"paystab: {text}", err=True))
        result = run_load(url, plan=plan, processes=processes, thresholds=list(thresholds),
                          window_s=window_s, live=not (no_live or headless),
                          html_path=html_path, spawn_rate=spawn_rate,
                          preflight=False, expected_peak=peak, stop_event=stop,
                          user_classes=user_classes, remote=remote)
    if csv_path:
        write_csv(result.records, csv_path)
    if json_dest == "-":
        emit_json(result.to_json(), json_dest)  # stdout carries the JSON alone
    else:
        if json_dest:
            result.write_json(json_dest)
        show(result_view(result, plain=plain_output()))  # piped: lines, never wrapped
        if result.workers is not None:
            console.print(_workers_line(result.workers))
    if result.interrupted:
        raise Aborted("the load run was interrupted before it finished")
    if not result.passed:
        raise VerdictFailed(result.breach_message())
    if result.workers is not None and not result.workers["complete"]:
        raise Inconclusive(
            "thresholds held, but not on the whole planned load: " + _workers_line(result.workers),
            hint="the lost worker's share of arrivals after it was lost was never sent; "
                 "run again")


def _check_master(master: bool, expect_workers: int | None, processes: int, users: int,
                  bind_host: str, token: str | None) -> None:
    """The --master flags, before any traffic (exit 2); Locust is not imported yet."""
    from paystab.loadtest.worker_admission import check_bind

    if not master:
        if expect_workers is not None:
            raise InvalidInput("--expect-workers needs --master", source="--expect-workers",
                               expected="--master --expect-workers N")
        return
    if expect_workers is None or not 1 <= expect_workers <= 64:
        raise InvalidInput(f"--master needs --expect-workers N, got {expect_workers}",
                           source="--expect-workers", expected="an integer from 1 to 64")
    if processes != 1:
        raise InvalidInput("--master and --processes exclude each other", source="--processes",
                           expected="--processes 1 with --master (start more workers instead)")
    if users < expect_workers:
        raise InvalidInput(f"{users} users cannot be shared by {expect_workers} workers",
                           source="--users", expected=f"at least {expect_workers} users")
    check_bind(bind_host, token)


def _workers_line(workers: dict[str, Any]) -> str:
    counts = " + ".join(str(w.get("checkouts", 0)) for w in workers["workers"])
    text = f"workers: {workers['joined']} of {workers['expected']} joined ({counts} checkouts)"
    for lost in workers["lost"]:
        text += f"; {lost['id']} lost at {lost.get('lost_at_s', 0):.1f} s ({lost.get('reason')})"
    return text


@load.command("worker")
@click.option("--master-host", required=True, help="address of the `paystab load --master`")
@click.option("--master-port", type=int, default=5557, show_default=True)
@click.option("--flow", "flow_path", type=click.Path(dir_okay=False),
              help="the master's --flow FILE (its digest must match)")
@click.option("-f", "--locustfile", type=click.Path(dir_okay=False),
              help="the master's -f LOCUSTFILE (its digest must match)")
@click.option("--token", envvar="PAYSTAB_TOKEN", default=None,
              help="the master's token (env PAYSTAB_TOKEN)")
@click.option("--connect-timeout", default="60", show_default=True, metavar="S",
              help="exit 4 when no master answered by then")
def worker(master_host: str, master_port: int, flow_path: str | None, locustfile: str | None,
           token: str | None, connect_timeout: str) -> None:
    """Serve one load run of a `paystab load --master` from this machine.

    The plan (shape, rate share, seed, mix, flow) comes from the master; --flow/-f name
    what this worker agreed to run and must match the master's, or it is refused (exit 2).
    """
    from paystab.loadtest.sources import load_flow_json, load_locustfile

    flow = load_flow_json(flow_path, locustfile)
    timeout_s = _seconds(connect_timeout, "--connect-timeout") or 60.0
    user_classes, _ = load_locustfile(locustfile, None, None)

    from paystab.loadtest.distributed_worker import run_worker  # imports Locust
    from paystab.loadtest.worker_admission import identify

    run_worker(master_host, master_port, identify(flow, locustfile), user_classes, token=token,
               connect_timeout_s=timeout_s,
               say=lambda text: click.echo(f"paystab: {text}", err=True))


def _check_outputs(json_dest: str | None, *files: tuple[str, str | None]) -> None:
    """Every output path checked (folders made) before any load: exit 2 naming the flag."""
    check_json_dest(json_dest)
    for flag, path in files:
        if path:
            check_output_file(path, flag)


def _check_processes(processes: int, users: int | None) -> None:
    if not 1 <= processes <= 64:
        raise InvalidInput(f"{processes} processes", source="--processes",
                           expected="an integer from 1 to 64")
    if users is not None and users < processes:
        raise InvalidInput(f"{users} users cannot be shared by {processes} processes",
                           source="--users", expected=f"at least {processes} users")


@load.command("capacity")
@_target_options
@click.option("--start-rps", default="50", show_default=True, metavar="N",
              help="first step's rate")
@click.option("--max-rps", default="2000", show_default=True, metavar="N",
              help="never go above this rate")
@click.option("--step", default="5", show_default=True, metavar="S", help="measured seconds per step")
@click.option("--settle", default="2", show_default=True, metavar="S",
              help="unmeasured seconds after each rate change")
@click.option("--max-time", default="120", show_default=True, metavar="S",
              help="bound on the whole search")
@click.option("--tolerance", default=0.05, show_default=True, type=float,
              help="stop bisecting when the bracket is this narrow (share of the rate)")
@_common_options
def capacity(target: str | None, ready_file: str | None, start_rps: str, max_rps: str,
             step: str, settle: str, max_time: str, tolerance: float, users: int | None,
             processes: int, thresholds: tuple[str, ...], seed: int, json_dest: str | None,
             expected_peak: str | None, no_live: bool) -> None:
    """Find the highest arrival rate at which the thresholds hold (ramp, then bisect).

    Default thresholds: failure_rate<0.005, p(99)<500, dropped_rate<0.01. With
    --expected-peak, exit 1 when the capacity is below the peak.
    """
    from paystab.loadtest.capacity_result import DEFAULT_THRESHOLDS, validate_search
    from paystab.loadtest.render import capacity_view
    from paystab.loadtest.target import check_reachable, resolve_target
    from paystab.loadtest.thresholds import parse_thresholds

    chosen = list(thresholds) or list(DEFAULT_THRESHOLDS)
    parse_thresholds(chosen)
    numbers = {
        "start_rps": _rate(start_rps, "--start-rps"), "max_rps": _rate(max_rps, "--max-rps"),
        "step_s": _seconds(step, "--step"), "settle_s": _seconds(settle, "--settle", True),
        "max_time_s": _seconds(max_time, "--max-time"),
    }
    defaults = {"start_rps": 50.0, "max_rps": 2000.0, "step_s": 5.0, "settle_s": 2.0,
                "max_time_s": 120.0}
    checked = {k: (defaults[k] if v is None else v) for k, v in numbers.items()}
    validate_search(tolerance=tolerance, growth=1.5, **checked)
    peak = _rate(expected_peak, "--expected-peak")
    _check_processes(processes, users)
    if users is not None and users < 1:
        raise InvalidInput(f"users must be >= 1, got {users}", source="--users",
                           expected="a positive integer")
    _check_outputs(json_dest)
    url = resolve_target(target, ready_file)
    check_reachable(url)

    from paystab.loadtest.capacity import find_capacity  # imports Locust

    with _graceful_stop() as stop:
        result = find_capacity(
            url, thresholds=chosen, tolerance=tolerance, expected_peak=peak, seed=seed,
            users=users, processes=processes, live=not no_live, preflight=False,
            stop_event=stop, start_rps=checked["start_rps"], max_rps=checked["max_rps"],
            step_s=checked["step_s"], settle_s=checked["settle_s"],
            max_time_s=checked["max_time_s"])
    if json_dest:
        emit_json(result.to_json(), json_dest)
    if json_dest != "-":
        show(capacity_view(result))  # piped: key=value lines
    if result.interrupted:
        raise Aborted("the capacity search was interrupted")
    if not result.passed:
        raise VerdictFailed(
            f"capacity {result.capacity_rps:.0f}/s is below the expected peak "
            f"{result.expected_peak:g}/s (headroom ×{result.headroom:.2f})")


def register(group: click.Group) -> None:
    group.add_command(load)
