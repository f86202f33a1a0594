"""Detection and automated failover.

``base`` holds the :class:`Detector` contract and the registry of names; one module per
detector (``failure_rate``, ``hang``, ``latency``, ``pyod_models``); ``arl`` the numerical
ARL/threshold calibration; ``ensemble`` the YAML policy of which detectors must agree;
``controller`` the drain / half-open / restore state machine over the gateway admin API
(``admin_client``); ``webhook`` the Alertmanager receiver; ``batch`` the CSV/Prometheus input
of ``paystab detect``; ``corpus`` and ``evaluation`` the labelled benchmark corpus and its
scoring (``benchmarks/detection.py``).
"""
