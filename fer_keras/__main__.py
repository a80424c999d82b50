"""`fer-keras COMMAND [options]`, installed with the package (also `python -m fer_keras`)."""

import importlib
import sys

from fer_keras import cli
from fer_keras.commands import COMMANDS

USAGE = f"""usage: fer-keras {{{",".join(COMMANDS)}}} [options]

Facial expression recognition on FER2013 with Keras 3 (JAX, TensorFlow, PyTorch).
`fer-keras COMMAND --help` lists a command's options:

""" + "".join(f"  {name:<10} {summary}\n" for name, summary in COMMANDS.items())


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.exit(f"error: unknown command {name!r}. Expected one of: {', '.join(COMMANDS)}. "
                 "Run `fer-keras --help` for what each does.")
    command = importlib.import_module(f"fer_keras.commands.{name}")
    cli.run(lambda: command.main(rest, prog=f"fer-keras {name}"))


if __name__ == "__main__":
    main()
