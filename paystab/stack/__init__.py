"""The reference payment system under test: provider simulators, gateway, routing, ledgers."""
