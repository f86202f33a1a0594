"""A standalone failover process: Alertmanager's webhook in, drains through the gateway out.

``paystab watch receiver --gateway URL`` (also ``python -m paystab.alerting.receiver``, the
same click command) runs paystab's Alertmanager webhook
receiver (:mod:`paystab.anomaly.webhook`) in front of a failover controller
(:mod:`paystab.anomaly.controller`) that talks to the gateway admin API, and — unless
``--no-detect`` — also feeds the controller from the gateway's ``/metrics`` every
``--interval``, so the detectors act on their own and drained providers are probed
half-open and restored. The compose stack in ``deploy/`` runs it next to the gateway.
Every decision is printed as one JSON line. The one token (the gateway's admin token, and
the bearer token Alertmanager must send off loopback) comes from ``PAYSTAB_TOKEN`` only.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence

from paystab.exceptions import ExitCode, InvalidInput, PaystabError
from paystab.net import is_loopback_host


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidInput(f"{text!r} is not HOST:PORT", source="--listen",
                           expected="127.0.0.1:9095")
    return host.strip("[]") or "127.0.0.1", int(port)


def serve(gateway_url: str, listen: str, token: str | None, detect: bool, interval_s: float,
          stop: threading.Event) -> None:
    """Run until ``stop`` is set; raise PaystabError on bad input or a busy port."""
    from prometheus_client import CollectorRegistry

    from paystab.anomaly.admin_client import GatewayAdmin
    from paystab.anomaly.controller import FailoverController, FailoverEvent, watch
    from paystab.anomaly.webhook import WebhookServer
    from paystab.collector.sampler import metrics_url_source

    def announce(event: FailoverEvent) -> None:
        print(json.dumps(event.to_json()), flush=True)

    host, port = _listen(listen)
    registry = CollectorRegistry()  # served on /metrics: detections, decisions, scores
    controller = FailoverController(GatewayAdmin(gateway_url, token), on_event=announce,
                                    registry=registry)
    # on loopback Alertmanager needs no token; elsewhere it must send the same bearer token
    loopback = is_loopback_host(host)
    server = WebhookServer(controller, host, port, None if loopback else token,
                           registry=registry).start()
    print(json.dumps({"listening": server.url, "gateway": gateway_url, "detect": detect}),
          flush=True)
    try:
        if detect:
            source = metrics_url_source(gateway_url.rstrip("/") + "/metrics", token=token)
            watch(source, controller, stop, interval_s=interval_s)
        stop.wait()
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m paystab.alerting.receiver``: the ``paystab watch receiver`` command."""
    import click

    from paystab.cli.watch_cmds import receiver

    try:
        receiver.main(args=list(sys.argv[1:] if argv is None else argv),
                      prog_name="python -m paystab.alerting.receiver", standalone_mode=False)
    except PaystabError as exc:
        print(f"paystab: {exc.render()}", file=sys.stderr)
        return int(exc.exit_code)
    except click.exceptions.Abort:
        return int(ExitCode.ABORTED)
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.INVALID_INPUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
