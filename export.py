"""Export a trained model for serving: `python export.py --model-path M --format onnx`.

The checkout's way to run `fer-keras export`: the command lives in
`fer_keras/commands/export.py`.
"""

from fer_keras import cli
from fer_keras.commands.export import main

if __name__ == "__main__":
    cli.run(main)
