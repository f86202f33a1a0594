"""The HTTP under each checkout user: one keep-alive connection, no frills, fast.

Locust's FastHttpSession wraps geventhttpclient in a requests-like layer (cookie jar,
redirects, a response context manager) that costs about as much CPU as the HTTP itself.
A checkout needs none of it, so each user drives a geventhttpclient ``HTTPClient`` of its
own directly — measured at ~1.7× the checkouts per CPU-second (docs/load.md) — and the
checkout reports every attempt to Locust's request event exactly as FastHttpUser would,
so Locust's statistics and HTML report are unchanged. TLS is supported; like Locust's
default, certificates are not verified (staging stacks use self-signed ones).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.ssl
from geventhttpclient import HTTPClient
from geventhttpclient._parser import HTTPParseError

from paystab.loadtest.checkout import Reply


def _unverified_context(*_args: Any, **_kwargs: Any) -> Any:
    return gevent.ssl._create_unverified_context()


class DirectTransport:
    """``post`` over one connection to ``base_url`` (its path, if any, prefixes requests)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.prefix = urlsplit(base_url).path.rstrip("/")
        # insecure=True alone only skips the host name check; the unverified context is what
        # accepts a self-signed certificate (Locust's FastHttpSession does the same).
        self.client = HTTPClient.from_url(base_url, concurrency=1, insecure=True,
                                          ssl_context_factory=_unverified_context,
                                          connection_timeout=timeout_s,
                                          network_timeout=timeout_s)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        began = time.perf_counter()
        try:
            with self.client.request("POST", self.prefix + path, body=body,
                                     headers=headers) as resp:
                data = resp.read()
                status = int(resp.status_code)
                advised = resp.get("Retry-After")
        except (OSError, HTTPParseError, gevent.Timeout, ValueError) as exc:
            return Reply(0, b"", None, exc, (time.perf_counter() - began) * 1000.0)
        return Reply(status, bytes(data), advised if isinstance(advised, str) else None, None,
                     (time.perf_counter() - began) * 1000.0)

    def close(self) -> None:
        self.client.close()
