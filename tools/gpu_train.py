"""Train one model on a lent GPU machine: no FER2013 folder, no network, no TensorFlow.

`python tools/gpu_train.py --pack fer2013_train.npz --output-dir OUT`
(on the machine itself: `bash tools/gpu_run.sh`; docs/gpu_run.md says how)

Trains `--model` (default vgg) with `--recipe` (default crop44) for 100
epochs, with the augmentation inside the compiled training step
(`--pipeline device`, which needs no TensorFlow under jax), mixed precision
where the device computes it, and a batch of 256 to give a large GPU work,
the learning rate scaled with the batch. The images come from a pack
(tools/pack_data.py), decoded to the arrays `load_split` gives, so a seed
holds out the same validation images as a CPU run on the folder does.

The output folder holds what a run folder holds (`model.keras`, `run.json`,
`history.csv`, and `curves.png` where matplotlib is installed). Its
`model.keras` is stored as the shipped models are, float16 weights computing
in float32: half the size (12.2 MiB for vgg against 27), under the 16 MiB per
file a lent machine sends back, and free of the run's mixed-precision policy.
`--time-limit` ends training after the last epoch that fits, so a machine
that is taken back on the minute still leaves a finished run folder.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "tools"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from pack_data import read_pack  # noqa: E402

from fer_keras import cli  # noqa: E402

DEFAULT_MODEL = "vgg"
DEFAULT_RECIPE = "crop44"
DEFAULT_EPOCHS = 100
# Four times the recipes' 64: about 100 fuller steps an epoch for a large GPU
# (not timed on one yet), well within the batches where scaling the learning
# rate linearly holds (Goyal et al., 2017).
DEFAULT_BATCH_SIZE = 256


def scaled_lr(lr: float, batch_size: int, recipe_batch_size: int) -> float:
    """The recipe's rate scaled with the batch (the linear scaling rule): each
    step then moves the weights as far per image as the recipe's steps did."""
    return lr * batch_size / recipe_batch_size


def make_time_limit(limit_s: float, start: float, clock=time.monotonic):
    """A callback that ends `fit` after the last epoch ending within `limit_s`
    seconds of `start` (a `clock` reading), judging the next epoch by the last.

    It also prints, after the second epoch (the first one compiles), when the
    whole run would end, so a run that cannot fit says so early.
    """
    import keras

    class TimeLimit(keras.callbacks.Callback):
        stopped_after = None

        def on_train_begin(self, logs=None):
            self._last = clock()
            self._epochs_seen = 0

        def on_epoch_end(self, epoch, logs=None):
            now = clock()
            took, self._last = now - self._last, now
            self._epochs_seen += 1
            epochs = self.params.get("epochs") or epoch + 1
            elapsed = now - start
            if self._epochs_seen == 2:
                print(f"Time: {elapsed:.0f} s after epoch {epoch + 1}, {took:.1f} s an "
                      f"epoch: all {epochs} epochs end at about "
                      f"{elapsed + (epochs - epoch - 1) * took:.0f} s "
                      f"(--time-limit {limit_s:.0f} s).", flush=True)
            if epoch + 1 < epochs and elapsed + took > limit_s:
                self.stopped_after = epoch + 1
                self.model.stop_training = True
                print(f"Stopping after epoch {epoch + 1} of {epochs}: another "
                      f"{took:.1f} s epoch would end past --time-limit {limit_s:.0f} s.",
                      flush=True)

    return TimeLimit()


def store_as_shipped(path: Path) -> None:
    """Rewrites the model at `path` as the shipped models are stored: float32
    layers (whatever mixed precision trained them), float16 weights."""
    from fer_keras import compact
    from fer_keras.loading import load_model
    from fer_keras.models import float32_copy

    # The trained model's own layers (an inference zoom included), in float32.
    plain = float32_copy(load_model(path))
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        full = Path(tmp) / "full.keras"
        plain.save(full)
        os.replace(compact.save_float16(full, Path(tmp) / "half.keras"), path)


def main(argv=None) -> None:
    start = time.monotonic()
    argv = sys.argv[1:] if argv is None else argv
    backend = cli.select_backend(argv)

    from fer_keras import MODELS, recipes, training
    from fer_keras.data import DataError
    from fer_keras.runinfo import device_description

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_backend_argument(parser)
    parser.add_argument("--pack", required=True,
                        help="the training split packed by tools/pack_data.py")
    parser.add_argument("--output-dir", required=True,
                        help="run folder: model.keras, run.json, history.csv")
    parser.add_argument("--model", choices=MODELS, default=DEFAULT_MODEL)
    parser.add_argument("--recipe", choices=list(recipes.RECIPES), default=DEFAULT_RECIPE)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--lr", type=float,
                        help="peak learning rate (default: the recipe's, times "
                        "batch size / the recipe's batch size)")
    parser.add_argument("--warmup-epochs", type=int, help="(default: the recipe's)")
    parser.add_argument("--val-split", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1,
                        help="draws the validation split (default 1: the split of the "
                        "shipped cbam and of the long CPU runs, to compare with them)")
    parser.add_argument("--steps-per-epoch", type=int, help="for quick runs")
    parser.add_argument("--mixed-precision", default="auto",
                        choices=("auto", "bfloat16", "float16", "off"),
                        help="auto (default): float16 on a GPU, else as train.py")
    parser.add_argument("--inference-zoom", type=cli.zoom_choice, default="recipe",
                        metavar="{recipe,none,FRACTION}",
                        help="centre share of the image the model sees at inference "
                        "(default: the recipe's, as train.py)")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="stop after the last epoch that ends within this many "
                        "seconds of the start (default: none)")
    args = parser.parse_args(argv)

    base = recipes.get_recipe(args.recipe)
    lr = args.lr or scaled_lr(base.lr, args.batch_size, base.batch_size)
    recipe = base.replace(epochs=args.epochs, batch_size=args.batch_size, lr=lr,
                          warmup_epochs=args.warmup_epochs)
    pack = Path(args.pack)
    out = Path(args.output_dir)
    print(f"{args.model}, recipe {args.recipe} ({recipe.epochs} epochs, batch "
          f"{recipe.batch_size}, lr {recipe.lr:g}), {backend} on {device_description()}",
          flush=True)
    try:
        images, labels = read_pack(pack)
    except DataError as err:
        sys.exit(f"error: {err}")
    print(f"Read {len(labels)} images from {pack} in {time.monotonic() - start:.1f} s "
          "since the start.", flush=True)

    time_limit = args.time_limit and make_time_limit(args.time_limit, start)
    summary = training.train(training.TrainConfig(
        model=args.model, recipe=recipe, recipe_name=args.recipe, data_dir=str(pack),
        output_dir=str(out), val_split=args.val_split, seed=args.seed,
        steps_per_epoch=args.steps_per_epoch, mixed_precision=args.mixed_precision,
        inference_zoom=args.inference_zoom, pipeline="device", verbose=2,
        command=["tools/gpu_train.py", *argv],
        callbacks=[time_limit] if time_limit else [], train_arrays=(images, labels),
    ))
    run_path = out / "run.json"
    run = json.loads(run_path.read_text())
    if run.get("model_file"):
        return  # A finished run found again: train() said so, nothing to redo.
    store_as_shipped(out / "model.keras")
    stopped = time_limit and time_limit.stopped_after
    if stopped:
        run["status"] = (f"stopped by --time-limit after epoch {stopped} of "
                         f"{recipe.epochs}: the schedule had not ended")
    run.update({
        "pack": {"path": str(pack), "bytes": pack.stat().st_size, "images": len(labels)},
        "model_file": "float16 weights, float32 layers (fer_keras.compact)",
        "time_limit_s": args.time_limit,
        "wall_time_s": round(time.monotonic() - start, 1),
    })
    run_path.write_text(json.dumps(run, indent=2))
    print(f"{run['status']}: best validation accuracy {summary['best_val_accuracy']:.4f} "
          f"at epoch {summary['best_epoch']}, {run['wall_time_s']:.0f} s in all; "
          f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}", flush=True)


if __name__ == "__main__":
    cli.run(main)
