"""The fault proxy's ``--config`` file: Toxiproxy's ``-config`` JSON, as a typed model.

A list of the proxies to create at start, exactly what ``POST /populate`` takes::

    [{"name": "card-alpha", "listen": "127.0.0.1:19001", "upstream": "127.0.0.1:9001",
      "enabled": true}]

JSON is YAML, so the file is read by :mod:`paystab.config.yaml12` (every value keeps its
line) and validated by :class:`ProxyConfigModel` (shipped as ``proxy-config.schema.json``);
the checks a model cannot make alone — a name used twice, a ``listen`` address that is not
loopback while the server has no token — are added to the same list, so every problem of
the file comes out at once as ``FILE:LINE: [i].field: problem (expected …)``, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, RootModel, ValidationError, WithJsonSchema

from paystab.chaos.proxy_server.addresses import AddressError, split_host_port
from paystab.config.problems import Problems
from paystab.config.types import Strict
from paystab.config.yaml12 import load_file_with_lines
from paystab.net import is_loopback_host

HOST_PORT_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]*):\d{1,5}$"


def _host_port(value: str) -> str:
    try:
        split_host_port(value)
    except AddressError as exc:
        raise ValueError(f"{exc} (expected HOST:PORT, e.g. 127.0.0.1:19001)") from None
    return value


HostPort = Annotated[str, AfterValidator(_host_port),
                     WithJsonSchema({"type": "string", "pattern": HOST_PORT_PATTERN,
                                     "description": "HOST:PORT as Go writes it: "
                                                    "127.0.0.1:8474, [::1]:80"})]


class ProxyEntryModel(Strict):
    """One proxy: its name, where it listens, where it forwards to."""

    name: str = Field(min_length=1, description="unique name, used in the API's URLs")
    listen: HostPort | None = Field(
        default=None, description="address to listen on (port 0 picks a free one); loopback "
                                  "unless the server has a --token")
    upstream: HostPort = Field(description="address the traffic is forwarded to")
    enabled: bool = Field(default=True, description="false: created down (connections refused)")


class ProxyConfigModel(RootModel[list[ProxyEntryModel]]):
    """Toxiproxy's ``-config`` file: the proxies to create at start."""

    model_config = ConfigDict(frozen=True, strict=True)


def load_proxy_config(path: str | Path, allow_public: bool) -> list[dict[str, Any]]:
    """Read a proxy config file into the list ``POST /populate`` takes; every problem of
    the file at once (:class:`~paystab.config.problems.ConfigInvalid`, exit 2)."""
    value, lines = load_file_with_lines(path)
    problems = Problems(str(path), lines)
    entries: list[ProxyEntryModel] = []
    try:
        entries = ProxyConfigModel.model_validate(value).root
    except ValidationError as exc:
        problems.add_validation(exc, ProxyConfigModel)
    if isinstance(value, list):  # checked on what was written, also when a field is wrong
        _check_names_and_binds(value, allow_public, problems)
    problems.raise_if_any()
    return [entry.model_dump(exclude_none=True) for entry in entries]


def _check_names_and_binds(items: list[Any], allow_public: bool, problems: Problems) -> None:
    """What the model cannot see alone: a name used twice, a public ``listen`` address."""
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        name, listen = item.get("name"), item.get("listen")
        if isinstance(name, str):
            if name in seen:
                problems.add((index, "name"), f"duplicate proxy name {name!r}", "unique names")
            seen.add(name)
        if allow_public or not isinstance(listen, str):
            continue
        try:
            host, _ = split_host_port(listen)
        except AddressError:
            continue  # the model said so already
        if not is_loopback_host(host):
            problems.add((index, "listen"), f"{listen!r} is not a loopback address",
                         "127.0.0.1:PORT (or start with --token)")
