"""Tell the emotion of each face in photos, folders, videos or a webcam.

The checkout's way to run `fer-keras predict`: the command lives in
`fer_keras/commands/predict.py`.
"""

from fer_keras import cli
from fer_keras.commands.predict import main

if __name__ == "__main__":
    cli.run(main)
