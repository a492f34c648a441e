"""Exceptions and the exit-code table shared by every acdkit command.

The table is DESIGN §5.  Errors are split by whose fault they are: the evidence
(TAMPERED, MALFORMED, INCOMPLETE), the invocation (USAGE), the rules (POLICY) or
the environment (IO).  Each class carries its exit code and an optional hint that
tells the user what to do next.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AcdkitError",
    "ExitCode",
    "IncompleteError",
    "InputIOError",
    "MalformedError",
    "PolicyError",
    "TamperedError",
    "UsageError",
    "error_for",
]


class ExitCode(IntEnum):
    """Process exit codes; the name is the verdict printed beside it."""

    OK = 0
    TAMPERED = 1
    USAGE = 2
    INCOMPLETE = 3
    MALFORMED = 4
    POLICY = 5
    IO = 6


class AcdkitError(Exception):
    """Root of every error acdkit raises on purpose."""

    exit_code: ExitCode = ExitCode.IO

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def verdict(self) -> str:
        return self.exit_code.name

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(AcdkitError):
    """The invocation is wrong: a bad option, a missing store, a bad time."""

    exit_code = ExitCode.USAGE


class TamperedError(AcdkitError):
    """A hash, signature or proof does not match what was sealed."""

    exit_code = ExitCode.TAMPERED


class IncompleteError(AcdkitError):
    """Something could not be covered yet, such as an unsealed tail."""

    exit_code = ExitCode.INCOMPLETE


class MalformedError(AcdkitError):
    """Input could not be parsed (kept apart from TAMPERED on purpose)."""

    exit_code = ExitCode.MALFORMED


class PolicyError(AcdkitError):
    """A rule is broken, for example an unlisted file in a bundle."""

    exit_code = ExitCode.POLICY


class InputIOError(AcdkitError):
    """Something could not be read, written or reached."""

    exit_code = ExitCode.IO


def error_for(code: ExitCode, message: str, *, hint: str | None = None) -> AcdkitError:
    """The exception class that carries ``code``, for re-raising a verdict as an error."""
    classes: dict[ExitCode, type[AcdkitError]] = {
        ExitCode.TAMPERED: TamperedError,
        ExitCode.USAGE: UsageError,
        ExitCode.INCOMPLETE: IncompleteError,
        ExitCode.MALFORMED: MalformedError,
        ExitCode.POLICY: PolicyError,
        ExitCode.IO: InputIOError,
    }
    return classes.get(code, AcdkitError)(message, hint=hint)
