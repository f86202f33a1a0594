"""Load from several machines, on one: ``paystab load --master`` and its workers on 127.0.0.1.

Real processes (a master and ``paystab load worker``s, or stock ``locust --worker`` on
paystab's locustfile) over Locust's ZeroMQ protocol, against the payment-API double of
``conftest_load``. Pinned here: the merged counts are the sum of what each worker sent (and
what the target saw); thresholds are judged on the merged records — a p95 that the average
of the workers' p95s would pass fails the run; too few workers is exit 4 naming how many
came; a worker running another flow is refused (exit 2), one without the token too (exit 4);
a flow travels in the plan; a worker lost mid-run is listed and the run marked incomplete,
and Ctrl-C on the master stops the workers (with a user's locustfile on both sides). Fast,
without load: the admission rules, the flags, and the gated master against raw clients.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner

from paystab import stats_math
from paystab.cli import cli
from paystab.exceptions import InvalidInput
from paystab.loadtest.worker_admission import (
    REFUSED_FLOW,
    REFUSED_FULL,
    REFUSED_TOKEN,
    Admission,
    hello,
    identify,
)
from tests.conftest_load import REPO, FakeGateway, ServerThread, run_script, wait_for

SLOW_STREAM, SLOW_EVERY, SLOW_S = "1", 8, 0.4  # one worker's every 8th payment takes 400 ms
FLOW = """flow:
  name: {name}
  steps:
    - name: pay
      path: /v1/payments
      headers: {{Idempotency-Key: "{{{{ key }}}}"}}
      json: {{amount: "{{{{ amount }}}}", currency: "{{{{ currency }}}}", method: card}}
"""

LOCUSTFILE = """\
import uuid

from locust import FastHttpUser, task


class Shopper(FastHttpUser):
    @task
    def buy(self):
        self.client.post("/v1/payments", json={"method": "card", "currency": "JPY", "amount": 100},
                         headers={"Idempotency-Key": uuid.uuid4().hex})
"""


class StreamSlowGateway(FakeGateway):
    """The double, slow for part of one worker's stream (keys are run-stream-seq)."""

    async def _pay(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        parts = key.rsplit("-", 2)
        if len(parts) == 3 and parts[1] == SLOW_STREAM and int(parts[2]) % SLOW_EVERY == 0:
            import asyncio
            await asyncio.sleep(SLOW_S)
        return await super()._pay(request)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    thread = ServerThread(StreamSlowGateway())
    yield thread.start()
    thread.stop()


class Proc:
    """A child process whose stderr lines are collected as they come."""

    def __init__(self, *args: str, token: str | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
        env.pop("PAYSTAB_TOKEN", None)
        if token is not None:
            env["PAYSTAB_TOKEN"] = token  # the environment, as docs/security.md advises
        self.popen = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, text=True,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.out = ""
        self._readers = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_err(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.append(line)

    def _read_out(self) -> None:
        assert self.popen.stdout is not None
        self.out = self.popen.stdout.read()

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def wait_line(self, pattern: str, timeout_s: float = 60.0) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for line in list(self.lines) if (m := re.search(pattern, line))]
            return bool(found) or self.popen.poll() is not None

        wait_for(seen, timeout_s, f"{pattern!r} on stderr")
        assert found, f"exited {self.popen.returncode} without {pattern!r}:\n{self.err}"
        return found[0]

    def finish(self, timeout_s: float = 90.0) -> int:
        try:
            code = self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout_s:g} s:\n{self.err}") from None
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.kill()


def master(procs: list[Proc], gateway: FakeGateway, *args: str,
           token: str | None = None) -> tuple[Proc, str]:
    proc = Proc("-m", "paystab", "load", "--target", gateway.url, "--no-live", "--master",
                "--master-bind-port", "0", *args, token=token)
    procs.append(proc)
    return proc, proc.wait_line(r"listening on 127\.0\.0\.1:(\d+)").group(1)


def worker(procs: list[Proc], port: str, *args: str, token: str | None = None) -> Proc:
    proc = Proc("-m", "paystab", "load", "worker", "--master-host", "127.0.0.1",
                "--master-port", port, "--connect-timeout", "60", *args, token=token)
    procs.append(proc)
    return proc


def stock_worker(procs: list[Proc], port: str) -> Proc:
    proc = Proc("-m", "locust", "-f", "paystab/loadtest/locustfile.py", "--worker",
                "--master-host", "127.0.0.1", "--master-port", port, "--loglevel", "WARNING")
    procs.append(proc)
    return proc


@pytest.mark.slow
def test_two_workers_merge_into_one_stream_judged_as_one(gateway: FakeGateway, tmp_path: Path,
                                                         procs: list[Proc]) -> None:
    """A paystab worker and a stock ``locust --worker`` share 100/s for 3 s."""
    gateway.seen.clear()
    out, rows = tmp_path / "run.json", tmp_path / "run.csv"
    boss, port = master(procs, gateway, "--expect-workers", "2", "--rps", "100", "--duration",
                        "3", "--seed", "3", "--window", "3", "--threshold", "p(95)<300",
                        "--json", str(out), "--csv", str(rows))
    ours, stock = worker(procs, port), stock_worker(procs, port)
    assert boss.finish() == 1, boss.err  # the merged p95 breaches
    assert ours.finish(30) == 0, ours.err
    assert stock.finish(30) == 0, stock.err

    data = json.loads(out.read_text())
    summary, workers = data["summary"], data["workers"]
    assert data["processes"] == 2
    assert workers["expected"] == workers["joined"] == 2 and workers["complete"] is True
    assert workers["lost"] == [] and workers["flow"]["kind"] == "payment"
    # every arrival once, shared evenly; the merged counts are the sum of the workers'
    keys = gateway.idempotency_keys()
    per_stream = Counter(k.rsplit("-", 2)[1] for k in keys)
    assert per_stream == {"0": 150, "1": 150}
    assert summary["requests"] == sum(per_stream.values()) == 300 and summary["dropped"] == 0
    assert summary["attempts"] == len(gateway.seen)
    issued = re.search(r"(\d+) arrivals issued", ours.err)
    assert issued is not None and int(issued.group(1)) == 150, ours.err
    seats = workers["workers"]
    assert sorted(w["checkouts"] for w in seats) == [150, 150]
    assert sum(w["checkouts"] for w in seats) == summary["requests"]
    assert sum(w["issued"] for w in seats) == data["generator"]["issued"] == 300
    # judged on the merged records: the average of per-worker p95s passes, the merge does not
    latencies: dict[str, list[float]] = defaultdict(list)
    with rows.open() as fh:
        for row in csv.DictReader(fh):
            latencies[row["stream"]].append(float(row["latency_ms"]))
    assert sorted(latencies) == ["0", "1"] and sum(map(len, latencies.values())) == 300
    p95s = [stats_math.percentile(sorted(v), 95) or 0.0 for v in latencies.values()]
    assert sum(p95s) / 2 < 300 <= summary["p95_ms"], (p95s, summary)
    [threshold] = data["thresholds"]
    assert threshold["ok"] is False and threshold["observed"] == summary["p95_ms"]
    assert "p(95)<300: BREACHED" in boss.err


@pytest.mark.slow
def test_too_few_workers_is_exit_4_and_another_flow_or_no_token_is_refused(
        gateway: FakeGateway, tmp_path: Path, procs: list[Proc]) -> None:
    ours, theirs = tmp_path / "ours.yaml", tmp_path / "theirs.yaml"
    ours.write_text(FLOW.format(name="ours"))
    theirs.write_text(FLOW.format(name="theirs"))
    secret = "s3cret-for-this-test"
    # The workers start first (ZeroMQ connects once the master listens), so the master's
    # short wait measures admission, not how long a busy host takes to start Python.
    port = str(free_port())
    good = worker(procs, port, "--flow", str(ours), token=secret)
    other = worker(procs, port, "--flow", str(theirs), token=secret)
    tokenless = worker(procs, port, "--flow", str(ours))
    for proc in (good, other, tokenless):
        proc.wait_line(r"connecting to the load master")
    boss = Proc("-m", "paystab", "load", "--target", gateway.url, "--no-live", "--master",
                "--master-bind-port", port, "--flow", str(ours), "--expect-workers", "2",
                "--expect-workers-max-wait", "5", "--rps", "10", "--duration", "1",
                token=secret)
    procs.append(boss)
    assert other.finish(60) == 2, other.err
    assert "refused this worker" in other.err and "sha256" in other.err
    assert tokenless.finish(60) == 4, tokenless.err
    assert "token missing or wrong" in tokenless.err
    assert boss.finish(60) == 4, boss.err
    assert "only 1 of 2 load workers joined within 5 s" in boss.err
    assert "theirs" in boss.err  # the refusal is named, with the other flow's label
    assert good.wait_line(r"joined the load master") and good.finish(30) == 4
    assert "ended without starting a run" in good.err
    assert secret not in boss.err + good.err + tokenless.err


def test_admission_rules() -> None:
    payment, flow = identify(None, None), identify({"name": "a", "steps": [1]}, None)
    assert identify({"steps": [1], "name": "a"}, None) == flow  # canonical JSON
    assert len({payment.digest, flow.digest, identify({"name": "b"}, None).digest}) == 3
    admission = Admission(flow, expected=1, token="t0ken")

    def refusal(client_id: str, data: dict[str, object]) -> str:
        verdict = admission.judge(client_id, data)
        return "" if verdict is None else verdict[0]

    ok = hello(flow, "box_1", "t0ken")
    assert "t0ken" not in json.dumps(ok)  # an HMAC of the worker's id, not the token
    assert refusal("box_2", ok) == REFUSED_TOKEN  # a proof made for another worker
    assert refusal("box_1", hello(flow, "box_1", None)) == REFUSED_TOKEN
    assert refusal("box_1", {**ok, "protocol": 99}) == REFUSED_FLOW
    verdict = admission.judge("box_1", hello(payment, "box_1", "t0ken"))
    assert verdict is not None and verdict[0] == REFUSED_FLOW
    assert "paystab's own payment" in verdict[1] and flow.digest[:12] in verdict[1]
    assert refusal("box_1", ok) == ""
    admission.open = False
    assert refusal("box_1", ok) == REFUSED_FULL


GATE = r"""
import time
import gevent
from locust import __version__
from locust.env import Environment
from locust.rpc import Message, rpc
from paystab.loadtest.distributed import RemoteWorkers
from paystab.loadtest.worker_admission import MSG_HELLO, hello, identify

flow = identify({"name": "ours", "steps": []}, None)
remote = RemoteWorkers(1, flow, bind_port=0, token="t0ken", wait_s=10)
env = Environment(user_classes=[])
runner = remote.create_runner(env)
batches = []
runner.register_message("paystab_batch", lambda environment, msg, **kw: batches.append(msg.node_id))

def client(name):
    c = rpc.Client("127.0.0.1", remote.port, name)
    return c

def ask(c, name, kind, data):
    c.send(Message(kind, data, name))
    with gevent.Timeout(10):
        return c.recv()

rogue = client("rogue_1")
assert ask(rogue, "rogue_1", "client_ready", __version__).type == "ack"
rogue.send(Message("paystab_batch", {"rows": []}, "rogue_1"))
refused = ask(rogue, "rogue_1", MSG_HELLO, hello(flow, "rogue_1", "wrong"))
assert refused.type == "paystab_refused" and refused.data["code"] == "token", refused.data
spoof = client("spoof_1")  # speaks for another worker id
assert ask(spoof, "spoof_1", "client_ready", __version__).type == "ack"
spoof.send(Message(MSG_HELLO, hello(flow, "good_1", "t0ken"), "good_1"))
good = client("good_1")
assert ask(good, "good_1", "client_ready", __version__).type == "ack"
welcome = ask(good, "good_1", MSG_HELLO, hello(flow, "good_1", "t0ken"))
while welcome.type != "paystab_welcome":  # Locust's own ack of the admitted worker comes too
    with gevent.Timeout(10):
        welcome = good.recv()
late = client("late_1")
assert ask(late, "late_1", "client_ready", __version__).type == "ack"
full = ask(late, "late_1", MSG_HELLO, hello(flow, "late_1", "t0ken"))
assert full.type == "paystab_refused" and full.data["code"] == "full", full.data
good.send(Message("paystab_batch", {"rows": []}, "good_1"))
deadline = time.time() + 10
while not batches and time.time() < deadline:
    gevent.sleep(0.05)
assert batches == ["good_1"], batches  # the rogue's batch was dropped, the admitted one counted
assert list(runner.clients) == ["good_1"], list(runner.clients)
assert [r["reason"][:14] for r in remote.admission.refused] == ["token missing ", "the master exp"]
runner.quit()
print("gate ok")
"""


def test_the_master_admits_only_workers_whose_hello_checks_out() -> None:
    """Raw Locust clients against the gated master (in a subprocess: Locust patches the
    process): a wrong token, a hello speaking for another worker and a late worker are
    refused or dropped, and a batch from a worker that was not admitted never counts."""
    proc = run_script(GATE, timeout=60)
    assert proc.returncode == 0 and "gate ok" in proc.stdout, proc.stdout + proc.stderr


def test_master_flags_are_checked_before_any_traffic() -> None:
    """In-process: these checks come before Locust is imported (and before any traffic)."""
    for args, where in [
        (["--expect-workers", "2"], "--expect-workers needs --master"),
        (["--master"], "--master needs --expect-workers"),
        (["--master", "--expect-workers", "2", "--processes", "2"], "exclude each other"),
        (["--master", "--expect-workers", "2", "--master-bind-host", "0.0.0.0"],
         "without a token"),
    ]:
        result = CliRunner().invoke(cli, ["load", "--target", "http://127.0.0.1:9", "--no-live",
                                          *args], env={"PAYSTAB_TOKEN": ""})
        assert isinstance(result.exception, InvalidInput), (args, result.output)
        assert result.exception.exit_code == 2 and where in result.exception.message


@pytest.mark.slow
def test_a_lost_worker_is_reported_and_ctrl_c_stops_the_others(
        gateway: FakeGateway, tmp_path: Path, procs: list[Proc]) -> None:
    """Also the user's-locustfile kind: master and workers run ``-f`` on the same file."""
    gateway.seen.clear()
    out, users = tmp_path / "run.json", tmp_path / "shopper.py"
    users.write_text(LOCUSTFILE)
    boss, port = master(procs, gateway, "-f", str(users), "--expect-workers", "2", "--rps",
                        "40", "--duration", "30", "--json", str(out))
    first, second = worker(procs, port, "-f", str(users)), worker(procs, port, "-f", str(users))
    boss.wait_line(r"worker \S+ joined")
    wait_for(lambda: len(gateway.seen) > 40, 30, "load from both workers")
    second.kill()
    boss.wait_line(r"worker \S+ lost \(", 20)
    boss.popen.send_signal(signal.SIGINT)
    assert boss.finish(60) == 3, boss.err
    assert first.finish(30) == 0, first.err  # told to quit by the master
    data = json.loads(out.read_text())
    workers = data["workers"]
    assert data["interrupted"] is True and workers["complete"] is False
    assert workers["flow"]["kind"] == "locustfile" and data["summary"]["failed"] == 0
    assert len(workers["lost"]) == 1, (workers, boss.err)
    [lost] = workers["lost"]
    assert lost["reason"] in ("quit", "no heartbeat for 3 s") and lost["lost_at_s"] > 0
    # the killed worker's records after its last batch never reached the master
    assert 40 < data["summary"]["requests"] <= len(gateway.idempotency_keys())


@pytest.mark.slow
def test_a_flow_travels_in_the_plan_and_runs_on_every_worker(
        gateway: FakeGateway, tmp_path: Path, procs: list[Proc]) -> None:
    gateway.seen.clear()
    out, flow = tmp_path / "run.json", tmp_path / "flow.yaml"
    flow.write_text(FLOW.format(name="pay-only"))
    boss, port = master(procs, gateway, "--flow", str(flow), "--expect-workers", "2", "--rps",
                        "50", "--duration", "2", "--json", str(out), "--threshold",
                        "failure_rate<0.01")
    workers = [worker(procs, port, "--flow", str(flow)) for _ in range(2)]
    assert boss.finish() == 0, boss.err
    assert all(w.finish(30) == 0 for w in workers), [w.err for w in workers]
    data = json.loads(out.read_text())
    assert data["workers"]["complete"] is True and data["workers"]["flow"]["kind"] == "flow"
    keys = gateway.idempotency_keys()  # the flow sends {{ key }}: run-stream-seq
    assert Counter(k.rsplit("-", 2)[1] for k in keys) == {"0": 50, "1": 50}
    assert data["summary"]["requests"] == 100 == len(keys) and data["summary"]["failed"] == 0
