"""Where a drill report came from, so a filed report can be traced and re-run.

The paystab version, the host, the runbook file and the sha256 of its bytes (an edited
runbook shows as another digest), the seed and the command line. Recorded in the report's
``provenance`` section and shown by the HTML report.
"""

from __future__ import annotations

import hashlib
import platform
import socket
from pathlib import Path
from typing import Any

from paystab import __version__


def drill_provenance(runbook_file: Path, seed: int, command_line: str) -> dict[str, Any]:
    """The provenance dict of a drill of ``runbook_file`` (read again here for its digest)."""
    try:
        digest = hashlib.sha256(runbook_file.read_bytes()).hexdigest()
    except OSError:
        digest = None
    return {"paystab_version": __version__, "host": socket.gethostname(),
            "python": platform.python_version(), "runbook_file": str(runbook_file),
            "runbook_sha256": digest, "seed": seed, "command_line": command_line}
