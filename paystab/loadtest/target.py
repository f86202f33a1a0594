"""Where the load goes, checked before any load is counted.

``--target URL`` or ``--ready-file F`` (the ``paystab up`` contract) name the gateway. A
target that cannot be reached — connection refused, no route, DNS failure, timeout — or that
answers its health check with a 5xx is an environment problem (exit 4) reported with the URL
and the error, before a single payment is sent; a target that only answers slowly is given
a few more seconds. A target without ``/healthz`` (a user's own
gateway answering 404) is fine: it answered.
"""

from __future__ import annotations

import math
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.stack.endpoints import StackEndpoints

QUIET_PROBE_S = 0.1  # /healthz answering faster than this, three times running, is "quiet"


def resolve_target(target: str | None, ready_file: str | Path | None) -> str:
    """The gateway base URL from ``--target`` or a ready file (exactly one is needed)."""
    if target and ready_file:
        raise InvalidInput("give --target or --ready-file, not both", source="--target",
                           expected="one of them")
    if ready_file:
        target = StackEndpoints.read(ready_file).gateway_url
    if not target:
        raise InvalidInput("no target", source="--target",
                           expected="--target http://HOST:PORT or --ready-file FILE "
                                    "(written by `paystab up --ready-file`)")
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"cannot use {target!r} as a target", source="--target",
                           expected="an http:// or https:// URL with a host")
    try:
        _ = parts.port
    except ValueError:
        raise InvalidInput(f"bad port in {target!r}", source="--target",
                           expected="a port between 1 and 65535") from None
    return target.rstrip("/")


# Like the load itself (transport.py), the check does not verify certificates: staging
# stacks use self-signed ones, and what is asked here is "does it answer", not "is it you".
# Built without the CA store: it verifies nothing, and loading the store would cost every
# `paystab load` some 50 ms of start-up for an http:// target.
_UNVERIFIED = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_UNVERIFIED.check_hostname = False
_UNVERIFIED.verify_mode = ssl.CERT_NONE


def check_reachable(target_url: str, timeout_s: float = 5.0, patience_s: float = 15.0) -> None:
    """GET /healthz; unreachable, refusing or 5xx → EnvironmentProblem (exit 4).

    A refused connection fails at once; a target that is merely slow to answer (still busy
    from a previous run) is asked again for up to ``patience_s``.
    """
    url = f"{target_url}/healthz"
    deadline = time.monotonic() + patience_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s, context=_UNVERIFIED) as resp:
                resp.read(1024)
            return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return  # it answered: no /healthz is fine
            problem = f"is refusing: GET /healthz answered {exc.code}"
            hint = "is the stack healthy? `paystab up` writes its ready file once it is"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = f"is unreachable: {reason}"
            hint = "start the stack (`paystab up --ready-file F`) or check --target"
            slow = isinstance(reason, TimeoutError) or "timed out" in str(reason)
            if slow and time.monotonic() + timeout_s < deadline:
                continue
        raise EnvironmentProblem(f"target {target_url} {problem}", hint=hint)


def healthz_s(target_url: str) -> float:
    """Seconds ``/healthz`` takes to answer (any HTTP answer); inf when it does not."""
    began = time.monotonic()
    try:
        with urllib.request.urlopen(f"{target_url}/healthz", timeout=2.0) as resp:
            resp.read(256)
    except urllib.error.HTTPError:
        pass
    except (urllib.error.URLError, OSError):
        return math.inf
    return time.monotonic() - began


def wait_quiet(target_url: str, timeout_s: float = 60.0, every_s: float = 0.2) -> bool:
    """Until ``/healthz`` answers fast (under ``QUIET_PROBE_S``) three times running: a
    previous overload has drained. False if it did not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    quick = 0
    while quick < 3:
        if time.monotonic() >= deadline:
            return False
        quick = quick + 1 if healthz_s(target_url) < QUIET_PROBE_S else 0
        time.sleep(every_s)
    return True
