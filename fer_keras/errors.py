"""The package's error types and its one wording for a value out of a set."""

from typing import Iterable


class TrainingError(RuntimeError):
    """A run that cannot go on; the message says what to change."""


def unknown(what: str, received, expected: Iterable, argument: str | None = None,
            hint: str = "") -> ValueError:
    """The package's one wording for a value outside a fixed set:
    "Unknown model 'x'. Expected one of: a, b. Received: name='x'"."""
    message = f"Unknown {what} {received!r}. Expected one of: {', '.join(map(str, expected))}."
    if hint:
        message += f" {hint}"
    if argument:
        message += f" Received: {argument}={received!r}"
    return ValueError(message)


def run_command(command: str, options: str = "") -> str:
    """The one way messages name a command: the installed `fer-keras train`,
    and the script a clone of the repository has beside it."""
    tail = f" {options}" if options else ""
    return f"`fer-keras {command}{tail}` (in a clone, `python {command}.py{tail}`)"


def install_extra(extra: str) -> str:
    """The one line that installs an optional part: `pip install "fer-keras[gradcam]"`."""
    return f'pip install "fer-keras[{extra}]"'
