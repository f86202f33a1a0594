"""Application faults in the provider simulators, through their loopback admin API.

The simulators (``paystab/stack``) take runtime faults at
``POST /admin/providers/{name}/faults`` (contract in ``paystab/stack/endpoints.py``).
Each kind here maps its unit-bearing parameters to that API's fields (``added: 300ms`` →
``added_ms: 300``) and sends the fault *with an id of its own* (``paystab-<uid>``), so the
journal knows the id before the fault exists and ``clear`` deletes exactly that fault —
from any process. Target: a provider name (``card-alpha``), resolved to its admin URL
through the stack's ready file or the runbook, or ``card-alpha@http://127.0.0.1:PORT``.

Blast radius: the admin URL's host is resolved once and every call goes to that IP; the
provider's own address is what *that* admin API lists for it. ``provider:NAME`` names the
fault only when the admin contacted is the one the context (ready file, runbook) knows for
NAME — or when the context knows none; a ``NAME@URL`` pointing at another stack is
allowed only by that provider's own address there.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import Any, ClassVar

from paystab import httpclient as http
from paystab.chaos.address import address_of_url, pin_url
from paystab.chaos.base import Fault, FaultContext, FaultSpec, Resource, register, target_error
from paystab.chaos.params import Param, choice, duration, ratio, text
from paystab.exceptions import EnvironmentProblem, InvalidInput

ERRORS = ("server_error", "rate_limited", "malformed", "bad_gateway")
METHODS = ("card", "wallet", "bank_transfer", "konbini")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def split_target(target: str) -> tuple[str, str | None]:
    """``card-alpha@http://127.0.0.1:9100`` → ``("card-alpha", "http://127.0.0.1:9100")``."""
    name, sep, url = target.partition("@")
    return name.strip(), (url.strip() or None) if sep else None


class ProviderFault(Fault):
    """Base of the simulator faults: target resolution, inject by POST, clear by DELETE."""

    api_type: ClassVar[str]

    @classmethod
    def check_target(cls, target: str) -> str:
        name, url = split_target(target)
        if not _NAME.match(name):
            raise target_error(target, f"cannot read {target!r} as a provider",
                               "a provider name such as card-alpha, optionally NAME@ADMIN_URL")
        if url is not None and not url.startswith(("http://", "https://")):
            raise target_error(target, f"{url!r} is not an http(s) URL",
                               "NAME@http://HOST:ADMIN_PORT")
        return f"provider:{name}"

    @classmethod
    def resolve(cls, spec: FaultSpec, ctx: FaultContext) -> dict[str, Any]:
        name, url = split_target(spec.target)
        address = ctx.providers.get(name)
        known_admin = (address.admin_url if address else None) or ctx.provider_admin_url
        admin_url = url or known_admin
        if not admin_url:
            raise InvalidInput(
                f"no admin URL known for provider '{name}'", source="target", field=spec.name,
                expected="a stack ready file (--ready-file) or the target NAME@ADMIN_URL",
            )
        admin_url = admin_url.rstrip("/")
        pinned = pin_url(admin_url, f"target {spec.name}")
        # The name speaks for the context's provider only if this is the context's admin.
        named = url is None or known_admin is None \
            or address_of_url(known_admin) == pinned.address
        token = _context_token(ctx, named)
        reply = http.request("GET", f"{admin_url}/admin/providers", token=token, via=pinned.ip)
        listing = reply.expect_ok("provider admin API").json_object("provider admin API")
        entries = {str(p.get("name")): p for p in listing.get("providers", [])
                   if isinstance(p, dict)}
        if name not in entries:
            raise InvalidInput(f"unknown provider '{name}' at {admin_url}", source="target",
                               field=spec.name, expected="one of " + ", ".join(sorted(entries)))
        listed_url = entries[name].get("url")
        provider_url = str(listed_url) if listed_url else None
        return {"provider": name, "admin_url": admin_url, "admin_ip": pinned.ip,
                "admin_address": pinned.address, "fault_id": None,
                "provider_url": provider_url, "provider_address": address_of_url(provider_url),
                "named": named}

    token: str | None = None  # never journaled: clear() elsewhere reads the environment

    @classmethod
    def prepare(cls, spec: FaultSpec, ctx: FaultContext) -> ProviderFault:
        fault = super().prepare(spec, ctx)
        fault.where["fault_id"] = f"paystab-{fault.uid}"
        fault.token = _context_token(ctx, bool(fault.where.get("named", True)))
        return fault

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> str | None:
        for param in cls.params_spec:
            if param.type == "ratio" and params.get(param.name) == 0:
                return f"{param.name} must be above 0 (a fault that never fires)"
        return None

    def touches(self) -> Resource:
        names = [f"provider:{self.where['provider']}"] if self.where.get("named", True) else []
        if self.where.get("provider_address"):
            names.append(str(self.where["provider_address"]))
        if not names:  # nothing but the admin API it is set through
            names.append(f"{self.where.get('admin_address') or self.where['admin_url']}")
        return Resource(tuple(names))

    def _call(self, method: str, url: str, body: Any = None) -> http.Reply:
        return http.request(method, url, body, token=self.token or _token(),
                            via=self.where.get("admin_ip"))

    def api_params(self) -> dict[str, Any]:
        """The admin API's fields for this fault (units converted)."""
        return {}

    def _faults_url(self) -> str:
        provider = urllib.parse.quote(str(self.where["provider"]), safe="")
        return f"{self.where['admin_url']}/admin/providers/{provider}/faults"

    def inject(self) -> None:
        body = {"type": self.api_type, "id": self.where["fault_id"], **self.api_params()}
        reply = self._call("POST", self._faults_url(), body)
        if reply.status == 409:
            return  # a fault with our id exists: inject ran before (idempotent)
        if reply.status == 400 or reply.status == 422:
            raise InvalidInput(f"the simulator refused the fault: {reply.error_text()}",
                               source="params", field=self.spec.name)
        if reply.status not in (200, 201):
            raise EnvironmentProblem(
                f"{self._faults_url()} answered {reply.status}: {reply.error_text()}")
        given = reply.body.get("id") if isinstance(reply.body, dict) else None
        if given and given != self.where["fault_id"]:
            # The simulator chose its own id: remember it so clear() deletes the right one.
            self.where["fault_id"] = str(given)
            self.progress()

    def clear(self) -> None:
        fault_id = urllib.parse.quote(str(self.where.get("fault_id")), safe="")
        try:
            reply = self._call("DELETE", f"{self._faults_url()}/{fault_id}")
        except http.Unreachable as exc:
            if exc.refused:
                return  # the simulator process is gone, and its in-memory faults with it
            raise
        if reply.status not in (200, 204, 404):
            raise EnvironmentProblem(
                f"clearing {self.uid}: {self._faults_url()} answered {reply.status}: "
                f"{reply.error_text()}")


def _context_token(ctx: FaultContext, own_admin: bool) -> str | None:
    """The context's token (from a ready file) goes only to the context's own admin API;
    another stack's admin gets only what the user set in ``$PAYSTAB_ADMIN_TOKEN``."""
    return (ctx.admin_token if own_admin else None) or _token()


def _token() -> str | None:
    return os.environ.get("PAYSTAB_ADMIN_TOKEN")


def _ms(seconds: Any) -> float:
    return round(float(seconds) * 1000.0, 3)


@register
class ErrorBurst(ProviderFault):
    kind = "provider.error_burst"
    api_type = "error_burst"
    summary = "answer a share of requests with an error (5xx, 429, malformed, 502)"
    params_spec: ClassVar[tuple[Param, ...]] = (
        ratio("ratio", "share of requests that fail", default=1.0),
        choice("error", "what the failure looks like", ERRORS, default="server_error"),
    )

    def api_params(self) -> dict[str, Any]:
        return {"ratio": self.spec.params["ratio"], "error": self.spec.params["error"]}


@register
class Latency(ProviderFault):
    kind = "provider.latency"
    api_type = "latency"
    summary = "add latency (with jitter) to every answer"
    params_spec: ClassVar[tuple[Param, ...]] = (
        duration("added", "latency added to each answer", hi=600.0),
        duration("jitter", "uniform jitter around the added latency", default=0.0, hi=600.0),
    )

    def api_params(self) -> dict[str, Any]:
        return {"added_ms": _ms(self.spec.params["added"]),
                "jitter_ms": _ms(self.spec.params["jitter"])}


@register
class Hang(ProviderFault):
    kind = "provider.hang"
    api_type = "hang"
    summary = "accept requests and never answer"
    params_spec: ClassVar[tuple[Param, ...]] = (
        ratio("ratio", "share of requests that hang", default=1.0),
    )

    def api_params(self) -> dict[str, Any]:
        return {"ratio": self.spec.params["ratio"]}


@register
class Slow(ProviderFault):
    kind = "provider.slow"
    api_type = "slow"
    summary = "answer slowly: the body trickles out over response_time"
    params_spec: ClassVar[tuple[Param, ...]] = (
        duration("response_time", "each answer's body trickles out over this long",
                 lo=0.001, hi=600.0),
    )

    def api_params(self) -> dict[str, Any]:
        return {"duration_ms": _ms(self.spec.params["response_time"])}


@register
class DropResponse(ProviderFault):
    kind = "provider.drop_response"
    api_type = "drop_response"
    summary = "charge, then drop the response (the outcome is unknown to the caller)"
    params_spec: ClassVar[tuple[Param, ...]] = (
        ratio("ratio", "share of charges whose response is lost", default=1.0),
    )

    def api_params(self) -> dict[str, Any]:
        return {"ratio": self.spec.params["ratio"]}


@register
class PartialOutage(ProviderFault):
    kind = "provider.partial_outage"
    api_type = "partial_outage"
    summary = "fail only one method, currency or BIN range"
    params_spec: ClassVar[tuple[Param, ...]] = (
        choice("method", "payment method that fails", METHODS, default=None),
        text("currency", "ISO 4217 currency that fails", default=None),
        text("bin_from", "first card BIN (prefix digits) that fails", default=None),
        text("bin_to", "last card BIN that fails", default=None),
        choice("error", "what the failure looks like", ERRORS, default="server_error"),
    )

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> str | None:
        if not any(k in params for k in ("method", "currency", "bin_from")):
            return "partial_outage needs a selector: method, currency or bin_from..bin_to"
        if ("bin_from" in params) != ("bin_to" in params):
            return "bin_from and bin_to go together"
        if "currency" in params and not re.fullmatch(r"[A-Z]{3}", str(params["currency"])):
            return "currency must be an ISO 4217 code such as JPY"
        if "bin_from" in params:
            low, high = str(params["bin_from"]), str(params["bin_to"])
            if not (re.fullmatch(r"\d{1,12}", low) and re.fullmatch(r"\d{1,12}", high)):
                return "bin_from and bin_to are card number prefixes: 1-12 digits"
            if len(low) != len(high) or int(low) > int(high):
                return "bin_from..bin_to must have as many digits, low to high"
        return None

    def api_params(self) -> dict[str, Any]:
        params = self.spec.params
        return {k: params[k] for k in ("method", "currency", "bin_from", "bin_to", "error")
                if k in params}


@register
class Flapping(ProviderFault):
    kind = "provider.flapping"
    api_type = "flapping"
    summary = "alternate between down and up with a period"
    params_spec: ClassVar[tuple[Param, ...]] = (
        duration("period", "length of one down+up cycle", lo=0.05, hi=86400.0),
        ratio("down_ratio", "share of each period spent down", default=0.5),
        choice("error", "what the failure looks like", ERRORS, default="server_error"),
    )

    def api_params(self) -> dict[str, Any]:
        params = self.spec.params
        return {"period_s": float(params["period"]), "down_ratio": params["down_ratio"],
                "error": params["error"]}

