"""The fault contract: what every fault kind must do, and the registry of kinds by name.

A fault kind is a small class (one module per backend: ``provider``, ``proxy``,
``iptables``, ``docker``, ``process``) registered under the name runbooks use, such as
``provider.hang`` or ``docker.pause``. The life of one fault:

1. **describe** — a :class:`FaultSpec` (kind, target, parameters already checked against
   the kind's :attr:`Fault.params_spec`) comes from a runbook or ``paystab chaos inject``.
   :meth:`Fault.check_target` reads the target as written and names it for the blast
   radius (``provider:card-alpha``, ``container:psp``, ``127.0.0.1:9001``) without I/O.
2. **prepare** — :meth:`Fault.prepare` looks the target up (an admin API, the Docker
   daemon, ``/proc``) and gathers *everything clear() will need* into :attr:`Fault.where`,
   a JSON-able dict. It changes nothing: a refused or mistyped fault never half-happens.
   :meth:`Fault.touches` then says what the fault affects under every name a user may
   allow it by.
3. **record** — the caller (a :class:`~paystab.chaos.session.FaultSession`) writes
   :meth:`Fault.record` to the on-disk journal *before* :meth:`Fault.inject`.
4. **inject** — makes the fault take effect. A backend that performs several irreversible
   steps calls :meth:`Fault.progress` after each, so the journal follows.
5. **clear** — undoes the fault. It must be idempotent and must work on a fault whose
   inject never ran, ran partially or ran twice, and in *another process* rebuilt with
   :meth:`Fault.from_record` after the injecting process died by SIGKILL. It touches
   only what this fault added (tagged with :attr:`Fault.uid`), never "everything".

Errors: bad targets or parameters are :class:`InvalidInput` (exit 2), an unreachable
daemon or missing binary is :class:`EnvironmentProblem` (exit 4).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from paystab.chaos.params import Param, describe_params
from paystab.exceptions import InvalidInput
from paystab.stack.endpoints import StackEndpoints

RECORD_SCHEMA = "paystab.fault/v1"


@dataclass(frozen=True)
class FaultSpec:
    """What a runbook entry or a ``chaos inject`` command asks for, already validated.

    ``name`` is the user-facing id (unique within a runbook); ``params`` are in base units
    (seconds, ratios) as :func:`paystab.chaos.params.parse_params` returns them.
    """

    name: str
    kind: str
    target: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    """One thing a fault touches, under every name a user may allow it by.

    ``names[0]`` is the name shown in messages; e.g. ``("provider:card-alpha",
    "127.0.0.1:9001")`` for a partition of that provider's port.
    """

    names: tuple[str, ...]

    def __str__(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class ProviderAddress:
    """Where one provider answers (``url``) and where its faults are set (``admin_url``)."""

    url: str | None = None
    admin_url: str | None = None


@dataclass(frozen=True)
class ProcessRef:
    """A named local process: by pid, pidfile or command line, and how to start it again."""

    pid: int | None = None
    pidfile: str | None = None
    cmd: str | None = None
    restart: str | None = None

    def target(self) -> str:
        if self.pid is not None:
            return f"pid:{self.pid}"
        if self.pidfile is not None:
            return f"pidfile:{self.pidfile}"
        return f"cmd:{self.cmd}"


@dataclass
class FaultContext:
    """What faults need to find their targets: addresses, named processes, tokens.

    Built from a running stack's ready file (:meth:`from_stack`), a runbook's ``target``
    section, or command-line options. Nothing in it is written to the journal except the
    resolved addresses a fault copies into its ``where``; tokens are read from the
    environment again when clearing from another process.
    """

    providers: dict[str, ProviderAddress] = field(default_factory=dict)
    provider_admin_url: str | None = None  # one admin listener for all providers
    processes: dict[str, ProcessRef] = field(default_factory=dict)
    proxy_api_url: str = "http://127.0.0.1:8474"
    admin_token: str | None = None

    @classmethod
    def from_stack(cls, stack: StackEndpoints) -> FaultContext:
        providers = {
            name: ProviderAddress(url=p.url, admin_url=stack.provider_admin_url)
            for name, p in stack.providers.items()
        }
        processes: dict[str, ProcessRef] = {}
        if stack.gateway_pid:
            processes["gateway"] = ProcessRef(pid=stack.gateway_pid)
        if stack.providers_pid:
            processes["providers"] = ProcessRef(pid=stack.providers_pid)
        proxy = stack.extra.get("proxy_api_url") if isinstance(stack.extra, dict) else None
        return cls(
            providers=providers,
            provider_admin_url=stack.provider_admin_url,
            processes=processes,
            proxy_api_url=str(proxy) if proxy else default_proxy_api(),
            admin_token=stack.admin_token or os.environ.get("PAYSTAB_ADMIN_TOKEN"),
        )


def default_proxy_api() -> str:
    return os.environ.get("TOXIPROXY_URL", "http://127.0.0.1:8474")


def new_uid(name: str) -> str:
    """A journal-safe unique id: the user's name plus 8 hex digits."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:40] or "fault"
    return f"{stem}-{secrets.token_hex(4)}"


F = TypeVar("F", bound="Fault")


class Fault(ABC):
    """One fault of one kind; see the module docstring for the contract."""

    kind: ClassVar[str]  # the registry name, e.g. "provider.hang"
    summary: ClassVar[str]  # one line for `paystab chaos kinds`
    params_spec: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, uid: str, spec: FaultSpec, where: dict[str, Any]) -> None:
        self.uid = uid
        self.spec = spec
        self.where = where
        self.created_at = time.time()
        self._on_progress: Callable[[], None] = lambda: None

    # -- without I/O ------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def check_target(cls, target: str) -> str:
        """Read the target as written; return its blast-radius name or raise ValueError."""

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> str | None:
        """Why these (individually valid) parameters do not go together, or None."""
        return None

    # -- prepare (reads, never writes) ------------------------------------------------
    @classmethod
    def prepare(cls: type[F], spec: FaultSpec, ctx: FaultContext) -> F:
        """Resolve the target; gather in ``where`` everything clear() needs.

        ``spec.params`` are values in base units (as ``parse_params`` returns them); a
        spec built in code may leave out parameters that have defaults.
        """
        known = {p.name: p for p in cls.params_spec}
        unknown = sorted(set(spec.params) - set(known))
        if unknown:
            raise InvalidInput(f"unknown parameter '{unknown[0]}' for {cls.kind}",
                               source="params", field=spec.name,
                               expected="one of: " + (", ".join(sorted(known)) or "none"))
        params = {p.name: p.default for p in cls.params_spec
                  if not p.required and p.default is not None}
        params.update(spec.params)
        missing = [p.name for p in cls.params_spec if p.required and p.name not in params]
        if missing:
            raise InvalidInput(f"missing parameter '{missing[0]}' for {cls.kind}",
                               source="params", field=spec.name)
        spec = FaultSpec(spec.name, spec.kind, spec.target, params)
        return cls(new_uid(spec.name), spec, cls.resolve(spec, ctx))

    @classmethod
    @abstractmethod
    def resolve(cls, spec: FaultSpec, ctx: FaultContext) -> dict[str, Any]:
        """Look the target up without changing it; the result becomes ``where``."""

    def touches(self) -> Resource:
        """What this fault affects, by every name the allow list may use."""
        return Resource((self.check_target(self.spec.target),))

    # -- effect ---------------------------------------------------------------------------
    @abstractmethod
    def inject(self) -> None:
        """Make the fault take effect (the journal record already exists)."""

    @abstractmethod
    def clear(self) -> None:
        """Undo exactly this fault; idempotent; works from another process."""

    def progress(self) -> None:
        """Tell the journal that ``where`` changed after an irreversible step."""
        self._on_progress()

    def describe(self) -> str:
        params = describe_params(self.params_spec, self.spec.params)
        return f"{self.kind} on {self.spec.target}" + (f" ({params})" if params else "")

    # -- journal ------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """The JSON-able journal record; :meth:`from_record` rebuilds the fault from it."""
        return {
            "schema": RECORD_SCHEMA,
            "uid": self.uid,
            "name": self.spec.name,
            "kind": self.kind,
            "target": self.spec.target,
            "params": dict(self.spec.params),
            "where": self.where,
            "created_at": self.created_at,
            "description": self.describe(),
        }

    @classmethod
    def from_record(cls: type[F], record: Mapping[str, Any]) -> F:
        spec = FaultSpec(
            name=str(record["name"]), kind=str(record["kind"]),
            target=str(record["target"]), params=dict(record.get("params") or {}),
        )
        fault = cls(str(record["uid"]), spec, dict(record.get("where") or {}))
        fault.created_at = float(record.get("created_at") or time.time())
        return fault


# -- the registry ------------------------------------------------------------------------
_KINDS: dict[str, type[Fault]] = {}


def register(cls: type[F]) -> type[F]:
    """Class decorator: make ``cls`` available under ``cls.kind``."""
    if cls.kind in _KINDS and _KINDS[cls.kind] is not cls:
        raise RuntimeError(f"fault kind {cls.kind!r} registered twice")
    _KINDS[cls.kind] = cls
    return cls


def registered_kinds() -> dict[str, type[Fault]]:
    return dict(_KINDS)


def target_error(target: str, problem: str, expected: str) -> ValueError:
    """A ValueError carrying what a target should look like (see check_target)."""
    err = ValueError(problem)
    err.args = (problem, expected)
    return err


def invalid_target(exc: ValueError, source: str, line: int | None, field: str) -> InvalidInput:
    """Turn a check_target ValueError into the exit-2 error for ``source:line field``."""
    problem = str(exc.args[0]) if exc.args else str(exc)
    expected = str(exc.args[1]) if len(exc.args) > 1 else None
    return InvalidInput(problem, source=source, line=line, field=field, expected=expected)
