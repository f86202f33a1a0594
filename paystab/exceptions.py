"""The one exception hierarchy of paystab and the exit codes it maps to.

Every error a user can cause or meet is a :class:`PaystabError`; ``cli`` catches it in one
place, prints the message (never a traceback) and exits with ``exit_code``. The codes are
the contract of ARCHITECTURE.md: 0 ok, 1 verdict fail or thresholds breached, 2 invalid
input or usage, 3 aborted or interrupted, 4 environment problem.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    INVALID_INPUT = 2
    ABORTED = 3
    ENVIRONMENT = 4


class PaystabError(Exception):
    """Base of every error paystab reports to a user."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class VerdictFailed(PaystabError):
    """A drill verdict or a load threshold did not hold (exit 1)."""

    exit_code = ExitCode.FAILED


class InvalidInput(PaystabError):
    """Bad input: a file, a field, a flag. Says where and what was expected (exit 2).

    ``source`` is the file (or "--flag", or "request body"), ``line`` the 1-based line when
    known, ``field`` a dotted/indexed path such as ``faults[2].params.latency``.
    """

    exit_code = ExitCode.INVALID_INPUT

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        self.field = field
        self.expected = expected
        where = ""
        if source:
            where = source if line is None else f"{source}:{line}"
        parts = [p for p in (where, field) if p]
        text = (": ".join(parts) + ": " if parts else "") + problem
        if expected:
            text += f" (expected {expected})"
        super().__init__(text, hint=hint)


class Aborted(PaystabError):
    """A run was stopped early: an abort condition, Ctrl-C or SIGTERM (exit 3)."""

    exit_code = ExitCode.ABORTED


class EnvironmentProblem(PaystabError):
    """Something outside paystab is missing or busy: a port, a binary, Docker (exit 4)."""

    exit_code = ExitCode.ENVIRONMENT


class Inconclusive(PaystabError):
    """The measuring apparatus, not the system under test, decided the run: the load
    generator was starved of CPU, late, or dropped arrivals (exit 4, like any environment
    problem: run again on a quieter machine, or with a lower rate)."""

    exit_code = ExitCode.ENVIRONMENT
