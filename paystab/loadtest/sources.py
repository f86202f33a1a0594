"""What a load run sends: paystab's payment, a declarative flow, or a user's locustfile.

The CLI and the runbook loader ask here, before any network traffic, so a bad flow file or
locustfile is exit 2 with where it went wrong. ``--flow`` and ``-f`` exclude each other.
Importing a locustfile imports Locust (which gevent-patches the process): only the load
command calls :func:`load_locustfile`.
"""

from __future__ import annotations

from typing import Any

from paystab.exceptions import InvalidInput


def load_flow_json(flow_path: str | None, locustfile: str | None = None) -> dict[str, Any] | None:
    """The checked flow as JSON for the plan; None means paystab's own payment."""
    if flow_path and locustfile:
        raise InvalidInput("give --flow or -f, not both", source="--flow",
                           expected="a flow YAML or a locustfile")
    if not flow_path:
        return None
    from paystab.loadtest.flow import load_flow

    return load_flow(flow_path).model_dump(mode="json", by_alias=True)


def load_locustfile(locustfile: str | None, target: str | None,
                    ready_file: str | None) -> tuple[list[type[Any]] | None, str | None]:
    """The user's User classes made paced, and the target (their ``host`` if none given)."""
    if not locustfile:
        return None, target
    from paystab.loadtest.userfile import load_user_classes, paced

    classes = load_user_classes(locustfile)
    if not target and not ready_file:
        hosts = {str(c.host) for c in classes if c.host}
        if len(hosts) == 1:
            target = hosts.pop()
    return [paced(c) for c in classes], target
