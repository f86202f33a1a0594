"""Constants and helpers shared by the detection benchmark's parts."""

from __future__ import annotations

from typing import Any

import numpy as np

from paystab.stats_math import percentile

RATES = (10, 100, 1000)
SHIFTS = (0.02, 0.05, 0.2, 1.0)
WARMUP_S = {10: 7200, 100: 3600, 1000: 1800}
H0_DAYS = {10: 100.0, 100: 20.0, 1000: 5.0}
GATEWAY_TIMEOUT_S = 2.0
TARGETS = {"ratio_max": 1.5, "false_alarms_per_24h_max": 1.0,
           "hang_delay_max_s": GATEWAY_TIMEOUT_S / 2, "must_not_alarm": 0, "us_per_obs_max": 2.0,
           "worst_observe_ms_max": 1.0, "recall_1_from_shift": 0.05}
OPTIMUM_HORIZON_H = 24.0  # the yardstick: the optimal CUSUM at one false alarm per day
VOLUMES = (1, 5, 50, 300, 1000)  # the noisy corpus: mean attempts/s of one provider
NOISY_DAYS = {1: 30.0, 5: 20.0, 50: 8.0, 300: 3.0, 1000: 2.0}
NOISY_WARM_S = 4 * 3600  # a change comes 4-5 h into the provider's traffic
PEERS = {"psp-a": 80.0, "psp-b": 120.0, "psp-c": 60.0, "psp-d": 200.0}  # median latency ms


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def _summary(delays: list[float], episodes: int, false_alarms: int) -> dict[str, Any]:
    detected = len(delays)
    return {
        "episodes": episodes, "detected": detected,
        "median_delay_s": percentile(delays, 50), "p90_delay_s": percentile(delays, 90),
        "mean_delay_s": float(np.mean(delays)) if delays else None,
        "max_delay_s": max(delays) if delays else None,
        "recall": detected / episodes if episodes else None,
        "precision": detected / (detected + false_alarms) if detected + false_alarms else None,
    }
