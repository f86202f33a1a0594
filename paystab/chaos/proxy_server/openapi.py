"""The OpenAPI 3.1 document of the fault proxy's Toxiproxy-compatible control API.

Toxic types and their attributes come from the toxic registry (each toxic dataclass's
integer fields, with their defaults), streams from ``spec``: a new toxic appears in the
document by being registered. Served at ``GET /openapi.json`` by ``api.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from paystab import __version__
from paystab.chaos.proxy_server.spec import STREAMS
from paystab.chaos.proxy_server.toxics import toxic_class, toxic_types

_REF = "#/components/schemas/"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def proxy_document(token_required: bool = False) -> dict[str, Any]:
    """The fault proxy's Toxiproxy-compatible control API, toxics from the registry."""
    error = {"description": "Toxiproxy error body.", "content": {"application/json": {"schema": {
        "type": "object", "required": ["error", "status"],
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}}}}
    variants = []
    for type_name in toxic_types():
        cls = toxic_class(type_name)
        assert cls is not None
        attributes = {f.name: {"type": "integer", "minimum": 0, "default": f.default}
                      for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        variants.append({"title": type_name, "type": "object", "required": ["type"],
                         "properties": {"type": {"const": type_name}, "name": {"type": "string"},
                                        "stream": {"enum": list(STREAMS)},
                                        "toxicity": {"type": "number", "minimum": 0, "maximum": 1},
                                        "attributes": {"type": "object", "properties": attributes,
                                                       "additionalProperties": False}}})
    proxy = {"type": "object", "required": ["name", "listen", "upstream", "enabled", "toxics"],
             "properties": {"name": {"type": "string"}, "listen": {"type": "string"},
                            "upstream": {"type": "string"}, "enabled": {"type": "boolean"},
                            "toxics": {"type": "array", "items": {"$ref": _REF + "ToxicOut"}}}}
    proxy_in = {"type": "object", "required": ["name", "upstream"],
                "properties": {"name": {"type": "string"}, "listen": {"type": "string"},
                               "upstream": {"type": "string"}, "enabled": {"type": "boolean"}}}
    toxic_out = {"type": "object", "properties": {"name": {"type": "string"}, "type": {"enum": toxic_types()},
                                                  "stream": {"enum": list(STREAMS)},
                                                  "toxicity": {"type": "number"},
                                                  "attributes": {"type": "object"}}}
    p_param = {"name": "proxy", "in": "path", "required": True, "schema": {"type": "string"}}
    t_param = {"name": "toxic", "in": "path", "required": True, "schema": {"type": "string"}}
    errors = {code: error for code in ("400", "403", "404", "409")}
    if token_required:
        errors["401"] = error

    def body(ref: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": {"$ref": _REF + ref}}}}

    def ok(schema: dict[str, Any], code: str = "200") -> dict[str, Any]:
        return {code: _json(schema, "OK"), **errors}

    deleted = {"204": {"description": "Done."}, **errors}
    update_proxy = {"parameters": [p_param], "requestBody": body("ProxyIn"), "responses": ok({"$ref": _REF + "Proxy"})}
    update_toxic = {"parameters": [p_param, t_param], "requestBody": body("ToxicIn"),
                    "responses": ok({"$ref": _REF + "ToxicOut"})}
    paths = {
        "/proxies": {"get": {"operationId": "listProxies", "responses": ok(
                         {"type": "object", "additionalProperties": {"$ref": _REF + "Proxy"}})},
                     "post": {"operationId": "createProxy", "requestBody": body("ProxyIn"),
                              "responses": ok({"$ref": _REF + "Proxy"}, "201")}},
        "/populate": {"post": {"operationId": "populate", "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"type": "array", "items": {"$ref": _REF + "ProxyIn"}}}}},
            "responses": ok({"type": "object", "properties": {"proxies": {"type": "array"}}}, "201")}},
        "/proxies/{proxy}": {"get": {"operationId": "getProxy", "parameters": [p_param],
                                     "responses": ok({"$ref": _REF + "Proxy"})},
                             "post": {"operationId": "updateProxy", **update_proxy},
                             "patch": {"operationId": "patchProxy", **update_proxy},
                             "delete": {"operationId": "deleteProxy", "parameters": [p_param], "responses": deleted}},
        "/proxies/{proxy}/toxics": {
            "get": {"operationId": "listToxics", "parameters": [p_param],
                    "responses": ok({"type": "array", "items": {"$ref": _REF + "ToxicOut"}})},
            "post": {"operationId": "createToxic", "parameters": [p_param], "requestBody": body("ToxicIn"),
                     "responses": ok({"$ref": _REF + "ToxicOut"})}},
        "/proxies/{proxy}/toxics/{toxic}": {
            "get": {"operationId": "getToxic", "parameters": [p_param, t_param],
                    "responses": ok({"$ref": _REF + "ToxicOut"})},
            "post": {"operationId": "updateToxic", **update_toxic},
            "patch": {"operationId": "patchToxic", **update_toxic},
            "delete": {"operationId": "deleteToxic", "parameters": [p_param, t_param], "responses": deleted}},
        "/reset": {"post": {"operationId": "reset", "responses": deleted}},
        "/version": {"get": {"operationId": "version", "responses": ok({"type": "object"})}},
        "/openapi.json": {"get": {"operationId": "openapi", "responses": ok({"type": "object"})}},
        "/metrics": {"get": {"operationId": "metrics", "responses": {"200": {
            "description": "Prometheus text.", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    }
    components: dict[str, Any] = {"schemas": {"Proxy": proxy, "ProxyIn": proxy_in, "ToxicOut": toxic_out,
                                               "ToxicIn": {"oneOf": variants}}}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "paystab fault proxy (Toxiproxy v2 compatible)", "version": __version__},
        "paths": paths, "components": components}
    if token_required:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document
