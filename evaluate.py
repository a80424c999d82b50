"""Evaluate trained models on the FER2013 test split.

The checkout's way to run `fer-keras evaluate`: the command lives in
`fer_keras/commands/evaluate.py`.
"""

from fer_keras import cli
from fer_keras.commands.evaluate import main

if __name__ == "__main__":
    cli.run(main)
