"""``paystab drill``: runbook → stack → load → faults → detection and failover → verdict."""
