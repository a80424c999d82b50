"""A local web page that tells the emotions of the faces in a photo: `python demo.py`.

The checkout's way to run `fer-keras demo`: the command lives in
`fer_keras/commands/demo.py`.
"""

from fer_keras import cli
from fer_keras.commands.demo import main

if __name__ == "__main__":
    cli.run(main)
