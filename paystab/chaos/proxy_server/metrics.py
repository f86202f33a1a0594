"""The proxy's own Prometheus metrics, read from its state when scraped.

Counting on the data path would cost a lock and a label lookup per chunk; instead every
link keeps a plain integer and this collector sums them (plus the totals of closed
connections) at scrape time. It is registered in the server's own ``CollectorRegistry``,
never the process-global one, so several servers (and the gateway) can share a process.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from paystab.chaos.proxy_server.collection import ProxyCollection
from paystab.chaos.proxy_server.spec import STREAMS
from paystab.chaos.proxy_server.toxics import toxic_types
from paystab.collector.names import (
    PROXY_BYTES_TOTAL,
    PROXY_CONNECTIONS_OPEN,
    PROXY_CONNECTIONS_TOTAL,
    PROXY_TOXICS_ACTIVE,
)


class ProxyMetrics(Collector):
    """Connections, bytes and toxics of every proxy of one collection."""

    def __init__(self, collection: ProxyCollection) -> None:
        self.collection = collection

    def collect(self) -> Iterable[Metric]:
        accepted = CounterMetricFamily(
            PROXY_CONNECTIONS_TOTAL, "TCP connections accepted by the proxy.", labels=["proxy"]
        )
        open_now = GaugeMetricFamily(
            PROXY_CONNECTIONS_OPEN, "Connections the proxy holds open now.", labels=["proxy"]
        )
        moved = CounterMetricFamily(
            PROXY_BYTES_TOTAL,
            "Bytes read by the proxy; upstream = client to server, downstream = back.",
            labels=["proxy", "direction"],
        )
        toxics = GaugeMetricFamily(
            PROXY_TOXICS_ACTIVE, "Toxics set on the proxy, by type.", labels=["proxy", "type"]
        )
        types = toxic_types()
        for proxy in list(self.collection.proxies.values()):
            accepted.add_metric([proxy.name], proxy.accepted_total)
            open_now.add_metric([proxy.name], len(proxy.connections))
            for direction in STREAMS:
                moved.add_metric([proxy.name, direction], proxy.bytes_total(direction))
            counts = proxy.toxic_type_counts()
            for toxic_type in types:
                toxics.add_metric([proxy.name, toxic_type], counts.get(toxic_type, 0))
        return [accepted, open_now, moved, toxics]
