"""What `fit` needs for one run: seeds, precision, the input pipelines, class
weights and the compiled model, made the same way for `train` and for
benchmarks/bench_time_to_accuracy.py, which times what a run does."""

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import keras

from fer_keras import data as fer_data
from fer_keras.augment import AugmentedModel, build_augmentation
from fer_keras.classes import CLASS_NAMES
from fer_keras.devices import LabelledAccuracy, Placement, set_precision
from fer_keras.models import build_model, resolve_data_format, with_inference_zoom
from fer_keras.optimizers import add_l2, make_optimizer
from fer_keras.warm_start import check_same_split, init_source, init_weights

if TYPE_CHECKING:
    from fer_keras.training import TrainConfig


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
    placement: Placement | None = None
    inference_zoom: float | None = None


def full_epoch_steps(num_train: int, batch_size: int) -> int:
    """Steps of one pass over the training images: full batches only, as the
    pipelines cut them."""
    return max(1, int(num_train) // int(batch_size))


def stream_seed(seed: int, first_epoch: int) -> int:
    """The seed of the random streams of a run that starts at `first_epoch`."""
    if first_epoch == 0:
        return int(seed)
    return int(np.random.SeedSequence((int(seed), int(first_epoch))).generate_state(1)[0] >> 1)


def prepare_fit(config: "TrainConfig", images: np.ndarray, labels: np.ndarray,
                train_idx: np.ndarray, val_idx: np.ndarray, first_epoch: int = 0,
                placement: Placement | None = None,
                inference_zoom: float | None = None) -> FitSetup:
    """Seeds, precision, input pipelines, class weights and the compiled model.

    `train` fits what this returns; benchmarks/bench_time_to_accuracy.py
    times the same objects, so it measures what a run does. `model` is the
    zoo model (the one to save); `trainer` is what `fit` trains: `model`
    itself, or `model` behind its augmentation under the "device" pipeline.

    A run that resumes at `first_epoch` > 0 draws its shuffles, augmentations
    and dropout from a seed of its own: with the run's seed it would replay
    the images and views of its first epochs at every restart.

    `inference_zoom` puts an `InferenceZoom` in front of the model, so that
    validation, and every use of the saved model, sees faces at the scale
    that a cropping augmentation trains on (`augment.INFERENCE_ZOOM`).
    """
    recipe = config.recipe
    seed = stream_seed(config.seed, first_epoch)
    keras.utils.set_random_seed(seed)
    policy = set_precision(config.mixed_precision)
    num_classes = len(CLASS_NAMES)
    placement = placement or Placement(config.distribute, recipe.batch_size,
                                       config.multi_host)

    on_device = config.pipeline == "device"
    steps = config.steps_per_epoch or full_epoch_steps(len(train_idx), recipe.batch_size)
    train_data, val_data, val_batch_size = _pipelines(
        config, images, labels, train_idx, val_idx, placement, seed)

    init_path = config.init_from and init_source(config.init_from, config.model)
    data_format = resolve_data_format(config.data_format)
    with placement.scope():
        model = build_model(config.model, num_classes=num_classes, data_format=data_format)
        if inference_zoom:
            model = with_inference_zoom(model, inference_zoom)
        if init_path:
            check_same_split(init_path, config.seed, config.val_split)
            init_weights(model, init_path, config.model)
        add_l2(model, recipe.weight_decay if recipe.optimizer != "adamw" else 0.0)
        trainer = model
        if on_device:
            trainer = AugmentedModel(model, build_augmentation(recipe.augment, seed))
        trainer.compile(
            optimizer=make_optimizer(recipe, steps),
            loss=keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=recipe.label_smoothing
            ),
            metrics=[LabelledAccuracy(name="accuracy")],
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
        placement=placement,
        inference_zoom=inference_zoom,
    )


def _pipelines(config: "TrainConfig", images, labels, train_idx, val_idx,
               placement: Placement, seed: int):
    """(training batches, validation data, validation batch size): through
    tf.data, or as arrays for the "device" pipeline, which augments in the step."""
    recipe, num_classes = config.recipe, len(CLASS_NAMES)
    on_device = config.pipeline == "device"
    val_images, val_labels, val_weights, val_batch_size = _validation_share(
        placement, images[val_idx], labels[val_idx], max(recipe.batch_size, 256))
    if on_device:
        train_data = fer_data.ArrayBatches(
            images[train_idx], labels[train_idx], recipe.batch_size, num_classes, seed
        )
        # Padding rows (label -1) get all-zero one-hot rows, as tf.one_hot gives them.
        val_data = (val_images.astype(np.float32),
                    (val_labels[:, None] == np.arange(num_classes)).astype(np.float32),
                    *([] if val_weights is None else [val_weights]))
    else:
        train_data = _one_hot(fer_data.make_dataset(
            images[train_idx], labels[train_idx], batch_size=recipe.batch_size,
            training=True, augment=recipe.augment, seed=seed,
        ), num_classes)
        val_data = _one_hot(fer_data.make_dataset(
            val_images, val_labels, batch_size=val_batch_size, sample_weights=val_weights
        ), num_classes)
        if config.steps_per_epoch:
            train_data = train_data.repeat()
    return placement.local_batches(train_data), val_data, val_batch_size


def _validation_share(placement: Placement, images: np.ndarray, labels: np.ndarray,
                      batch_size: int):
    """(images, labels, weights or None, batch size) of the validation rows
    this process evaluates: all of them on one host, padded where the
    devices must share every batch evenly (`Placement.pad_evaluation`)."""
    batch_size = placement.evaluation_batch(batch_size)
    images, labels, weights = placement.pad_evaluation(images, labels)
    if placement.processes == 1:
        return images, labels, weights, batch_size
    rows = placement.local_rows(len(labels), batch_size)
    return (images[rows], labels[rows], None if weights is None else weights[rows],
            batch_size // placement.processes)


def _one_hot(dataset, num_classes):
    import tensorflow as tf

    def convert(*batch):
        return (batch[0], tf.one_hot(batch[1], num_classes), *batch[2:])

    return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
