"""The commands of `fer-keras` (train, evaluate, predict, export, demo).

Each module's `main(argv, prog)` parses its arguments, chooses the Keras
backend before Keras is imported, and calls the package. `fer_keras.__main__`
dispatches the installed `fer-keras COMMAND`; `train.py` and the other
scripts of a checkout call the same functions.
"""

COMMANDS = ("train", "evaluate", "predict", "export", "demo")
