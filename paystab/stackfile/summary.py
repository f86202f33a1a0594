"""What a checked stack file describes, in a few plain lines (``paystab stack validate``)."""

from __future__ import annotations

from paystab.stackfile.load import LoadedStack


def summary_lines(loaded: LoadedStack) -> list[str]:
    spec = loaded.spec
    out = [f"{loaded.source}: valid stack file '{spec.name}'"]
    if spec.ready_file is not None:
        out.append(f"  running stack: ready file {spec.ready_file} (nothing is started)")
    if spec.service is not None:
        out.append(f"  service:    {' '.join(spec.service.command)} "
                   f"(health {spec.service.health or spec.checkout.base_url}, "
                   f"{len(spec.service.env)} env)")
    checkout = spec.checkout
    how = {"flow": f"flow '{checkout.flow.name}' ({len(checkout.flow.steps)} steps)"
                   if checkout.flow is not None else "",
           "flow_file": f"flow file {checkout.flow_file}",
           "locustfile": f"locustfile {checkout.locustfile}",
           "paystab": "paystab's payment API (POST /v1/payments)"}[checkout.kind]
    out.append(f"  checkout:   {checkout.base_url} via {how}")
    if spec.load is not None:
        out.append(f"  load:       at most {spec.load.max_rps:g} checkouts/s (runbooks peaking "
                   "higher are scaled down)")
    sims = ", ".join(f"{s.name} ({s.dialect})" for s in spec.simulators) or "none"
    out.append(f"  simulators: {sims}")
    if spec.telemetry is not None:
        sources = ", ".join(f"{s.kind} {s.name}" for s in spec.telemetry.sources)
        out.append(f"  telemetry:  {sources}; detectors {', '.join(spec.telemetry.detectors)}")
    else:
        out.append("  telemetry:  none (detection and failover hypotheses: not applicable)")
    actuators = spec.failover.actuators if spec.failover is not None else []
    if actuators:
        dry = " (dry run)" if spec.failover is not None and spec.failover.dry_run else ""
        out.append(f"  failover:   {', '.join(a.kind + ' ' + a.name for a in actuators)}{dry}")
    else:
        out.append("  failover:   none (failover hypotheses: not applicable)")
    if spec.ledgers is not None:
        psp = ", ".join(p.kind for p in spec.ledgers.psp)
        out.append(f"  ledgers:    merchant {spec.ledgers.merchant.kind}; psp {psp}")
    else:
        out.append("  ledgers:    none (reconciliation hypotheses: not applicable)")
    if spec.faults.allow:
        out.append(f"  blast radius beyond the simulators: {', '.join(spec.faults.allow)}")
    return out
