"""The OpenAPI 3.1 document of the gateway's payment and admin API.

Rendered from the definitions the code itself validates with, never written by hand: the
payment body, the Idempotency-Key and the payment id come from ``payment_api``'s field
objects, the problem slugs and the answer's vocabulary from ``catalog`` and ``errors``,
the gateway's limits from ``http_guard``. Links say how the payment API is used in
sequence (create → read back by id; the same key → the same payment), which is what a
stateful fuzzer (schemathesis) follows. Served at ``GET /openapi.json``.
"""

from __future__ import annotations

from typing import Any

from paystab import __version__
from paystab.stack.catalog import CURRENCIES, METHODS
from paystab.stack.errors import CODES
from paystab.stack.http_guard import GatewayLimits
from paystab.stack.payment_api import IDEMPOTENCY_KEY, PAYMENT_ID, payment_request_schema

PROBLEM_JSON = "application/problem+json"
_REF = "#/components/schemas/"


def _problem_schema() -> dict[str, Any]:
    return {"type": "object", "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "properties": {"type": {"type": "string", "format": "uri"}, "title": {"type": "string"},
                           "status": {"type": "integer", "minimum": 400, "maximum": 599},
                           "detail": {"type": "string"},
                           "field": {"type": "string", "description": "the offending field"},
                           "instance": {"type": "string"}}}


def _payment_schema(statuses: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": ["id", "status", "code", "attempts", "amount", "currency", "method"],
            "properties": {
                "id": PAYMENT_ID.schema(),
                "status": {"enum": statuses},
                "code": {"enum": sorted(CODES)},
                "provider": {"type": ["string", "null"]},
                "attempts": {"type": "integer", "minimum": 0},
                "amount": {"type": "integer"}, "currency": {"enum": list(CURRENCIES)},
                "method": {"enum": list(METHODS)}}}


def _failed_payment_schema() -> dict[str, Any]:
    schema = _problem_schema()
    schema["description"] = "No provider could answer: problem details plus the payment."
    schema["required"] = [*schema["required"], "id", "payment_status", "code"]
    schema["properties"] = dict(schema["properties"], id=PAYMENT_ID.schema(),
                                payment_status={"const": "failed"}, code={"enum": sorted(CODES)},
                                attempts={"type": "integer"})
    return schema


def _problem(description: str, retry_after: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description,
                           "content": {PROBLEM_JSON: {"schema": {"$ref": _REF + "Problem"}}}}
    if retry_after:
        out["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}
    return out


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _provider_state_schema() -> dict[str, Any]:
    number = {"type": "number"}
    return {"type": "object", "required": ["name", "methods", "state", "breaker"],
            "properties": {"name": {"type": "string"}, "methods": {"type": "array", "items": {"enum": list(METHODS)}},
                           "state": {"enum": ["active", "drained"]},
                           "breaker": {"enum": ["closed", "open", "half_open"]},
                           "health_score": number, "inflight": {"type": "integer"},
                           "oldest_inflight_age_s": number, "success_rate": number,
                           "p95_ms": {"type": ["number", "null"]}, "backup": {"type": "boolean"}}}


def gateway_document(token_required: bool = False, provider_names: list[str] | None = None,
                     limits: GatewayLimits | None = None) -> dict[str, Any]:
    """The gateway's payment and admin API."""
    limits = limits or GatewayLimits()
    key_param = {"name": "Idempotency-Key", "in": "header", "required": True,
                 "schema": IDEMPOTENCY_KEY.schema(), "description": IDEMPOTENCY_KEY.description}
    id_param = {"name": "id", "in": "path", "required": True, "schema": PAYMENT_ID.schema()}
    name_schema: dict[str, Any] = {"type": "string"}
    if provider_names:
        name_schema = {"enum": provider_names}
    name_param = {"name": "name", "in": "path", "required": True, "schema": name_schema}
    unauthorized = {"401": _problem("Missing or wrong bearer token.")} if token_required else {}
    admin_security: dict[str, Any] = {"security": [{"bearer": []}]} if token_required else {}
    unresolved = _json({"type": "object", "required": ["unresolved"],
                        "properties": {"unresolved": {"type": "integer", "minimum": 0}}},
                       "Provider attempts whose outcome is still unknown.")
    provider_state = {"$ref": _REF + "ProviderState"}
    create = {
        "operationId": "createPayment", "summary": "Create (or replay) a payment",
        "parameters": [key_param],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": {"$ref": _REF + "PaymentRequest"}}}},
        "responses": {
            "200": {**_json({"$ref": _REF + "Payment"}, "Approved, declined or pending (final)."),
                    "links": {
                        "GetPaymentById": {"operationId": "getPayment",
                                           "parameters": {"path.id": "$response.body#/id"}},
                        "ReplaySameKey": {"operationId": "createPayment",
                                          "parameters": {"header.Idempotency-Key": "$request.header.Idempotency-Key"},
                                          "requestBody": "$request.body"}}},
            "400": _problem("Malformed JSON, JSON nested deeper than "
                            f"{limits.max_json_depth}, a bad or missing Idempotency-Key, an unreadable body."),
            "408": _problem(f"The body did not arrive within {limits.body_read_timeout_s:g} s."),
            "409": _problem("A payment with this key is still in flight.", retry_after=True),
            "413": _problem(f"Body over {limits.max_body_bytes} bytes."),
            "415": _problem("Not application/json, or a Content-Encoding other than gzip/deflate."),
            "422": _problem("A field is invalid (named in `field`), the key was used with another "
                            "body, or no provider takes this payment (`unroutable`)."),
            "429": _problem("Too many connections from this client."),
            "502": {"description": "No provider could answer.",
                    "content": {PROBLEM_JSON: {"schema": {"$ref": _REF + "FailedPayment"}}}},
            "503": {"description": "No provider available, or the gateway is shedding load.",
                    "headers": {"Retry-After": {"schema": {"type": "string"}}},
                    "content": {PROBLEM_JSON: {"schema": {"$ref": _REF + "Problem"}}}},
            "504": {"description": "Providers timed out.",
                    "content": {PROBLEM_JSON: {"schema": {"$ref": _REF + "FailedPayment"}}}},
        },
    }
    paths: dict[str, Any] = {
        "/v1/payments": {"post": create},
        "/v1/payments/{id}": {"get": {
            "operationId": "getPayment", "summary": "A payment's stored answer",
            "parameters": [id_param],
            "responses": {"200": _json({"$ref": _REF + "StoredPayment"}, "The payment."),
                          "404": _problem("No such payment.")}}},
        "/healthz": {"get": {"operationId": "health", "responses": {"200": _json(
            {"type": "object", "required": ["status"], "properties": {
                "status": {"const": "ok"}, "providers": {"type": "integer"},
                "active_providers": {"type": "integer"}, "inflight": {"type": "integer"}}},
            "Alive.")}}},
        "/metrics": {"get": {"operationId": "metrics", "responses": {"200": {
            "description": "Prometheus exposition (text, or OpenMetrics when asked).",
            "content": {"text/plain": {"schema": {"type": "string"}},
                        "application/openmetrics-text": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"operationId": "openapi", "responses": {"200": _json(
            {"type": "object"}, "This document.")}}},
        "/admin/providers": {"get": {"operationId": "listProviders", **admin_security, "responses": {
            "200": _json({"type": "object", "required": ["providers"], "properties": {
                "providers": {"type": "array", "items": provider_state}}}, "Every provider's state."),
            **unauthorized}}},
        "/admin/unresolved": {"get": {"operationId": "unresolved", **admin_security,
                                      "responses": {"200": unresolved, **unauthorized}}},
        "/admin/resolve": {"post": {"operationId": "resolve", **admin_security,
                                    "responses": {"200": unresolved, **unauthorized}}},
    }
    for action in ("drain", "restore"):
        paths[f"/admin/providers/{{name}}/{action}"] = {"post": {
            "operationId": f"{action}Provider", **admin_security, "parameters": [name_param],
            "responses": {"200": _json(provider_state, f"The provider after {action}."),
                          "404": _problem("No such provider."), **unauthorized}}}
    components: dict[str, Any] = {"schemas": {
        "PaymentRequest": payment_request_schema(),
        "Payment": _payment_schema(["approved", "declined", "pending"]),
        "StoredPayment": _payment_schema(["approved", "declined", "pending", "failed"]),
        "FailedPayment": _failed_payment_schema(),
        "Problem": _problem_schema(),
        "ProviderState": _provider_state_schema(),
    }}
    if token_required:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return {"openapi": "3.1.0",
            "info": {"title": "paystab reference gateway", "version": __version__,
                     "description": "Payments with idempotency keys, and the admin API "
                                    "the failover controller drives."},
            "paths": paths, "components": components}
