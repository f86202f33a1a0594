"""paystab: observability and chaos engineering for payment stacks.

The package is organised by capability: ``stack`` (the reference payment system under
test), ``collector`` (telemetry), ``anomaly`` (detection and failover), ``chaos`` (faults,
runbooks, the drill), ``loadtest`` (Locust), ``report`` (renderers). ``cli`` only parses
arguments and calls into them.
"""

__version__ = "0.1.0"
