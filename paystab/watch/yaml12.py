"""YAML 1.2 reading for the watch config: now shared by every config file in
:mod:`paystab.config.yaml12`; the names stay importable from here."""

from __future__ import annotations

from paystab.config.yaml12 import (
    Loc,
    Yaml12Loader,
    line_of,
    load_file_with_lines,
    load_with_lines,
    loc_text,
)

__all__ = ["Loc", "Yaml12Loader", "line_of", "load_file_with_lines", "load_with_lines", "loc_text"]
