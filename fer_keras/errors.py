"""The package's error types and its one wording for a value out of a set."""

from typing import Iterable


class TrainingError(RuntimeError):
    """A run that cannot go on; the message says what to change."""


def unknown(what: str, received, expected: Iterable, hint: str = "") -> ValueError:
    """`ValueError("Unknown model 'x'. Expected one of: a, b. Received: ...")`."""
    choices = ", ".join(str(e) for e in expected)
    message = f"Unknown {what} {received!r}. Expected one of: {choices}."
    if hint:
        message += f" {hint}"
    return ValueError(message)
