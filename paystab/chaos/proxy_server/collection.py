"""Every proxy of a server, and the operations of the control API on them.

Requests arrive as decoded JSON; this module checks them the way Toxiproxy does (same
defaults, same order of checks, same errors: :mod:`errors`) and applies them. One lock
serialises all changes, so a toxic change that is re-wiring live connections never
interleaves with another.

Where paystab is stricter than Toxiproxy it says so: listen addresses must be loopback
unless the server has a token; unknown toxic attributes, negative values, a toxicity
outside 0..1 and duplicate names in one populate request are refused with 400.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from paystab.chaos.proxy_server import errors
from paystab.chaos.proxy_server.addresses import AddressError, split_host_port
from paystab.chaos.proxy_server.errors import ApiError
from paystab.chaos.proxy_server.proxy import Proxy
from paystab.chaos.proxy_server.spec import DOWNSTREAM, STREAMS, ToxicSpec
from paystab.chaos.proxy_server.toxics import AttributeProblem, toxic_class
from paystab.net import is_loopback_host

DEFAULT_LISTEN = "127.0.0.1:0"  # Toxiproxy binds every interface here; paystab stays local


@dataclass
class ProxyFields:
    name: str
    listen: str
    upstream: str
    enabled: bool


def _object(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise errors.bad_request_body(f"expected a JSON object, got {type(raw).__name__}")
    return raw


def _optional(raw: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise errors.bad_request_body(f"field {key!r} must be a {kind.__name__}, got {value!r}")
    return value


class ProxyCollection:
    """The proxies of one server, by name."""

    def __init__(self, *, seed: int | None = None, allow_public: bool = False) -> None:
        self.seed = seed
        self.allow_public = allow_public
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()

    # -- checks --------------------------------------------------------------------------
    def proxy_fields(self, raw: object, base: Proxy | None = None, where: str = "") -> ProxyFields:
        body = _object(raw)
        fields = ProxyFields(
            name=_optional(body, "name", str, base.name if base else ""),
            listen=_optional(body, "listen", str, base.listen if base else ""),
            upstream=_optional(body, "upstream", str, base.upstream if base else ""),
            enabled=_optional(body, "enabled", bool, base.enabled if base else True),
        )
        if not fields.name:
            raise errors.missing_field("name" + where)
        if not fields.upstream:
            raise errors.missing_field("upstream" + where)
        fields.listen = fields.listen or DEFAULT_LISTEN
        try:
            listen_host, _ = split_host_port(fields.listen)
            split_host_port(fields.upstream)
        except AddressError as exc:
            raise errors.bad_request_body(str(exc)) from None
        if not self.allow_public and not is_loopback_host(listen_host):
            raise errors.bad_request_body(
                f"listen address {fields.listen!r} is not loopback; paystab only listens on"
                " other interfaces when the server was started with a token"
            )
        return fields

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise errors.proxy_not_found()
        return proxy

    @staticmethod
    def _toxicity(body: dict[str, Any], default: float) -> float:
        value = body.get("toxicity", default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise errors.bad_request_body(f"toxicity must be a number from 0 to 1, got {value!r}")
        return float(value)

    # -- proxies ---------------------------------------------------------------------------
    async def create(self, raw: object) -> Proxy:
        async with self.lock:
            fields = self.proxy_fields(raw)
            if fields.name in self.proxies:
                raise errors.proxy_already_exists()
            proxy = Proxy(fields.name, fields.listen, fields.upstream, self.seed)
            if fields.enabled:
                await proxy.start()
            self.proxies[proxy.name] = proxy
            return proxy

    async def update(self, name: str, raw: object) -> Proxy:
        async with self.lock:
            proxy = self.get(name)
            fields = self.proxy_fields(raw, base=proxy)
            await proxy.update(fields.listen, fields.upstream, fields.enabled)
            return proxy

    async def delete(self, name: str) -> None:
        async with self.lock:
            proxy = self.get(name)
            await proxy.stop()
            del self.proxies[name]

    async def populate(self, raw: object) -> tuple[list[Proxy], ApiError | None]:
        """Create or replace proxies in bulk; an existing proxy with the same listen and
        upstream is kept as it is (with its toxics and connections).

        Everything is checked before anything changes. Returns the proxies applied and the
        error that stopped the run, if one did (Toxiproxy answers both in one body).
        """
        if not isinstance(raw, list):
            raise errors.bad_request_body("expected a JSON array of proxies")
        wanted: list[ProxyFields] = []
        for i, item in enumerate(raw):
            fields = self.proxy_fields(item, where=f" at proxy {i + 1}")
            if any(f.name == fields.name for f in wanted):
                raise errors.bad_request_body(f"duplicate proxy name {fields.name!r}")
            wanted.append(fields)
        applied: list[Proxy] = []
        async with self.lock:
            for fields in wanted:
                existing = self.proxies.get(fields.name)
                if existing is not None:
                    if (existing.listen, existing.upstream) == (fields.listen, fields.upstream):
                        applied.append(existing)
                        continue
                    await existing.stop()
                proxy = Proxy(fields.name, fields.listen, fields.upstream, self.seed)
                try:
                    if fields.enabled:
                        await proxy.start()
                except ApiError as exc:
                    return applied, exc
                self.proxies[proxy.name] = proxy
                applied.append(proxy)
        return applied, None

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        async with self.lock:
            for proxy in self.proxies.values():
                await proxy.start()
                await proxy.remove_all_toxics()

    async def close_all(self) -> None:
        async with self.lock:
            for proxy in self.proxies.values():
                await proxy.stop()
            self.proxies.clear()

    # -- toxics ------------------------------------------------------------------------------
    async def add_toxic(self, proxy_name: str, raw: object) -> ToxicSpec:
        async with self.lock:
            proxy = self.get(proxy_name)
            body = _object(raw)
            toxicity = self._toxicity(body, 1.0)
            stream = _optional(body, "stream", str, DOWNSTREAM) or DOWNSTREAM
            if stream.lower() not in STREAMS:
                raise errors.invalid_stream()
            stream = stream.lower()
            toxic_type = _optional(body, "type", str, "")
            name = _optional(body, "name", str, "") or f"{toxic_type}_{stream}"
            cls = toxic_class(toxic_type)
            if cls is None:
                raise errors.invalid_toxic_type()
            if name in proxy.specs:
                raise errors.toxic_already_exists()
            try:
                toxic = cls.from_attributes(body.get("attributes"))
            except AttributeProblem as exc:
                raise errors.bad_request_body(str(exc)) from None
            spec = ToxicSpec(name, toxic_type, stream, toxicity, toxic)
            await proxy.add_toxic(spec)
            return spec

    def get_toxic(self, proxy_name: str, toxic_name: str) -> ToxicSpec:
        spec = self.get(proxy_name).specs.get(toxic_name)
        if spec is None:
            raise errors.toxic_not_found()
        return spec

    async def update_toxic(self, proxy_name: str, toxic_name: str, raw: object) -> ToxicSpec:
        """Change a toxic's attributes (those given; the rest keep their values) and/or
        toxicity. Name, type and stream cannot change (as in Toxiproxy)."""
        async with self.lock:
            spec = self.get_toxic(proxy_name, toxic_name)
            body = _object(raw)
            toxicity = self._toxicity(body, spec.toxicity)
            try:
                toxic = type(spec.toxic).from_attributes(body.get("attributes"), base=spec.toxic)
            except AttributeProblem as exc:
                raise errors.bad_request_body(str(exc)) from None
            updated = ToxicSpec(spec.name, spec.type, spec.stream, toxicity, toxic)
            await self.get(proxy_name).update_toxic(updated)
            return updated

    async def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        async with self.lock:
            self.get_toxic(proxy_name, toxic_name)
            await self.get(proxy_name).remove_toxic(toxic_name)
