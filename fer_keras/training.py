"""Training: a Keras `fit` with callbacks that make long runs safe to interrupt.

A run folder holds `model.keras` (best validation accuracy), `history.csv`,
`curves.png` (where matplotlib is installed), `run.json` and, while
training, `backup/` (Keras' `BackupAndRestore`). Starting a run again with
the same folder resumes after the last finished epoch.

Two input pipelines feed `fit`: "tfdata" augments in a `tf.data` pipeline on
the host, beside the training step (what a CPU wants: the two overlap);
"device" feeds the arrays as they are and augments inside the training step
on the device that trains (what a GPU or TPU wants), with no TensorFlow.
"""

import csv
import dataclasses
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

import keras

from fer_keras import data as fer_data
from fer_keras.checkpoint import CommittedCheckpoint, read_checkpoint_state
from fer_keras.augment import AugmentedModel, build_augmentation
from fer_keras.classes import CLASS_NAMES
from fer_keras.loading import load_model, pretrained_path, source_run
from fer_keras.models import DEFAULT_DATA_FORMAT, build_model, copy_weights, resolve_data_format
from fer_keras.plots import plot_curves
from fer_keras.recipes import OPTIMIZERS, SCHEDULES, Recipe
from fer_keras.runinfo import accelerators, cpu_has_bfloat16, environment_info


PIPELINES: tuple[str, ...] = ("tfdata", "device")


class TrainingError(RuntimeError):
    """A run that cannot go on; the message says what to change."""


@dataclasses.dataclass
class TrainConfig:
    """Everything one run needs besides the recipe."""

    model: str = "cbam"
    recipe: Recipe = dataclasses.field(default_factory=Recipe)
    recipe_name: str = "seed"
    data_dir: str | None = None
    output_dir: str = "runs/cbam"
    val_split: float = 0.1
    folds: int = 1
    steps_per_epoch: int | None = None
    mixed_precision: str | None = None
    seed: int = 0
    distribute: bool = False
    backup_every: int | None = None
    checkpoint: str | None = None
    checkpoint_every: int = 1
    init_from: str | None = None
    pipeline: str = "tfdata"
    data_format: str = "auto"
    verbose: int | str = "auto"
    command: Sequence[str] | None = None
    callbacks: Sequence[keras.callbacks.Callback] = ()
    # The training split already in memory, as `fer_data.load_split` returns
    # it (uint8 images (N, 48, 48, 1), labels (N,)): for a machine that has
    # no FER2013 folder but a packed copy (tools/pack_data.py). `data_dir`
    # then only names the source in run.json.
    train_arrays: tuple[np.ndarray, np.ndarray] | None = None


class EpochStats(keras.callbacks.Callback):
    """Adds the epoch's wall time and learning rate to the logs, for the CSV."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_time_s"] = time.perf_counter() - self._start
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )


class CurvesPlot(keras.callbacks.Callback):
    """Redraws curves.png from history.csv after each epoch, so a long run
    (or an interrupted one) shows its progress, not only a finished one."""

    def __init__(self, history_path: Path, title: str):
        super().__init__()
        self.history_path = Path(history_path)
        self.title = title

    def on_epoch_end(self, epoch, logs=None):
        history = _read_history(self.history_path)
        if history:
            _draw_curves(history, self.history_path.parent / "curves.png", self.title)


def _draw_curves(history: list[dict], path: Path, title: str) -> None:
    """Draws curves.png where matplotlib is installed, else warns and goes on.

    The curves only picture history.csv, which every run writes, so a machine
    without matplotlib (a bare GPU image) trains all the same.
    """
    try:
        plot_curves(history, path, title=title)
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] != "matplotlib":
            raise
        warnings.warn(
            f"matplotlib is not installed, so {path.name} is not drawn; the "
            f"curves are in {path.with_name('history.csv')}. pip install "
            "matplotlib to get the picture.",
            stacklevel=2,
        )


class SaveBestModel(keras.callbacks.Callback):
    """Saves `model` whenever `monitor` beats its best value so far.

    The model to save is named, not taken from `fit`, so a training harness
    (`AugmentedModel`) never lands in the file; the file is written beside
    the old one and renamed over it, so an interrupt leaves no half file.
    `save_as`, a model of the same zoo entry in another layout, receives the
    weights and is saved instead: files stay channels-last whatever layout
    trained them.
    """

    def __init__(self, path: Path, model: keras.Model, monitor: str = "val_accuracy",
                 best: float | None = None, save_as: keras.Model | None = None):
        super().__init__()
        self.path = Path(path)
        self.saved_model = model
        self.monitor = monitor
        self.best = best
        self.save_as = save_as

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or (self.best is not None and not float(value) > self.best):
            return
        partial = self.path.with_name(f"{self.path.stem}.partial.keras")
        if self.save_as is None:
            self.saved_model.save(partial)
        else:
            copy_weights(self.saved_model, self.save_as)
            self.save_as.save(partial)
        os.replace(partial, self.path)
        self.best = float(value)


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Stops at the first non-finite loss and remembers where, to say so."""

    nan_at = None

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nan_at = batch
        super().on_batch_end(batch, logs)


def learning_rate_schedule(recipe: Recipe, steps_per_epoch: int):
    """The constant rate, or cosine decay after a linear warm-up, per step."""
    if recipe.schedule not in SCHEDULES:
        raise ValueError(
            f"Unknown schedule {recipe.schedule!r}. Expected one of: {SCHEDULES}."
        )
    if recipe.schedule == "constant":
        return recipe.lr
    total = max(1, recipe.epochs * steps_per_epoch)
    warmup = min(recipe.warmup_epochs * steps_per_epoch, total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.lr if warmup == 0 else 0.0,
        decay_steps=total - warmup,
        warmup_target=recipe.lr if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(recipe: Recipe, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The recipe's optimizer; L2 for adam/sgd is added to the weights instead."""
    lr = learning_rate_schedule(recipe, steps_per_epoch)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=lr, momentum=recipe.momentum, nesterov=True
        )
    raise ValueError(
        f"Unknown optimizer {recipe.optimizer!r}. Expected one of: {OPTIMIZERS}."
    )


def add_l2(model: keras.Model, weight_decay: float) -> None:
    """PyTorch-style coupled weight decay: L2 on every trainable kernel.

    `weight_decay` means what it means in `torch.optim` (the gradient gets
    `weight_decay * w`), hence the factor 1/2. The penalty sits on the
    variables, not in the layer configs, so saved models stay plain.
    """
    if weight_decay <= 0:
        return
    l2 = keras.regularizers.L2(weight_decay / 2.0)
    for variable in model.trainable_weights:
        if len(variable.shape) > 1:
            variable.regularizer = l2


def init_source(init_from: str, model_name: str) -> Path:
    """The `.keras` file `init_from` names: a path, or "pretrained" for the shipped one."""
    if init_from == "pretrained":
        return pretrained_path(model_name)
    return Path(init_from)


def check_same_split(path: Path, seed: int, val_split: float) -> None:
    """Refuses to validate a started model on images it was trained on.

    The seed and the fraction draw the validation split; another draw would
    put the source model's training images into this run's validation set
    and inflate its accuracy.
    """
    run = source_run(path)
    if not run or "seed" not in run:
        return
    if run.get("fold"):
        raise TrainingError(
            f"--init-from {path} is fold {run['fold']} of a {run['folds']}-fold "
            "cross-validation: it trained on images that any validation split of "
            "this run would hold. Start from a model trained with --folds 1."
        )
    trained_with = (run["seed"], run.get("val_split", 0.1))
    source = "--seed {} --val-split {}".format(*trained_with)
    if trained_with != (seed, val_split):
        raise TrainingError(
            f"--init-from {path} was trained with {source}; this run has --seed {seed} "
            f"--val-split {val_split}, so its validation images would include images "
            f"that model trained on. Pass {source}."
        )


def init_weights(model: keras.Model, path: Path, model_name: str) -> None:
    """Starts `model` from the weights of the saved `model_name` model at `path`.

    Fine-tuning and a second learning-rate cycle (warm restart) both start here;
    the optimizer starts fresh. A resumed run still continues from its backup.
    """
    source = load_model(path, num_classes=model.outputs[0].shape[-1])
    expected = [tuple(w.shape) for w in model.weights]
    received = [tuple(w.shape) for w in source.weights]
    if expected != received:
        raise TrainingError(
            f"--init-from {path} is not a {model_name!r} model: its weights have "
            f"shapes {received[:3]}... ({len(received)} in all), expected "
            f"{expected[:3]}... ({len(expected)}). Pass a model.keras trained "
            f"with --model {model_name}."
        )
    model.set_weights(source.get_weights())


def _one_hot(dataset, num_classes):
    import tensorflow as tf

    def convert(*batch):
        return (batch[0], tf.one_hot(batch[1], num_classes), *batch[2:])

    return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)


def _read_history(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _truncate_history(path: Path, epochs_done: int) -> list[dict]:
    """Keeps the rows of finished epochs, so a resumed run has no gap or repeat."""
    rows = _read_history(path)
    kept = [r for r in rows if int(r["epoch"]) < epochs_done]
    if len(kept) != len(rows):
        _write_history(path, kept)
    return kept


def _write_history(path: Path, rows: list[dict]) -> None:
    partial = path.with_name(f"{path.name}.partial")
    with open(partial, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    os.replace(partial, path)


def _checkpoint_identity(config: TrainConfig) -> dict:
    """What a checkpoint must share with the run that continues from it."""
    return {
        "model": config.model,
        "recipe_name": config.recipe_name,
        "recipe": config.recipe.to_dict(),
        "seed": config.seed,
        "val_split": config.val_split,
    }


def _flat(identity: dict) -> dict:
    recipe = {f"recipe.{k}": v for k, v in (identity.get("recipe") or {}).items()}
    return {**{k: v for k, v in identity.items() if k != "recipe"}, **recipe}


def check_checkpoint(path: Path, config: TrainConfig) -> dict:
    """The state of the checkpoint at `path`, if this run may continue from it.

    A checkpoint continues only the run that wrote it: another model, recipe,
    seed or validation split would change what the schedule and the split
    mean, so each difference is refused with the value to pass.
    """
    state = read_checkpoint_state(path)
    expected = _flat(_checkpoint_identity(config))
    held = _flat({k: state.get(k) for k in ("model", "recipe_name", "recipe", "seed", "val_split")})
    different = [k for k in expected if held.get(k) != expected[k]]
    if different:
        raise TrainingError(
            f"--checkpoint {path} belongs to another run: it was written with "
            + ", ".join(f"{k}={held.get(k)!r}" for k in different)
            + "; this run has "
            + ", ".join(f"{k}={expected[k]!r}" for k in different)
            + ". Pass the options of the run that wrote it, or another --checkpoint path."
        )
    return state


def _epochs_done(backup_dir: Path) -> int:
    meta = backup_dir / "training_metadata.json"
    if not meta.exists():
        return 0
    return int(json.loads(meta.read_text())["epoch"])


def auto_precision(devices: list[str], cpu_bfloat16: bool) -> str:
    """The dtype policy `--mixed-precision auto` picks for these devices.

    float16 on GPUs, bfloat16 on TPUs and on CPUs with native bfloat16;
    float32 on other CPUs, where emulated bfloat16 measured 2.4x slower.
    """
    if devices:
        return "mixed_bfloat16" if "TPU" in devices[0].upper() else "mixed_float16"
    return "mixed_bfloat16" if cpu_bfloat16 else "float32"


def _set_precision(mixed_precision: str | None) -> str:
    if mixed_precision in (None, "", "off", "float32"):
        policy = "float32"
    elif mixed_precision == "auto":
        policy = auto_precision(accelerators(), cpu_has_bfloat16())
    elif mixed_precision in ("bfloat16", "float16"):
        policy = f"mixed_{mixed_precision}"
    else:
        raise ValueError(
            "`mixed_precision` must be one of off, auto, bfloat16, float16. "
            f"Received: mixed_precision={mixed_precision!r}"
        )
    keras.config.set_dtype_policy(policy)
    return policy


def _distribution_scope(distribute: bool):
    """A context to build and compile the model in, for several devices."""
    import contextlib

    if not distribute:
        return contextlib.nullcontext()
    backend = keras.backend.backend()
    if backend == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        return contextlib.nullcontext()
    if backend == "tensorflow":
        import tensorflow as tf

        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
        except (ValueError, RuntimeError):
            strategy = tf.distribute.MirroredStrategy()
        return strategy.scope()
    raise TrainingError(
        "Training on several devices is supported under the jax and tensorflow "
        f"backends. Received: backend={backend!r}; use --backend jax or "
        "--backend tensorflow, or drop --distribute."
    )


def _split_counts(labels) -> dict:
    return {"total": int(len(labels)), **fer_data.class_counts(labels)}


def train(config: TrainConfig) -> dict:
    """Trains one model, or `config.folds` models for cross-validation.

    Returns the run summary that is also written to `run.json`.
    """
    if config.pipeline not in PIPELINES:
        raise ValueError(
            f"Unknown pipeline {config.pipeline!r}. Expected one of: "
            f"{', '.join(PIPELINES)}. Received: pipeline={config.pipeline!r}"
        )
    resolve_data_format(config.data_format)
    if config.folds > 1:
        if config.checkpoint:
            raise TrainingError(
                "--checkpoint keeps one run's weights; cross-validation trains "
                f"{config.folds} models. Drop --checkpoint or --folds."
            )
        return _cross_validate(config)
    data_dir, images, labels = _training_split(config)
    train_idx, val_idx = fer_data.train_val_split(labels, config.val_split, config.seed)
    return _fit_one(config, data_dir, images, labels, train_idx, val_idx)


def _training_split(config: TrainConfig) -> tuple[str | Path, np.ndarray, np.ndarray]:
    """(source, images, labels): `config.train_arrays`, else read from `data_dir`."""
    if config.train_arrays is None:
        data_dir = fer_data.locate_data(config.data_dir)
        return (data_dir, *fer_data.load_split(data_dir, "train"))
    images, labels = config.train_arrays
    images, labels = np.asarray(images), fer_data._check_labels(labels)
    expected = (fer_data.IMAGE_SIZE, fer_data.IMAGE_SIZE, 1)
    if images.dtype != np.uint8 or images.shape[1:] != expected or len(images) != len(labels):
        raise ValueError(
            "`train_arrays` must be (images, labels) as `load_split` returns them: "
            f"uint8 images of shape (N, {', '.join(map(str, expected))}) and N labels. "
            f"Received: images of shape {images.shape} and dtype {images.dtype}, "
            f"labels of shape {labels.shape}"
        )
    return config.data_dir or "in-memory arrays", images, labels


def _cross_validate(config: TrainConfig) -> dict:
    data_dir, images, labels = _training_split(config)
    folds = fer_data.kfold_splits(labels, config.folds, config.seed)
    results = []
    for i, (train_idx, val_idx) in enumerate(folds, start=1):
        print(f"Fold {i}/{config.folds}")
        fold_config = dataclasses.replace(
            config, output_dir=str(Path(config.output_dir) / f"fold{i}")
        )
        results.append(
            _fit_one(fold_config, data_dir, images, labels, train_idx, val_idx, fold=i)
        )
    accuracies = np.array([r["best_val_accuracy"] for r in results])
    summary = {
        "folds": config.folds,
        "val_accuracy_per_fold": accuracies.tolist(),
        "val_accuracy_mean": float(accuracies.mean()),
        "val_accuracy_std": float(accuracies.std(ddof=1)) if len(accuracies) > 1 else 0.0,
        "model": config.model,
        "recipe": config.recipe.to_dict(),
        "command": list(config.command or sys.argv),
        **environment_info(),
    }
    out = Path(config.output_dir)
    (out / "cv.json").write_text(json.dumps(summary, indent=2))
    print(
        f"{config.folds}-fold validation accuracy: "
        f"{summary['val_accuracy_mean']:.4f} +/- {summary['val_accuracy_std']:.4f}"
    )
    return summary


@dataclasses.dataclass
class FitSetup:
    """What `fit` needs for one run, as `prepare_fit` made it."""

    model: keras.Model
    trainer: keras.Model
    train_data: object
    val_data: object
    steps_per_epoch: int
    validation_batch_size: int | None
    class_weight: dict[int, float] | None
    dtype_policy: str
    data_format: str
    init_path: Path | None


def full_epoch_steps(num_train: int, batch_size: int) -> int:
    """Steps of one pass over the training images: full batches only, as the
    pipelines cut them."""
    return max(1, int(num_train) // int(batch_size))


def prepare_fit(config: TrainConfig, images: np.ndarray, labels: np.ndarray,
                train_idx: np.ndarray, val_idx: np.ndarray) -> FitSetup:
    """Seeds, precision, input pipelines, class weights and the compiled model.

    `train` fits what this returns; benchmarks/bench_time_to_accuracy.py
    times the same objects, so it measures what a run does. `model` is the
    zoo model (the one to save); `trainer` is what `fit` trains: `model`
    itself, or `model` behind its augmentation under the "device" pipeline.
    """
    recipe = config.recipe
    keras.utils.set_random_seed(config.seed)
    policy = _set_precision(config.mixed_precision)
    num_classes = len(CLASS_NAMES)

    on_device = config.pipeline == "device"
    steps = config.steps_per_epoch or full_epoch_steps(len(train_idx), recipe.batch_size)
    val_batch_size = max(recipe.batch_size, 256)
    if on_device:
        train_data = fer_data.ArrayBatches(
            images[train_idx], labels[train_idx], recipe.batch_size, num_classes, config.seed
        )
        val_data = (images[val_idx].astype(np.float32),
                    np.eye(num_classes, dtype=np.float32)[labels[val_idx]])
    else:
        train_data = _one_hot(fer_data.make_dataset(
            images[train_idx], labels[train_idx], batch_size=recipe.batch_size,
            training=True, augment=recipe.augment, seed=config.seed,
        ), num_classes)
        val_data = _one_hot(fer_data.make_dataset(
            images[val_idx], labels[val_idx], batch_size=val_batch_size
        ), num_classes)
        if config.steps_per_epoch:
            train_data = train_data.repeat()

    init_path = config.init_from and init_source(config.init_from, config.model)
    data_format = resolve_data_format(config.data_format)
    with _distribution_scope(config.distribute):
        model = build_model(config.model, num_classes=num_classes, data_format=data_format)
        if init_path:
            check_same_split(init_path, config.seed, config.val_split)
            init_weights(model, init_path, config.model)
        add_l2(model, recipe.weight_decay if recipe.optimizer != "adamw" else 0.0)
        trainer = model
        if on_device:
            trainer = AugmentedModel(model, build_augmentation(recipe.augment, config.seed))
        trainer.compile(
            optimizer=make_optimizer(recipe, steps),
            loss=keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=recipe.label_smoothing
            ),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
    return FitSetup(
        model=model,
        trainer=trainer,
        train_data=train_data,
        val_data=val_data,
        steps_per_epoch=steps,
        validation_batch_size=val_batch_size if on_device else None,
        class_weight=fer_data.class_weights(
            labels[train_idx], recipe.class_weights, num_classes
        ),
        dtype_policy=policy,
        data_format=data_format,
        init_path=init_path or None,
    )


def _fit_one(config, data_dir, images, labels, train_idx, val_idx, fold=None) -> dict:
    recipe = config.recipe
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_path = out / "run.json"
    if run_path.exists() and (out / "model.keras").exists():
        previous = json.loads(run_path.read_text())
        if previous.get("status") == "completed":
            print(f"{out} holds a completed run; nothing to do. "
                  "Choose another --output-dir to train again.")
            return previous

    setup = prepare_fit(config, images, labels, train_idx, val_idx)
    model, trainer, steps = setup.model, setup.trainer, setup.steps_per_epoch
    data_format, init_path = setup.data_format, setup.init_path
    num_classes = len(CLASS_NAMES)

    backup_dir = out / "backup"
    history_path = out / "history.csv"
    done = _epochs_done(backup_dir)
    checkpoint = config.checkpoint and Path(config.checkpoint)
    restored = None
    if not done and checkpoint and checkpoint.exists():
        # The run folder is gone (or new): continue from the committed weights,
        # with a fresh optimizer whose schedule stands at the checkpoint's epoch.
        state = check_checkpoint(checkpoint, config)
        init_weights(model, checkpoint, config.model)
        restored = int(state["epoch"])
        _write_history(history_path, state.get("history", [])[:restored])
        trainer.optimizer.iterations.assign(restored * steps)
        print(f"Continuing from the checkpoint {checkpoint} after epoch {restored} of "
              f"{recipe.epochs} (its weights, a fresh optimizer).")
    previous_rows = _truncate_history(history_path, done or restored or 0)
    # After a checkpoint, the best model so far was lost with its folder: the
    # best model of this run is the best since then.
    best = None if restored else max(
        (float(r["val_accuracy"]) for r in previous_rows), default=None
    )
    if done:
        print(f"Resuming {out} after epoch {done} of {recipe.epochs}.")
    channels_last = None if data_format == DEFAULT_DATA_FORMAT else build_model(
        config.model, num_classes=num_classes, data_format=DEFAULT_DATA_FORMAT
    )

    nan_guard = StopOnNaN()
    callbacks = [
        EpochStats(),
        keras.callbacks.CSVLogger(str(history_path), append=True),
        SaveBestModel(out / "model.keras", model, best=best, save_as=channels_last),
        keras.callbacks.BackupAndRestore(
            str(backup_dir), save_freq=config.backup_every or "epoch"
        ),
        nan_guard,
        CurvesPlot(history_path, title=f"{config.model} ({config.recipe_name})"),
    ]
    if checkpoint:
        callbacks.append(CommittedCheckpoint(
            checkpoint, model, every=config.checkpoint_every,
            # An uncompiled copy: the optimizer's state stays out of the file.
            save_as=channels_last or build_model(config.model, num_classes=num_classes),
            state=lambda: {
                **_checkpoint_identity(config),
                "command": list(config.command or sys.argv),
                "steps_per_epoch": steps,
                "history": _read_history(history_path),
            },
        ))
    callbacks.extend(config.callbacks)
    class_weight = setup.class_weight
    info = {
        "status": "running",
        "model": config.model,
        "recipe_name": config.recipe_name,
        "recipe": recipe.to_dict(),
        "command": list(config.command or sys.argv),
        "seed": config.seed,
        "init_from": init_path and str(init_path),
        "checkpoint": checkpoint and str(checkpoint),
        "continued_from_checkpoint_after_epoch": restored,
        "dtype_policy": setup.dtype_policy,
        "data_dir": str(data_dir),
        "data": {
            "train": _split_counts(labels[train_idx]),
            "val": _split_counts(labels[val_idx]),
        },
        "val_split": config.val_split,
        # Which images were held out: fold `fold` of `folds`, else `val_split`.
        "folds": config.folds if fold else 1,
        "fold": fold,
        "steps_per_epoch": steps,
        "pipeline": config.pipeline,
        "data_format": data_format,
        "class_weight": class_weight,
        "params": int(model.count_params()),
        **environment_info(),
    }
    run_path.write_text(json.dumps(info, indent=2))

    trainer.fit(
        setup.train_data,
        validation_data=setup.val_data,
        validation_batch_size=setup.validation_batch_size,
        epochs=recipe.epochs,
        initial_epoch=restored or 0,
        steps_per_epoch=steps,
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=config.verbose,
        shuffle=False,
    )
    if nan_guard.nan_at is not None:
        info["status"] = "failed: non-finite loss"
        run_path.write_text(json.dumps(info, indent=2))
        raise TrainingError(
            f"The loss became NaN or infinite (batch {nan_guard.nan_at} of the last "
            f"epoch) and training stopped. Lower the learning rate (--lr, now "
            f"{recipe.lr}), or turn off --mixed-precision, then start again with a "
            "new --output-dir."
        )

    history = _read_history(history_path)
    _draw_curves(history, out / "curves.png", f"{config.model} ({config.recipe_name})")
    best_row = max(history, key=lambda r: float(r["val_accuracy"]))
    times = [float(r["epoch_time_s"]) for r in history if r.get("epoch_time_s")]
    info.update(
        {
            "status": "completed",
            "epochs": len(history),
            "best_epoch": int(best_row["epoch"]) + 1,
            "best_val_accuracy": float(best_row["val_accuracy"]),
            "final": {k: float(v) for k, v in history[-1].items() if k != "epoch"},
            "epoch_time_s": times,
            "mean_epoch_time_s": float(np.mean(times[1:] or times)) if times else None,
            "model_path": str(out / "model.keras"),
        }
    )
    run_path.write_text(json.dumps(info, indent=2))
    print(
        f"Best validation accuracy {info['best_val_accuracy']:.4f} at epoch "
        f"{info['best_epoch']}; model saved to {out / 'model.keras'}"
    )
    return info
