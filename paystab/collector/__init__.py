"""Telemetry: OpenTelemetry SDK setup, redaction, Prometheus exposition, per-provider series."""
