"""Network faults on a Toxiproxy-API server: toxics and "down" on a proxy.

Drives any server that speaks the Toxiproxy v2 HTTP API — paystab's own
``paystab chaos proxy`` or a real Toxiproxy — with the documented endpoints only:
``GET /proxies``, ``POST /proxies/{p}`` (``{"enabled": false}`` = down),
``POST /proxies/{p}/toxics`` and ``DELETE /proxies/{p}/toxics/{t}``. Every toxic is named
``paystab-<uid>`` so ``clear`` removes exactly the one it added, from any process.
Target: a proxy name or the ``host:port`` of its upstream, optionally ``@API_URL``
(default ``$TOXIPROXY_URL`` or ``http://127.0.0.1:8474``); ``$PAYSTAB_PROXY_TOKEN``, when
set, is sent as the bearer token (``paystab chaos proxy --token``). The clients under test must
already talk to the proxy's listen address; a fault never rewires traffic by itself.

Blast radius: the API URL's host is resolved once and every call goes to that IP. What a
fault touches is what *that* API answers: the proxy's listen and upstream addresses
(resolved to IPs), a provider of the context whose address is the upstream, and
``proxy:NAME`` only when the API contacted is the context's own (``$TOXIPROXY_URL`` or the
stack's) — a ``NAME@URL`` on another server is allowed by its addresses, not its name.
"""

from __future__ import annotations

import os
import re
import time
import urllib.parse
from typing import Any, ClassVar

from paystab import httpclient as http
from paystab.chaos.address import address_of_url, pin_url, resolve_all, split_hostport
from paystab.chaos.base import Fault, FaultContext, FaultSpec, Resource, register, target_error
from paystab.chaos.params import Param, choice, duration, integer, ratio
from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.net import is_wildcard_host

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
STREAMS = ("downstream", "upstream")


def split_target(target: str) -> tuple[str, str | None]:
    what, sep, url = target.partition("@")
    return what.strip(), (url.strip().rstrip("/") or None) if sep else None


def normalize_hostport(text: str) -> str:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host == "localhost" or is_wildcard_host(host):
        host = "127.0.0.1"
    return f"{host}:{int(port)}"


def _proxy_token() -> str | None:
    """``paystab chaos proxy --token`` off loopback: the same ``$PAYSTAB_PROXY_TOKEN``.
    Read from the environment on every call, so it is never journaled."""
    return os.environ.get("PAYSTAB_PROXY_TOKEN") or None


def _addresses(text: str, listen: bool = False) -> list[str]:
    """The canonical addresses of ``HOST:PORT``; a wildcard listen host is every loopback
    client's way in, named as 127.0.0.1."""
    parts = split_hostport(text)
    if parts is None or not parts[1].isdigit():
        return []
    host = parts[0]
    if listen and is_wildcard_host(host):
        host = "127.0.0.1"
    return list(resolve_all(host or "127.0.0.1", int(parts[1])))


def hostport_of_url(url: str) -> str | None:
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname:
        return None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return normalize_hostport(f"{parsed.hostname}:{port}")


class ProxyFault(Fault):
    """Base: find the proxy on the API server; say what it fronts."""

    common_params: ClassVar[tuple[Param, ...]] = ()

    @classmethod
    def check_target(cls, target: str) -> str:
        what, url = split_target(target)
        if url is not None and not url.startswith(("http://", "https://")):
            raise target_error(target, f"{url!r} is not an http(s) URL", "PROXY@http://HOST:8474")
        if _HOSTPORT.match(what):
            return normalize_hostport(what)
        if _NAME.match(what):
            return f"proxy:{what}"
        raise target_error(target, f"cannot read {target!r} as a proxy",
                           "a proxy name or its upstream HOST:PORT, optionally @API_URL")

    @classmethod
    def resolve(cls, spec: FaultSpec, ctx: FaultContext) -> dict[str, Any]:
        what, url = split_target(spec.target)
        api = url or ctx.proxy_api_url.rstrip("/")
        pinned = pin_url(api, f"target {spec.name}")
        reply = http.request("GET", f"{api}/proxies", token=_proxy_token(), via=pinned.ip)
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise EnvironmentProblem(f"{api}/proxies answered {reply.status}",
                                     hint="is this a Toxiproxy API (paystab chaos proxy)?")
        proxies = {str(k): v for k, v in reply.body.items() if isinstance(v, dict)}
        found = proxies.get(what)
        if found is None and _HOSTPORT.match(what):
            wanted = normalize_hostport(what)
            matches = [p for p in proxies.values()
                       if _HOSTPORT.match(str(p.get("upstream", "")))
                       and normalize_hostport(str(p["upstream"])) == wanted]
            found = matches[0] if len(matches) == 1 else None
        if found is None:
            raise InvalidInput(
                f"no proxy '{what}' on {api}", source="target", field=spec.name,
                expected="one of " + (", ".join(sorted(proxies)) or "(none: create one first)"),
            )
        upstream = str(found.get("upstream", ""))
        own_api = url is None or address_of_url(ctx.proxy_api_url) == pinned.address
        aliases = [f"proxy:{found['name']}"] if own_api else []
        upstream_addresses = _addresses(upstream)
        aliases += upstream_addresses
        aliases += [f"provider:{name}" for name, address in ctx.providers.items()
                    if address.url and address_of_url(address.url) in upstream_addresses]
        aliases += _addresses(str(found.get("listen") or ""), listen=True)
        return {"api": api, "api_ip": pinned.ip, "proxy": str(found["name"]),
                "upstream": upstream, "listen": found.get("listen"),
                "enabled": bool(found.get("enabled", True)),
                "aliases": list(dict.fromkeys(aliases))}

    def touches(self) -> Resource:
        aliases = [str(a) for a in self.where.get("aliases", [])]
        return Resource(tuple(aliases) or (f"proxy:{self.where['proxy']}",))

    def _call(self, method: str, url: str, body: Any = None) -> http.Reply:
        return http.request(method, url, body, token=_proxy_token(),
                            via=self.where.get("api_ip"))

    def _proxy_url(self) -> str:
        return f"{self.where['api']}/proxies/{urllib.parse.quote(str(self.where['proxy']))}"


class ToxicFault(ProxyFault):
    """A Toxiproxy toxic named ``paystab-<uid>`` on one stream of one proxy."""

    toxic_type: ClassVar[str]
    stream_params: ClassVar[tuple[Param, ...]] = (
        choice("stream", "direction: downstream (to the client) or upstream", STREAMS,
               default="downstream"),
        ratio("toxicity", "share of connections the toxic applies to", default=1.0),
    )

    @classmethod
    def prepare(cls, spec: FaultSpec, ctx: FaultContext) -> ToxicFault:
        fault = super().prepare(spec, ctx)
        fault.where["toxic"] = f"paystab-{fault.uid}"
        return fault

    def attributes(self) -> dict[str, Any]:
        return {}

    def inject(self) -> None:
        body = {"name": self.where["toxic"], "type": self.toxic_type,
                "stream": self.spec.params.get("stream", "downstream"),
                "toxicity": self.spec.params.get("toxicity", 1.0),
                "attributes": self.attributes()}
        reply = self._call("POST", f"{self._proxy_url()}/toxics", body)
        if reply.status == 409:
            return  # already there: inject ran before (idempotent)
        if reply.status == 400:
            raise InvalidInput(f"the proxy refused the toxic: {reply.error_text()}",
                               source="params", field=self.spec.name)
        if reply.status not in (200, 201):
            raise EnvironmentProblem(
                f"{self._proxy_url()}/toxics answered {reply.status}: {reply.error_text()}")

    def clear(self) -> None:
        toxic = urllib.parse.quote(str(self.where["toxic"]))
        for attempt in range(3):  # a 5xx while links close is worth another try
            try:
                reply = self._call("DELETE", f"{self._proxy_url()}/toxics/{toxic}")
            except http.Unreachable as exc:
                if exc.refused:
                    return  # the proxy server is gone, and its in-memory toxics with it
                raise
            if reply.status < 500:
                break
            time.sleep(0.05 * (attempt + 1))
        if reply.status not in (200, 204, 404):
            raise EnvironmentProblem(f"clearing {self.uid}: the proxy answered {reply.status}: "
                                     f"{reply.error_text()}")


def _ms(seconds: Any) -> int:
    return round(float(seconds) * 1000.0)


@register
class ProxyLatency(ToxicFault):
    kind = "proxy.latency"
    toxic_type = "latency"
    summary = "delay data through the proxy (latency + jitter)"
    params_spec: ClassVar[tuple[Param, ...]] = (
        duration("latency", "delay added to the data", hi=3600.0),
        duration("jitter", "random +/- around the delay", default=0.0, hi=3600.0),
        *ToxicFault.stream_params,
    )

    def attributes(self) -> dict[str, Any]:
        return {"latency": _ms(self.spec.params["latency"]),
                "jitter": _ms(self.spec.params["jitter"])}


@register
class ProxyBandwidth(ToxicFault):
    kind = "proxy.bandwidth"
    toxic_type = "bandwidth"
    summary = "limit throughput to a rate in KB/s"
    params_spec: ClassVar[tuple[Param, ...]] = (
        integer("rate", "kilobytes per second", lo=0),
        *ToxicFault.stream_params,
    )

    def attributes(self) -> dict[str, Any]:
        return {"rate": int(self.spec.params["rate"])}


@register
class ProxySlowClose(ToxicFault):
    kind = "proxy.slow_close"
    toxic_type = "slow_close"
    summary = "delay the close of connections"
    params_spec: ClassVar[tuple[Param, ...]] = (
        duration("delay", "how long a close is held back", hi=3600.0),
        *ToxicFault.stream_params,
    )

    def attributes(self) -> dict[str, Any]:
        return {"delay": _ms(self.spec.params["delay"])}


@register
class ProxyTimeout(ToxicFault):
    kind = "proxy.timeout"
    toxic_type = "timeout"
    summary = "stop all data; close after a timeout (0s = never close)"
    params_spec: ClassVar[tuple[Param, ...]] = (
        duration("timeout", "close the connection after this long; 0s = never", hi=3600.0),
        *ToxicFault.stream_params,
    )

    def attributes(self) -> dict[str, Any]:
        return {"timeout": _ms(self.spec.params["timeout"])}


@register
class ProxyResetPeer(ToxicFault):
    kind = "proxy.reset_peer"
    toxic_type = "reset_peer"
    summary = "reset connections (TCP RST) after a timeout"
    params_spec: ClassVar[tuple[Param, ...]] = (
        duration("timeout", "reset after this long; 0s = at once", default=0.0, hi=3600.0),
        *ToxicFault.stream_params,
    )

    def attributes(self) -> dict[str, Any]:
        return {"timeout": _ms(self.spec.params["timeout"])}


@register
class ProxySlicer(ToxicFault):
    kind = "proxy.slicer"
    toxic_type = "slicer"
    summary = "cut data into small packets with a delay between them"
    params_spec: ClassVar[tuple[Param, ...]] = (
        integer("average_size", "mean packet size in bytes", lo=1),
        integer("size_variation", "+/- bytes around the mean", default=0, lo=0),
        duration("delay", "pause between packets", default=0.0, hi=60.0),
        *ToxicFault.stream_params,
    )

    def attributes(self) -> dict[str, Any]:
        return {"average_size": int(self.spec.params["average_size"]),
                "size_variation": int(self.spec.params["size_variation"]),
                "delay": round(float(self.spec.params["delay"]) * 1e6)}  # microseconds


@register
class ProxyLimitData(ToxicFault):
    kind = "proxy.limit_data"
    toxic_type = "limit_data"
    summary = "close each connection after this many bytes"
    params_spec: ClassVar[tuple[Param, ...]] = (
        integer("bytes", "bytes let through before the close", lo=0),
        *ToxicFault.stream_params,
    )

    def attributes(self) -> dict[str, Any]:
        return {"bytes": int(self.spec.params["bytes"])}


@register
class ProxyDown(ProxyFault):
    kind = "proxy.down"
    summary = "disable the proxy: close its listener and every live connection"

    def inject(self) -> None:
        reply = self._call("POST", self._proxy_url(), {"enabled": False})
        if reply.status not in (200, 201):
            raise EnvironmentProblem(
                f"{self._proxy_url()} answered {reply.status}: {reply.error_text()}")

    def clear(self) -> None:
        if not self.where.get("enabled", True):
            return  # it was down before we came: leave it as we found it
        try:
            reply = self._call("POST", self._proxy_url(), {"enabled": True})
        except http.Unreachable as exc:
            if exc.refused:
                return
            raise
        if reply.status not in (200, 201, 404):
            raise EnvironmentProblem(f"clearing {self.uid}: the proxy answered {reply.status}: "
                                     f"{reply.error_text()}")
