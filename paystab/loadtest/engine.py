"""The event-driven checkout engine: every user's connection, driven from one greenlet.

A Locust user is a greenlet, and a greenlet per request costs switches, a watcher per
wait and a trip through Locust's request event — more CPU than the HTTP itself. Here the
users of a process stay Locust users (spawned, counted, stopped by Locust), but each only
owns a :class:`Lane`: one keep-alive connection. One engine greenlet drives all lanes with
non-blocking sockets and an epoll of its own, which gevent's hub watches, so it runs beside
Locust's greenlets: a batch of ready connections is handled per wake-up, and no greenlet is
switched per request.

A lane is a pacer slot (``pacing.UserSlot``): the pacer hands it an arrival and the lane
sends at once. When a checkout ends the lane goes back to the pacer's idle pool and the
engine asks the pacer for arrivals due by now, so none waits for the pacer's next clock
tick. Each checkout keeps the checkout page's rules of ``checkout.py`` (same key on every
attempt, retries on 5xx/409/425/429/timeouts/broken connections, full-jitter backoff that
honours ``Retry-After``, a deadline); attempts are counted in Locust's statistics (batched,
``locust_stats.py``) and every checkout becomes one ``CheckoutRecord``.

A declarative checkout flow (``flow.py``, ``flow_run.py``) runs on the same lanes: the lane
keeps the flow's step and values, and an answer that moves the flow on sends the next step
on the same connection at once; polls wait on the engine's timers like backoffs.

Plain HTTP only (the reference stack, a staging gateway on a private network); for
``https://`` targets the users fall back to a geventhttpclient connection each
(``transport.py``), at a fraction of the rate.
"""

from __future__ import annotations

import _socket
import errno
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import gevent
from gevent import monkey
from gevent.socket import wait_read

from paystab.loadtest.checkout import AttemptFailed, backoff_s, judge, retry_after_s
from paystab.loadtest.flow_run import CompiledFlow, CompiledStep
from paystab.loadtest.http1 import MalformedResponse, Response, ResponseReader
from paystab.loadtest.locust_stats import StatsBatch
from paystab.loadtest.pacing import ArrivalPacer, UserSlot
from paystab.loadtest.records import CheckoutRecord

if TYPE_CHECKING:
    from paystab.loadtest.session import LoadSession

_select = monkey.get_original("select", ["epoll", "EPOLLIN", "EPOLLOUT", "EPOLLERR", "EPOLLHUP"])
_epoll, EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP = _select

IDLE, CONNECTING, WAITING, BACKOFF = 0, 1, 2, 3
TIMER_TICK_S = 0.01  # attempt timeouts and backoffs are checked at this granularity
MAX_WAIT_S = 0.05  # the engine looks at its timers and the pacer at least this often
RECV_BYTES = 65536


class Lane(UserSlot):
    """One user's connection and the checkout on it (if any)."""

    __slots__ = ("attempt", "checkout_deadline", "currency", "engine", "fd", "key", "lag_ms",
                 "method", "name", "out", "pacer", "polls", "reader", "request", "resent", "retired",
                 "retries", "reused", "sent_at", "sock", "started_wall", "state", "step", "t0",
                 "taken_seq", "token", "values")

    def __init__(self, engine: CheckoutEngine) -> None:
        super().__init__()
        self.engine = engine
        self.pacer: ArrivalPacer | None = None  # the pacer whose arrival the lane is serving
        self.sock: Any = None
        self.fd = -1
        self.reader = ResponseReader()
        self.state = IDLE
        self.retired = False
        self.taken_seq = -1
        self.method = ""
        self.currency = ""
        self.name = ""
        self.key = ""
        self.request = b""
        self.out = b""
        self.attempt = 0
        self.token = 0
        self.t0 = 0.0
        self.started_wall = 0.0
        self.lag_ms = 0.0
        self.sent_at = 0.0
        self.checkout_deadline = 0.0
        self.reused = False
        self.resent = False
        self.step: CompiledStep | None = None  # the flow step in progress (None: paystab's payment)
        self.values: dict[str, Any] = {}
        self.polls = 0
        self.retries = 0  # re-sent attempts over the whole checkout (polls are not retries)

    def wake(self) -> None:
        self.engine.start(self)


class CheckoutEngine:
    def __init__(self, session: LoadSession, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the engine speaks plain http://host[:port], not {base_url!r}")
        port = parts.port or 80
        family, _, _, _, address = _socket.getaddrinfo(parts.hostname, port, 0, _socket.SOCK_STREAM)[0]
        self.family, self.address = family, address
        self.host_header = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.session = session
        self.environment = session.environment
        self.lanes: list[Lane] = []
        self.by_fd: dict[int, Lane] = {}
        self.epoll = _epoll()
        self.timers: dict[int, list[tuple[Lane, int]]] = {}
        self._next_tick = int(time.monotonic() / TIMER_TICK_S)
        self.stats = StatsBatch(self.environment.stats)
        self._pacer: ArrivalPacer | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._head: bytes | None = None
        self._names: dict[str, str] = {}

    # -- lanes (called by the users' greenlets) -------------------------------------------
    def add_lane(self) -> Lane:
        lane = Lane(self)
        self.lanes.append(lane)
        if self._pacer is not None and self._pacer is self.session.pacer:
            lane.seq = -1
            self._pacer.idle.append(lane)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)
        return lane

    def retire(self, lane: Lane) -> None:
        """The user stopped. A checkout still on the lane is cut off and counted as such."""
        lane.retired = True
        if lane in self.lanes:
            self.lanes.remove(lane)
        pacer = self._pacer
        if lane.state == IDLE:
            if pacer is not None and lane in pacer.idle:
                pacer.idle.remove(lane)
            if lane.seq >= 0 and pacer is not None:  # handed over, never started
                pacer.abandon(lane.seq)
        else:
            self.session.interrupted_checkouts += 1
            if lane.pacer is not None:
                lane.pacer.done(lane.taken_seq, lane.lag_ms)
            lane.state = IDLE
        lane.token += 1
        self._close(lane)
        if not self.lanes:
            self.stats.flush()  # the run is over for this process: Locust's figures complete

    # -- a checkout ----------------------------------------------------------------------
    def start(self, lane: Lane) -> None:
        """The pacer handed ``lane`` an arrival: build the payment and send it."""
        session = self.session
        plan, factory = session.plan, session.factory
        assert plan is not None and factory is not None
        seq = lane.taken_seq = lane.seq
        lane.seq = -1
        lane.pacer = self._pacer
        now_wall = time.time()
        lane.started_wall = now_wall
        lane.lag_ms = max(now_wall - lane.scheduled_at, 0.0) * 1000.0
        lane.retries = 0
        lane.step = None
        if session.flow is not None:
            self._start_flow(lane, seq, session.flow, plan.retry.deadline_s)
            return
        payment = factory.payment(seq)
        lane.method, lane.currency = payment.method, payment.currency
        name = self._names.get(payment.method)
        if name is None:
            name = self._names[payment.method] = f"POST {plan.path} [{payment.method}]"
        lane.name = name
        lane.key = key = f"{plan.run_id}-{session.stream}-{seq}"
        head = self._head
        if head is None:
            head = self._head = (f"POST {self.prefix}{plan.path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
                                 "Content-Type: application/json\r\nIdempotency-Key: ").encode()
        body = payment.body
        lane.request = b"".join((head, key.encode(), b"\r\nContent-Length: ", str(len(body)).encode(),
                                 b"\r\n\r\n", body))
        lane.attempt = 0
        lane.t0 = now = time.monotonic()
        lane.checkout_deadline = now + plan.retry.deadline_s
        self._send_attempt(lane)

    def _start_flow(self, lane: Lane, seq: int, flow: CompiledFlow, deadline_s: float) -> None:
        """A declarative flow's first step (``flow_run.py`` builds and judges each step)."""
        plan = self.session.plan
        assert plan is not None
        lane.key = key = f"{plan.run_id}-{self.session.stream}-{seq}"
        lane.values, lane.method, lane.currency = flow.values(seq, key)
        lane.t0 = now = time.monotonic()
        lane.checkout_deadline = now + deadline_s
        self._begin_step(lane, flow.steps[0])
        self._send_attempt(lane)

    def _begin_step(self, lane: Lane, step: CompiledStep) -> None:
        lane.step = step
        lane.polls = 1
        lane.attempt = 0
        lane.name = step.name
        lane.request = step.request(lane.values, self.prefix, self.host_header)

    def _send_attempt(self, lane: Lane) -> None:
        plan = self.session.plan
        assert plan is not None
        lane.attempt += 1
        if lane.attempt > 1:
            lane.retries += 1
        lane.resent = False
        lane.token += 1
        lane.sent_at = now = time.monotonic()
        self._schedule(lane, now + plan.retry.attempt_timeout_s)
        self._transmit(lane)

    def _transmit(self, lane: Lane) -> None:
        """Send the lane's request on its connection, opening one if it has none."""
        if lane.sock is None:
            sock = _socket.socket(self.family, _socket.SOCK_STREAM)
            sock.setblocking(False)
            if self.family in (_socket.AF_INET, _socket.AF_INET6):
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            err = sock.connect_ex(self.address)
            lane.sock, lane.fd, lane.reused = sock, sock.fileno(), False
            self.by_fd[lane.fd] = lane
            lane.reader.reset()
            if err in (errno.EINPROGRESS, errno.EAGAIN):
                lane.state = CONNECTING
                self.epoll.register(lane.fd, EPOLLOUT)
                return
            self.epoll.register(lane.fd, EPOLLIN)
            if err != 0:
                self._attempt_failed(lane, ConnectionRefusedError(err, "connect failed"))
                return
        lane.state = WAITING
        self._write(lane, lane.request)

    def _write(self, lane: Lane, data: bytes) -> None:
        try:
            sent = lane.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._connection_lost(lane, exc)
            return
        lane.out = data[sent:]
        if lane.out:
            self.epoll.modify(lane.fd, EPOLLIN | EPOLLOUT)

    def _on_event(self, lane: Lane, events: int) -> None:
        if lane.state == CONNECTING:
            err = lane.sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
            if err:
                self._attempt_failed(lane, ConnectionRefusedError(err, "connect failed"))
                return
            self.epoll.modify(lane.fd, EPOLLIN)
            lane.state = WAITING
            self._write(lane, lane.request)
            return
        if events & EPOLLOUT and lane.out:
            out = lane.out
            self.epoll.modify(lane.fd, EPOLLIN)
            self._write(lane, out)
        if not events & (EPOLLIN | EPOLLERR | EPOLLHUP):
            return
        try:
            data = lane.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self._connection_lost(lane, exc)
            return
        if not data:
            self._connection_lost(lane, None)
            return
        if lane.state != WAITING:  # bytes nobody asked for: the connection is unusable
            self._close(lane)
            return
        try:
            response = lane.reader.feed(data)
        except MalformedResponse as exc:
            self._attempt_failed(lane, exc, status=0)
            return
        if response is not None:
            self._answered(lane, response)

    def _connection_lost(self, lane: Lane, error: BaseException | None) -> None:
        if lane.state != WAITING:
            self._close(lane)
            return
        response = lane.reader.close()
        if response is not None:
            self._close(lane)
            self._answered(lane, response)
            return
        if lane.reused and not lane.reader.started and not lane.resent:
            # A kept-alive connection the server had already closed: the request never
            # reached it. Send it again on a new connection, as any HTTP client does.
            self._close(lane)
            lane.resent = True
            self._transmit(lane)
            return
        self._attempt_failed(lane, error or ConnectionResetError("connection closed before the answer"))

    def _answered(self, lane: Lane, response: Response) -> None:
        now = time.monotonic()
        elapsed_ms = (now - lane.sent_at) * 1000.0
        lane.token += 1  # the attempt's timeout no longer applies
        lane.reused = True
        if not response.keep_alive:
            self._close(lane)
        step = lane.step
        verdict = (judge(response.status, response.body, None) if step is None
                   else step.judge(response.status, response.body, lane.values))
        self._report(lane.name, elapsed_ms, len(response.body),
                     verdict.status if verdict.outcome == "failed" else None)
        self._next(lane, verdict.outcome, verdict.status, verdict.code, verdict.retryable,
                   response.status, response.retry_after, now)

    def _attempt_failed(self, lane: Lane, error: BaseException, status: int = 0) -> None:
        now = time.monotonic()
        elapsed_ms = (now - lane.sent_at) * 1000.0
        lane.token += 1
        self._close(lane)
        verdict = judge(0, b"", error if not isinstance(error, MalformedResponse) else None)
        label = "malformed" if isinstance(error, MalformedResponse) else verdict.status
        self._report(lane.name, elapsed_ms, 0, label)
        self._next(lane, "failed", label, "", True, status, None, now)

    def _next(self, lane: Lane, outcome: str, status: str, code: str, retryable: bool,
              http_status: int, retry_after: str | None, now: float) -> None:
        """After an attempt: retry (same key) after a backoff, or end the checkout."""
        plan = self.session.plan
        assert plan is not None
        policy = plan.retry
        done = not retryable or lane.attempt >= policy.max_attempts
        if not done:
            advised = retry_after_s(retry_after)
            if advised is not None and advised > policy.max_retry_after_s:
                done = True  # the target asks for longer than a customer would wait
            else:
                wait = backoff_s(policy, lane.attempt, advised)
                if now + wait >= lane.checkout_deadline:
                    done = True
                else:
                    lane.state = BACKOFF
                    lane.token += 1
                    self._schedule(lane, now + wait)
                    return
        step = lane.step
        if step is not None:
            if (outcome in step.poll_while and lane.polls < step.poll_max
                    and now + step.poll_interval_s < lane.checkout_deadline):
                lane.polls += 1  # ask the same step again after its interval
                lane.attempt = 0
                lane.request = step.request(lane.values, self.prefix, self.host_header)
                lane.state = BACKOFF
                lane.token += 1
                self._schedule(lane, now + step.poll_interval_s)
                return
            if outcome == "continue":
                flow = self.session.flow
                if flow is not None and not step.last:
                    self._begin_step(lane, flow.steps[step.index + 1])
                    self._send_attempt(lane)
                    return
                outcome, status = "failed", "no_final_answer"
        session = self.session
        session.record(CheckoutRecord(
            lane.started_wall, lane.method, lane.currency, outcome, status, code,
            (now - lane.t0) * 1000.0, lane.retries + 1, http_status, lane.lag_ms,
            session.stream, lane.taken_seq))
        lane.state = IDLE
        lane.seq = -1
        if lane.pacer is not None:
            lane.pacer.done(lane.taken_seq, lane.lag_ms)
        pacer = self._pacer
        if pacer is not None and not lane.retired:
            pacer.idle.append(lane)

    def _report(self, name: str, ms: float, length: int, failure: str | None) -> None:
        events: Any = self.environment.events.request
        if len(events._handlers) > 1:  # someone besides Locust's stats listens: per-request events
            events.fire(request_type="POST", name=name, response_time=ms, response_length=length,
                        exception=AttemptFailed(failure) if failure else None, context={},
                        start_time=time.time() - ms / 1000.0, url=name)
            return
        self.stats.add(name, ms, length, time.time())
        if failure is not None:
            self.stats.error(name, AttemptFailed(failure))

    # -- plumbing ------------------------------------------------------------------------
    def _close(self, lane: Lane) -> None:
        sock = lane.sock
        if sock is None:
            return
        self.by_fd.pop(lane.fd, None)
        try:
            self.epoll.unregister(lane.fd)
        except (OSError, ValueError):
            pass
        sock.close()
        lane.sock, lane.fd, lane.out = None, -1, b""
        lane.reader.reset()

    def _schedule(self, lane: Lane, when: float) -> None:
        tick = int(when / TIMER_TICK_S) + 1
        bucket = self.timers.get(tick)
        if bucket is None:
            bucket = self.timers[tick] = []
        bucket.append((lane, lane.token))

    def _expire(self, now: float) -> None:
        current = int(now / TIMER_TICK_S)
        while self._next_tick <= current:
            due = self.timers.pop(self._next_tick, None)
            self._next_tick += 1
            if not due:
                continue
            for lane, token in due:
                if lane.token != token or lane.retired:
                    continue  # the attempt ended, or the lane moved on
                if lane.state == BACKOFF:
                    self._send_attempt(lane)
                elif lane.state in (CONNECTING, WAITING):
                    self._attempt_failed(lane, TimeoutError("no answer within the attempt timeout"))

    def _adopt_pacer(self) -> None:
        pacer = self.session.pacer
        if pacer is self._pacer:
            return
        self._pacer = pacer
        if pacer is not None:
            for lane in self.lanes:
                if lane.state == IDLE and lane not in pacer.idle:
                    lane.seq = -1
                    pacer.idle.append(lane)

    def _run(self) -> None:
        epoll, by_fd = self.epoll, self.by_fd
        epoll_fd = epoll.fileno()
        try:
            while self.lanes:
                self._adopt_pacer()
                events = epoll.poll(0, 1024)
                for fd, mask in events:
                    lane = by_fd.get(fd)
                    if lane is not None:
                        self._on_event(lane, mask)
                now = time.monotonic()
                if now >= self._next_tick * TIMER_TICK_S:
                    self._expire(now)
                pacer = self._pacer
                wait = pacer.tick() if pacer is not None and pacer.running else None
                self.stats.maybe_flush(now)
                if events:
                    gevent.sleep(0)  # let Locust's greenlets (and the pacer) run
                    continue
                try:
                    wait_read(epoll_fd, timeout=min(wait or MAX_WAIT_S, MAX_WAIT_S, TIMER_TICK_S))
                except TimeoutError:  # gevent's socket.timeout is TimeoutError
                    pass
        finally:
            self.stats.flush()
            for lane in list(by_fd.values()):
                self._close(lane)
