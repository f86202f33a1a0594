"""The Renderer contract, and the registry of renderers by name.

A renderer turns one finished :class:`~paystab.report.model.Report` into text for one
destination — ``json``, ``junit``, ``html``, ``text`` (the terminal summary without
colour). It **computes nothing**: every number it shows is already in the report (the SLO
arithmetic lives in :mod:`paystab.slo` and runs before rendering). It must not modify the
report, must give the same text for the same report, and must show a report whose optional
values are ``null`` (an aborted drill, a stack without ledgers) instead of failing.

``write_report(report, path, name)`` renders and writes atomically (temporary file, then
rename), so a half-written report never replaces a good one.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from paystab.report.model import Report


class Renderer(ABC):
    """One output format. Subclasses set ``name`` and ``suffix`` and implement ``render``."""

    name: ClassVar[str]
    suffix: ClassVar[str]  # the usual file suffix, e.g. ".html"

    @abstractmethod
    def render(self, report: Report) -> str:
        """The whole document for ``report``. Reads the report; changes nothing."""


_RENDERERS: dict[str, type[Renderer]] = {}


def register(cls: type[Renderer]) -> type[Renderer]:
    """Class decorator: make ``cls`` available as ``renderer(cls.name)``."""
    _RENDERERS[cls.name] = cls
    return cls


def _load_builtin() -> None:
    # Imported here, not at module top, so that base stays importable from each renderer.
    from paystab.report import html, json_out, junit, terminal  # noqa: F401


def renderer(name: str) -> Renderer:
    """A new renderer registered under ``name``; KeyError names the known ones."""
    _load_builtin()
    try:
        return _RENDERERS[name]()
    except KeyError:
        raise KeyError(f"no renderer {name!r}; known: {', '.join(sorted(_RENDERERS))}") from None


def renderer_names() -> list[str]:
    _load_builtin()
    return sorted(_RENDERERS)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` atomically (creating parent directories).

    Reports are for people to share: the file gets the mode any new file gets (0644 under
    the usual umask), not the 0600 of the temporary file it is renamed from. Text that UTF-8
    cannot carry (a lone surrogate read from a JSON ``\\ud800`` escape) is written escaped.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_report(report: Report, path: str | Path, name: str) -> Path:
    """Render ``report`` with the renderer ``name`` and write it to ``path``."""
    return write_text(renderer(name).render(report), path)
