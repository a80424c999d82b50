"""Trains the zoo's baseline with its dropout at 0 for a few steps through
`fer_keras.training.train`, and saves each run's per-step losses, validation
results and final weights, for tests/test_devices_distributed.py:
`python tests/trajectory_run.py DATA_DIR OUT_DIR RUN [RUN ...]`.

RUN: "one" trains on one device, "two" with `distribute=True`, "hosts" as
one process of a multi-host run (`multi_host=True`; the caller starts every
process, with the KERAS_DISTRIBUTION_* variables set). Each run writes its
folder OUT_DIR/RUN and OUT_DIR/RUN.npz ("hosts": OUT_DIR/hostsI.npz, I the
process index).

Two devices: under jax from XLA_FLAGS or from the processes, set by the
caller; under tensorflow the CPU is split into two logical devices here,
before TensorFlow starts.

The batches come from `--pipeline device`, whose order is drawn by NumPy
once per epoch. tf.data's seeded shuffle draws a new order for every
iterator made from it, and tf.distribute (and Keras on several hosts) makes
one more before the first step than a run on one device: with "tfdata" the
runs see the same images in another order.
"""

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GLOBAL_BATCH = 16
STEPS = 4
# 21 of the tiny set's 112 images: two devices cannot share them evenly.
VAL_SPLIT = 0.2


def main(data_dir: str, out: Path, runs: list[str]) -> None:
    if os.environ.get("KERAS_BACKEND") == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from fer_keras import models, recipes, training

    @models.register_model("baseline_no_dropout", gradcam_layer="block3_conv",
                           description="the baseline with its dropout at 0")
    def baseline_no_dropout(**kwargs):
        # Without random masks the runs must agree step for step: the
        # replicas of a distributed step would draw masks of their own.
        model = models.baseline(**kwargs)
        for layer in model.layers:
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
        return model

    class Trajectory(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.losses, self.epochs = [], []

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float(logs["loss"]))

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append([float(logs[k]) for k in ("val_loss", "val_accuracy")])

        def on_train_end(self, logs=None):
            self.weights = [np.asarray(w) for w in self.model.get_weights()]

    recipe = recipes.get_recipe("seed").replace(
        batch_size=GLOBAL_BATCH, epochs=1, augment="none")
    for run in runs:
        trajectory = Trajectory()
        training.train(training.TrainConfig(
            model="baseline_no_dropout", recipe=recipe, data_dir=data_dir,
            output_dir=str(out / run), val_split=VAL_SPLIT, steps_per_epoch=STEPS,
            distribute=run == "two", multi_host=run == "hosts", pipeline="device",
            callbacks=[trajectory], verbose=0,
        ))
        name = run
        if run == "hosts":
            import jax

            name = f"hosts{jax.process_index()}"
        np.savez(out / f"{name}.npz", losses=np.array(trajectory.losses),
                 validation=np.array(trajectory.epochs),
                 **{f"w{i}": w for i, w in enumerate(trajectory.weights)})


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3:])
