"""Container faults through the Docker SDK: pause, stop, kill, restart, network disconnect.

Target: a container name or id. ``prepare`` looks the container up and records its full id
and (for a disconnect) its endpoint settings on that network, so ``clear`` — possibly in
another process after a crash — unpauses, starts or reconnects exactly that container.
Clearing checks the container's current state first, so it is idempotent and never starts
a container that was already stopped before the fault (``was_running``).
The ``docker`` package is imported only when a Docker fault is prepared or cleared.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from paystab.chaos.base import Fault, FaultContext, FaultSpec, Resource, register, target_error
from paystab.chaos.params import Param, choice, duration, text
from paystab.exceptions import EnvironmentProblem, InvalidInput

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP")


def client() -> Any:
    """A Docker client from the environment (DOCKER_HOST or the local socket)."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - a declared dependency
        raise EnvironmentProblem("the docker Python package is missing",
                                 hint="pip install docker") from None
    try:
        api = docker.from_env(timeout=30)
        api.ping()
    except DockerException as exc:
        raise EnvironmentProblem(f"cannot reach the Docker engine: {exc}",
                                 hint="start dockerd, or set DOCKER_HOST") from None
    return api


def _errors() -> Any:
    from docker import errors

    return errors


class ContainerFault(Fault):
    """Base: resolve a container; each subclass says how to break it and mend it."""

    @classmethod
    def check_target(cls, target: str) -> str:
        name = target.removeprefix("container:")
        if not _NAME.match(name):
            raise target_error(target, f"cannot read {target!r} as a container",
                               "a container name or id")
        return f"container:{name}"

    @classmethod
    def resolve(cls, spec: FaultSpec, ctx: FaultContext) -> dict[str, Any]:
        api = client()
        name = spec.target.removeprefix("container:")
        try:
            container = api.containers.get(name)
        except _errors().NotFound:
            raise InvalidInput(f"no container '{name}'", source="target", field=spec.name,
                               expected="a container name or id (docker ps -a)") from None
        finally:
            api.close()
        state = container.attrs.get("State", {})
        return {"container_id": container.id, "name": container.name,
                "was_running": bool(state.get("Running")), "was_paused": bool(state.get("Paused"))}

    def touches(self) -> Resource:
        names = [f"container:{self.where['name']}", f"container:{self.where['container_id']}",
                 f"container:{str(self.where['container_id'])[:12]}"]
        return Resource(tuple(dict.fromkeys([self.check_target(self.spec.target), *names])))

    def with_container(self, action: str) -> None:
        api = client()
        try:
            container = api.containers.get(self.where["container_id"])
            self.act(action, container, api)
        except _errors().NotFound:
            if action == "inject":
                raise EnvironmentProblem(f"container {self.where['name']} is gone") from None
            # clear: the container was removed; there is nothing left to mend
        except _errors().APIError as exc:
            raise EnvironmentProblem(f"docker {action} of {self.where['name']}: {exc}") from None
        finally:
            api.close()

    def act(self, action: str, container: Any, api: Any) -> None:
        raise NotImplementedError

    def inject(self) -> None:
        self.with_container("inject")

    def clear(self) -> None:
        self.with_container("clear")

    def ensure_running(self, container: Any) -> None:
        """Bring the container back to how we found it: running and not paused."""
        container.reload()
        state = container.attrs.get("State", {})
        if state.get("Paused") and not self.where.get("was_paused"):
            container.unpause()
        elif not state.get("Running") and self.where.get("was_running"):
            container.start()


@register
class Pause(ContainerFault):
    kind = "docker.pause"
    summary = "freeze every process of a container (cgroup freezer); unpause on clear"

    def act(self, action: str, container: Any, api: Any) -> None:
        if action == "inject":
            container.reload()
            if not container.attrs["State"].get("Paused"):
                container.pause()
        else:
            self.ensure_running(container)


@register
class Stop(ContainerFault):
    kind = "docker.stop"
    summary = "stop a container (SIGTERM, then SIGKILL after the timeout); start on clear"
    params_spec: ClassVar[tuple[Param, ...]] = (
        duration("timeout", "grace period before SIGKILL", default=10.0, hi=600.0),
    )

    def act(self, action: str, container: Any, api: Any) -> None:
        if action == "inject":
            container.stop(timeout=round(float(self.spec.params.get("timeout", 10.0))))
        else:
            self.ensure_running(container)


@register
class Kill(ContainerFault):
    kind = "docker.kill"
    summary = "kill a container's main process; start the container again on clear"
    params_spec: ClassVar[tuple[Param, ...]] = (
        choice("signal", "the signal to send", SIGNALS, default="SIGKILL"),
    )

    def act(self, action: str, container: Any, api: Any) -> None:
        if action == "inject":
            container.kill(signal=str(self.spec.params.get("signal", "SIGKILL")))
        else:
            self.ensure_running(container)


@register
class Restart(ContainerFault):
    kind = "docker.restart"
    summary = "restart a container; clear makes sure it runs again"
    params_spec: ClassVar[tuple[Param, ...]] = (
        duration("timeout", "grace period before SIGKILL", default=10.0, hi=600.0),
    )

    def act(self, action: str, container: Any, api: Any) -> None:
        if action == "inject":
            container.restart(timeout=round(float(self.spec.params.get("timeout", 10.0))))
        else:
            self.ensure_running(container)


@register
class Disconnect(ContainerFault):
    kind = "docker.disconnect"
    summary = "disconnect a container from a network; reconnect (same aliases, IP) on clear"
    params_spec: ClassVar[tuple[Param, ...]] = (
        text("network", "the Docker network to cut the container from"),
    )

    @classmethod
    def resolve(cls, spec: FaultSpec, ctx: FaultContext) -> dict[str, Any]:
        where = super().resolve(spec, ctx)
        network = str(spec.params["network"])
        api = client()
        try:
            container = api.containers.get(where["container_id"])
        finally:
            api.close()
        networks = container.attrs.get("NetworkSettings", {}).get("Networks", {}) or {}
        if network in ("host", "none"):
            raise InvalidInput(f"cannot disconnect from the '{network}' network",
                               source="params", field=f"{spec.name}.network",
                               expected="a bridge or user-defined network")
        if network not in networks:
            raise InvalidInput(f"container {where['name']} is not on network '{network}'",
                               source="params", field=f"{spec.name}.network",
                               expected="one of " + (", ".join(sorted(networks)) or "(none)"))
        endpoint = networks[network] or {}
        ipam = endpoint.get("IPAMConfig") or {}
        aliases = [a for a in endpoint.get("Aliases") or []
                   if not str(where["container_id"]).startswith(a)]
        where.update(network=network, aliases=aliases,
                     ipv4_address=ipam.get("IPv4Address"), links=endpoint.get("Links"))
        return where

    def act(self, action: str, container: Any, api: Any) -> None:
        network = api.networks.get(self.where["network"])
        container.reload()
        attached = self.where["network"] in (
            container.attrs.get("NetworkSettings", {}).get("Networks", {}) or {})
        if action == "inject":
            if attached:
                network.disconnect(container)
        elif not attached:
            kwargs: dict[str, Any] = {"aliases": self.where.get("aliases") or None}
            if self.where.get("ipv4_address"):
                kwargs["ipv4_address"] = self.where["ipv4_address"]
            network.connect(container, **kwargs)
