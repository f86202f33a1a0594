"""The detector contract: samples in, detections out, one small registry of names.

A **Detector** watches every provider it is fed and keeps one state per provider:

* ``name`` — the registered name (``failure_rate``, ``hang``, ``latency``, ``ecod``…); the
  ensemble policy and ``paystab detect --detector`` refer to detectors by it.
* ``update(sample)`` — feed one :class:`~paystab.collector.series.Sample` (one provider, one
  interval, samples of a provider in time order). Answers a :class:`Detection` when this
  sample makes the detector alarm for ``sample.provider``, else ``None``. After answering a
  detection the detector re-arms by itself: an anomaly that persists is detected again later,
  and the caller (the failover controller) decides what a repeat means. ``update`` never
  raises on odd values (zero attempts, missing quantiles): it ignores what it cannot use.
* ``reset(provider=None)`` — clear the alarm statistics of one provider (all when ``None``):
  the controller calls it when it restores a provider, so evidence gathered before the
  drain cannot fire again. What was learned about the healthy baseline is kept.

Detectors are plain synchronous objects, not thread-safe: one owner feeds them.
:func:`register` / :func:`create` map names to a builder and its options dataclass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from paystab.collector.series import Sample
from paystab.exceptions import InvalidInput


@dataclass(frozen=True)
class Detection:
    """One alarm: ``provider`` looks anomalous to ``detector`` since ``start`` (estimated
    onset, unix s, when the detector can tell), noticed ``at`` (unix s). ``score`` >= 1 means
    past the detector's threshold (how far is detector-specific); ``reason`` is for humans."""

    provider: str
    detector: str
    at: float
    score: float
    reason: str
    start: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Detector(Protocol):
    """See the module docstring for the contract."""

    name: str

    def update(self, sample: Sample) -> Detection | None: ...

    def reset(self, provider: str | None = None) -> None: ...


_REGISTRY: dict[str, tuple[type[Any], Callable[[Any], Detector]]] = {}


def register(name: str, config_cls: type[Any], build: Callable[[Any], Detector]) -> None:
    """Make ``build(config_cls(...))`` available under ``name`` (one line per implementation).

    ``config_cls`` is a frozen dataclass of the detector's options with defaults; it is filled
    from a plain dict (a YAML file's, a command line's) by :mod:`paystab.anomaly.options`.
    """
    _REGISTRY[name] = (config_cls, build)


def _load_builtins() -> None:
    # Implementations register themselves on import; importing them here (not at module top)
    # keeps base.py free of cycles and PyOD's slow import out of processes that never use it.
    from paystab.anomaly import failure_rate, hang, latency, pyod_models, streaming  # noqa: F401


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def config_class(name: str) -> type[Any]:
    """The options dataclass of the detector registered as ``name``."""
    _load_builtins()
    entry = _REGISTRY.get(name)
    if entry is None:
        raise InvalidInput(
            f"unknown detector '{name}'", field="detector", expected="one of " + ", ".join(names())
        )
    return entry[0]


def create(name: str, options: dict[str, Any] | None = None) -> Detector:
    """A new detector registered as ``name`` with ``options``; an unknown name is an
    :class:`InvalidInput`, bad options one :class:`~paystab.config.problems.ConfigInvalid`
    naming each option as ``field`` (every problem at once)."""
    from paystab.anomaly.options import build_config

    config_cls = config_class(name)
    return _REGISTRY[name][1](build_config(config_cls, options))
