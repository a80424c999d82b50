"""Train a FER2013 model: `python train.py --model cbam --backend jax`.

The checkout's way to run `fer-keras train`: the command lives in
`fer_keras/commands/train.py`.
"""

from fer_keras import cli
from fer_keras.commands.train import main

if __name__ == "__main__":
    cli.run(main)
