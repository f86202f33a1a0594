"""The one door for watch's outbound HTTP actions: timeout, no environment proxies, errors
as :class:`ActuatorError` carrying the status and the start of the answer."""

from __future__ import annotations

import urllib.error
import urllib.request

from paystab.watch.actuators import ActuatorError

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def send(method: str, url: str, headers: dict[str, str], body: bytes | None,
         timeout_s: float) -> str:
    """Do the request; a 2xx answers ``"HTTP <code>"``, anything else raises."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            response.read(4096)
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", errors="replace")
        raise ActuatorError(f"{method} {url} answered HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ActuatorError(f"{method} {url} failed: {exc}") from None
