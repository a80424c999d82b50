"""Training: a Keras `fit` with callbacks that make long runs safe to interrupt.

A run folder holds `model.keras` (best validation accuracy), `history.csv`,
`curves.png` (where matplotlib is installed), `run.json` and, while
training, `backup/` (`fer_keras.backup`). Starting a run again with the same
folder resumes after the last finished epoch, whenever the last one was
killed.

Two input pipelines feed `fit`: "tfdata" augments in a `tf.data` pipeline on
the host, beside the training step (what a CPU wants: the two overlap);
"device" feeds the arrays as they are and augments inside the training step
on the device that trains (what a GPU or TPU wants), with no TensorFlow.
"""

import dataclasses
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

import keras

from fer_keras import backup as run_backup
from fer_keras import data as fer_data
from fer_keras.augment import INFERENCE_ZOOM
from fer_keras.callbacks import (  # noqa: F401 - public here since the first release
    CurvesPlot,
    EpochStats,
    SaveBestModel,
    StopOnNaN,
)
from fer_keras.checkpoint import (  # noqa: F401 - read_checkpoint_state is public here
    CommittedCheckpoint,
    check_identity,
    read_checkpoint_state,
)
from fer_keras.classes import CLASS_NAMES
from fer_keras.devices import (  # noqa: F401 - auto_precision is public here
    HostOnly,
    Placement,
    auto_precision,
    preserved_global_state,
)
from fer_keras.errors import TrainingError, unknown
from fer_keras.fit_setup import (  # noqa: F401 - public here since they were written
    FitSetup,
    full_epoch_steps,
    prepare_fit,
    stream_seed,
)
from fer_keras.history import read_history, truncate_history, write_history
from fer_keras.models import (
    DEFAULT_DATA_FORMAT,
    build_model,
    resolve_data_format,
    with_inference_zoom,
)
from fer_keras.optimizers import add_l2, learning_rate_schedule, make_optimizer  # noqa: F401
from fer_keras.recipes import Recipe
from fer_keras.run_record import completed_record, run_record, write_json
from fer_keras.runinfo import environment_info
from fer_keras.warm_start import init_weights

PIPELINES: tuple[str, ...] = ("tfdata", "device")


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
    # One process per host of a multi-host jax run (`backends.jax.initialize_hosts`);
    # implies `distribute`. Process 0 writes the run folder.
    multi_host: bool = False
    backup_every: int | None = None
    checkpoint: str | None = None
    checkpoint_every: int = 1
    init_from: str | None = None
    pipeline: str = "tfdata"
    data_format: str = "auto"
    # The centre share of the image the model sees at inference (an
    # `InferenceZoom` in front of it): "recipe" for the recipe's
    # (`augment.INFERENCE_ZOOM`), None for the whole image, or a fraction.
    inference_zoom: float | str | None = "recipe"
    verbose: int | str = "auto"
    command: Sequence[str] | None = None
    callbacks: Sequence[keras.callbacks.Callback] = ()
    # The training split already in memory, as `fer_data.load_split` returns
    # it (uint8 images (N, 48, 48, 1), labels (N,)): for a machine that has
    # no FER2013 folder but a packed copy (tools/pack_data.py). `data_dir`
    # then only names the source in run.json.
    train_arrays: tuple[np.ndarray, np.ndarray] | None = None


def _checkpoint_identity(config: TrainConfig) -> dict:
    """What a checkpoint must share with the run that continues from it."""
    return {
        "model": config.model,
        "recipe_name": config.recipe_name,
        "recipe": config.recipe.to_dict(),
        "seed": config.seed,
        "val_split": config.val_split,
    }


def check_checkpoint(path: Path, config: TrainConfig) -> dict:
    """The state of the checkpoint at `path`, if this run may continue from it."""
    return check_identity(path, _checkpoint_identity(config))


def train(config: TrainConfig) -> dict:
    """Trains one model, or `config.folds` models for cross-validation.

    Returns the run summary that is also written to `run.json`.
    """
    if config.pipeline not in PIPELINES:
        raise unknown("pipeline", config.pipeline, PIPELINES, "pipeline")
    resolve_data_format(config.data_format)
    if config.folds > 1 and config.checkpoint:
        raise TrainingError(
            "--checkpoint keeps one run's weights; cross-validation trains "
            f"{config.folds} models. Drop --checkpoint or --folds."
        )
    with preserved_global_state():
        # Before the data loads: a batch the devices cannot share is refused at once.
        placement = Placement(config.distribute, config.recipe.batch_size, config.multi_host)
        print(f"Training on {placement.describe()}.")
        if config.folds > 1:
            return _cross_validate(config, placement)
        data_dir, images, labels = _training_split(config)
        train_idx, val_idx = fer_data.train_val_split(labels, config.val_split, config.seed)
        return _fit_one(config, data_dir, images, labels, train_idx, val_idx, placement)


def _training_split(config: TrainConfig) -> tuple[str | Path, np.ndarray, np.ndarray]:
    """(source, images, labels): `config.train_arrays`, else read from `data_dir`."""
    if config.train_arrays is None:
        data_dir = fer_data.locate_data(config.data_dir)
        return (data_dir, *fer_data.load_split(data_dir, "train"))
    images, labels = config.train_arrays
    images, labels = np.asarray(images), fer_data.check_labels(labels)
    expected = (fer_data.IMAGE_SIZE, fer_data.IMAGE_SIZE, 1)
    if images.dtype != np.uint8 or images.shape[1:] != expected or len(images) != len(labels):
        raise ValueError(
            "`train_arrays` must be (images, labels) as `load_split` returns them: "
            f"uint8 images of shape (N, {', '.join(map(str, expected))}) and N labels. "
            f"Received: images of shape {images.shape} and dtype {images.dtype}, "
            f"labels of shape {labels.shape}"
        )
    return config.data_dir or "in-memory arrays", images, labels


def _cross_validate(config: TrainConfig, placement: Placement) -> dict:
    data_dir, images, labels = _training_split(config)
    folds = fer_data.kfold_splits(labels, config.folds, config.seed)
    results = []
    for i, (train_idx, val_idx) in enumerate(folds, start=1):
        print(f"Fold {i}/{config.folds}")
        fold_config = dataclasses.replace(
            config, output_dir=str(Path(config.output_dir) / f"fold{i}")
        )
        results.append(
            _fit_one(fold_config, data_dir, images, labels, train_idx, val_idx, placement,
                     fold=i)
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
    if placement.is_writer:
        write_json(out / "cv.json", summary)
    print(
        f"{config.folds}-fold validation accuracy: "
        f"{summary['val_accuracy_mean']:.4f} +/- {summary['val_accuracy_std']:.4f}"
    )
    return summary


def _expected_start(out: Path, checkpoint_state: dict | None) -> int:
    """The epoch a rerun will start from, before anything is loaded."""
    backups = run_backup.list_backups(out / "backup")
    if backups:
        return backups[0].epochs
    if checkpoint_state is not None:
        return int(checkpoint_state.get("epoch", 0))
    return 0


@dataclasses.dataclass
class _Start:
    """Where a run starts: its first epoch, and the best validation accuracy
    that `model.keras` already holds (None: no best model yet)."""

    epoch: int = 0
    best: float | None = None
    from_checkpoint: bool = False


def _completed_run(out: Path) -> dict | None:
    run_path = out / "run.json"
    if not (run_path.exists() and (out / "model.keras").exists()):
        return None
    previous = json.loads(run_path.read_text())
    return previous if previous.get("status") == "completed" else None


def _resume(config: TrainConfig, setup: FitSetup, out: Path,
            checkpoint_state: dict | None, writer: bool = True) -> _Start:
    """Loads the newest usable backup, else the committed checkpoint (whose
    checked state is `checkpoint_state`), and cuts `history.csv` to the
    epochs the loaded weights have seen (the `writer` only: the other
    processes of a multi-host run load the same files and write nothing)."""
    history_path = out / "history.csv"
    loaded = run_backup.restore(setup.trainer, out / "backup", set_aside=writer)
    if loaded:
        rows = read_history(history_path)
        best = max((float(r["val_accuracy"]) for r in rows), default=None)
        if writer:
            truncate_history(history_path, loaded.epochs)
        print(f"Resuming {out} after epoch {loaded.epochs} of {config.recipe.epochs}.")
        # model.keras is the best of every epoch written, kept or not.
        return _Start(loaded.epochs, best if (out / "model.keras").exists() else None)
    if checkpoint_state is not None:
        # The run folder is gone (or new): continue from the committed weights,
        # with a fresh optimizer whose schedule stands at the checkpoint's epoch.
        checkpoint, state = Path(config.checkpoint), checkpoint_state
        init_weights(setup.model, checkpoint, config.model)
        epoch = int(state["epoch"])
        if writer:
            write_history(history_path, state.get("history", [])[:epoch])
        setup.trainer.optimizer.iterations.assign(epoch * setup.steps_per_epoch)
        print(f"Continuing from the checkpoint {checkpoint} after epoch {epoch} of "
              f"{config.recipe.epochs} (its weights, a fresh optimizer).")
        # The best model so far was lost with its folder: this run's best
        # model is the best since then.
        return _Start(epoch, None, from_checkpoint=True)
    if writer:
        truncate_history(history_path, 0)
    return _Start()


def _callbacks(config: TrainConfig, setup: FitSetup, out: Path, start: _Start,
               nan_guard: StopOnNaN, writer: bool = True) -> list[keras.callbacks.Callback]:
    """The run's callbacks; where not `writer`, only those that write nothing."""
    shared = [EpochStats(), nan_guard]
    if not writer:
        return shared + list(config.callbacks)
    num_classes = len(CLASS_NAMES)
    history_path = out / "history.csv"
    # Files are channels-last and float32, whatever layout and precision trained.
    # The copy lives on this host alone: filling a model laid out over several
    # hosts would wait for the processes that write nothing.
    with preserved_global_state():
        keras.config.set_dtype_policy("float32")
        keras.distribution.set_distribution(None)
        saved_as = build_model(config.model, num_classes=num_classes,
                               data_format=DEFAULT_DATA_FORMAT)
        if setup.inference_zoom:
            saved_as = with_inference_zoom(saved_as, setup.inference_zoom)
    writers = [
        keras.callbacks.CSVLogger(str(history_path), append=True),
        SaveBestModel(out / "model.keras", setup.model, best=start.best,
                      save_as=saved_as),
        run_backup.RunBackup(out / "backup", save_freq=config.backup_every or "epoch"),
        CurvesPlot(history_path, title=f"{config.model} ({config.recipe_name})"),
    ]
    if config.checkpoint:
        writers.append(CommittedCheckpoint(
            Path(config.checkpoint), setup.model, every=config.checkpoint_every,
            # An uncompiled copy: the optimizer's state stays out of the file.
            save_as=saved_as,
            state=lambda: {
                **_checkpoint_identity(config),
                "command": list(config.command or sys.argv),
                "steps_per_epoch": setup.steps_per_epoch,
                "inference_zoom": setup.inference_zoom,
                "history": read_history(history_path),
            },
        ))
    if setup.placement.processes > 1:
        # Process 0 of several: its writers must not wait for the others.
        writers = [HostOnly(callback) for callback in writers]
    return shared + writers + list(config.callbacks)


def _inference_zoom(config: TrainConfig, out: Path, checkpoint_state: dict | None
                    ) -> float | None:
    """The zoom at inference of the run's model: `config.inference_zoom`, where
    "recipe" means the recipe's (`augment.INFERENCE_ZOOM`). A run that already
    has a record (run.json, else the committed checkpoint's state) continues
    as it started, and one started before the zoom existed has none; asking
    such a run for another zoom is refused."""
    run_path = out / "run.json"
    record = json.loads(run_path.read_text()) if run_path.exists() else checkpoint_state
    asked = config.inference_zoom
    if asked == "recipe":
        if record is not None:
            return record.get("inference_zoom")
        return INFERENCE_ZOOM.get(config.recipe.augment)
    if asked is not None and not (isinstance(asked, (int, float)) and 0 < asked <= 1):
        raise TrainingError(
            "inference_zoom must be 'recipe', None or a fraction in (0, 1]. "
            f"Received: inference_zoom={asked!r}"
        )
    asked = None if asked is None or asked == 1 else float(asked)
    if record is not None:
        recorded = record.get("inference_zoom")
        if not _same_zoom(recorded, asked):
            where = run_path if run_path.exists() else config.checkpoint
            raise TrainingError(
                f"The run recorded in {where} started with "
                f"{_zoom_text(recorded)} at inference and continues with it. "
                f"Received: {_zoom_text(asked)}. Leave the zoom at the recipe's "
                "(train.py: drop --inference-zoom), or train into a new --output-dir."
            )
    return asked


def _same_zoom(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < 1e-9


def _zoom_text(zoom: float | None) -> str:
    return "no zoom" if zoom is None else f"a zoom of {zoom:.4g}"


def _fit_one(config, data_dir, images, labels, train_idx, val_idx, placement: Placement,
             fold=None) -> dict:
    """One run, in the order a reader checks it: done already? set up, resume,
    record, fit, then say how it ended.

    In a multi-host run every process reads the run folder, and the processes
    check that they read the same, but only process 0 writes it.
    """
    out = Path(config.output_dir)
    writer = placement.is_writer
    previous = _completed_run(out)
    # Read and checked once, before anything is built: another run's
    # checkpoint is refused before the folder is made.
    checkpoint = config.checkpoint and Path(config.checkpoint)
    checkpoint_state = check_checkpoint(checkpoint, config) if (
        checkpoint and checkpoint.exists()) else None
    first_epoch = _expected_start(out, checkpoint_state)
    placement.agree(f"where the run in {out} stands (completed, epochs done)",
                    [previous is not None, first_epoch])
    if previous:
        print(f"{out} holds a completed run; nothing to do. "
              "Choose another --output-dir to train again.")
        return previous

    setup = prepare_fit(config, images, labels, train_idx, val_idx,
                        first_epoch=first_epoch, placement=placement,
                        inference_zoom=_inference_zoom(config, out, checkpoint_state))
    if writer:
        out.mkdir(parents=True, exist_ok=True)
    start = _resume(config, setup, out, checkpoint_state, writer)
    nan_guard = StopOnNaN()
    callbacks = _callbacks(config, setup, out, start, nan_guard, writer)
    info = run_record(config, setup, start, data_dir, labels, train_idx, val_idx, fold)
    if writer:
        write_json(out / "run.json", info)
    placement.barrier("run.json written")
    placement.agree(f"whether {out / 'run.json'}, which process 0 wrote, is there",
                    [(out / "run.json").exists()])

    setup.trainer.fit(
        setup.train_data,
        validation_data=setup.val_data,
        validation_batch_size=setup.validation_batch_size,
        epochs=config.recipe.epochs,
        initial_epoch=start.epoch,
        steps_per_epoch=setup.steps_per_epoch,
        class_weight=setup.class_weight,
        callbacks=callbacks,
        verbose=config.verbose,
        shuffle=False,
    )
    # Process 0's last history.csv row is written before the others read it.
    placement.barrier("fit done")
    if nan_guard.nan_at is not None:
        if writer:
            write_json(out / "run.json", {**info, "status": "failed: non-finite loss"})
        raise TrainingError(
            f"The loss became NaN or infinite (batch {nan_guard.nan_at} of the last "
            f"epoch) and training stopped. Lower the learning rate (--lr, now "
            f"{config.recipe.lr}), or turn off --mixed-precision, then start again with a "
            "new --output-dir."
        )
    info = completed_record(info, out)
    if not writer:
        return info
    write_json(out / "run.json", info)
    run_backup.remove(out / "backup")
    print(
        f"Best validation accuracy {info['best_val_accuracy']:.4f} at epoch "
        f"{info['best_epoch']}; model saved to {out / 'model.keras'}"
    )
    return info
