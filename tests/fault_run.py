"""Runs `train.py` and kills itself with SIGKILL at one chosen moment, for
tests/test_faults.py: `python tests/fault_run.py MOMENT train.py-options...`.

Moments: "step" (inside a training step of the second epoch), "backup"
(halfway through writing the second epoch's backup), "best" (halfway through
writing the best model). Halfway means the file being written holds half its
bytes when the process dies, as a kill during the write leaves it.
"""

import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _cut_short_and_die(path):
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _die()


def main(moment: str, argv: list[str]) -> None:
    from fer_keras import cli

    cli.select_backend(argv)
    import keras

    if moment == "step":
        class KillInStep(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if self._epoch == 1 and batch == 1:
                    _die()

            def on_epoch_begin(self, epoch, logs=None):
                self._epoch = epoch

        from fer_keras import training

        original = training.TrainConfig.__init__

        def with_killer(self, *args, **kwargs):
            original(self, *args, **kwargs)
            self.callbacks = [*self.callbacks, KillInStep()]

        training.TrainConfig.__init__ = with_killer
    elif moment == "backup":
        save_weights = keras.Model.save_weights
        calls = []

        def save_then_die(self, filepath, *args, **kwargs):
            save_weights(self, filepath, *args, **kwargs)
            calls.append(filepath)
            if len(calls) == 2:
                _cut_short_and_die(filepath)

        keras.Model.save_weights = save_then_die
    elif moment == "best":
        save = keras.Model.save

        def save_then_die(self, filepath, *args, **kwargs):
            save(self, filepath, *args, **kwargs)
            _cut_short_and_die(filepath)

        keras.Model.save = save_then_die
    else:
        sys.exit(f"unknown moment {moment!r}; expected step, backup or best")

    import train

    train.main(argv)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
