"""The two input pipelines: `make_dataset` (tf.data) and `ArrayBatches`.

Both feed `model.fit` under every backend, from the in-memory arrays that
`load_split` returns.
"""

import numpy as np

import keras

from fer_keras.augment import build_augmentation
from fer_keras.classes import CLASS_NAMES
from fer_keras.data.splits import check_labels
from fer_keras.errors import install_extra


class ArrayBatches(keras.utils.PyDataset):
    """Shuffled full batches of in-memory images, a new order every epoch.

    The feed of `train.py --pipeline device`, with no `tf.data`: float32
    0-255 images and one-hot labels sliced from the arrays in host memory,
    and the augmentation left to the model (`AugmentedModel`). Only full
    batches, as in `make_dataset`, so a compiled step sees one shape and
    every epoch has the same number of steps; the same `seed` gives the same
    epochs.
    """

    def __init__(self, images, labels, batch_size: int = 64,
                 num_classes: int = len(CLASS_NAMES), seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.images = np.asarray(images)
        self.labels = check_labels(labels, num_classes)
        if len(self.images) != len(self.labels):
            raise ValueError(
                "images and labels must have the same length. Received: "
                f"{len(self.images)} images and {len(self.labels)} labels"
            )
        if not 1 <= int(batch_size) <= len(self.images):
            raise ValueError(
                f"batch_size must be between 1 and the number of images "
                f"({len(self.images)}). Received: batch_size={batch_size}"
            )
        self.batch_size = int(batch_size)
        self.num_classes = int(num_classes)
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(self.images))

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __getitem__(self, index: int):
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        one_hot = np.eye(self.num_classes, dtype=np.float32)[self.labels[rows]]
        return self.images[rows].astype(np.float32), one_hot

    def on_epoch_end(self) -> None:
        self._order = self._rng.permutation(len(self.images))


def _import_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as err:
        raise ImportError(
            "make_dataset builds a tf.data pipeline and needs TensorFlow "
            f"(it feeds Keras under every backend): {install_extra('tensorflow')}, "
            "or train with --pipeline device, which needs none"
        ) from err
    return tf


def make_dataset(
    images,
    labels,
    batch_size: int = 64,
    training: bool = False,
    augment: str | None = None,
    seed: int = 0,
    sample_weights=None,
    augment_workers: int = 2,
):
    """A `tf.data.Dataset` of (float32 0-255 images, int32 labels[, weights]).

    Training: the whole set is reshuffled each epoch (the same epochs for the
    same `seed`), cut into full batches only, so shapes stay static and JAX
    compiles once, then augmented by `augment` (see `fer_keras.augment`) a
    batch at a time. Otherwise: the samples in order, the last batch partial,
    no augmentation. `model.fit` accepts the result under every backend.

    Augmentation runs in `augment_workers` lanes, each with its own layers
    and seed, on alternate batches. Keras augmentation layers keep their
    random state in a variable, so one layer mapped in parallel would give
    batches their augmentation in whatever order threads ran; lanes keep a
    seed's batches the same from run to run. The batches depend on the
    number of lanes, so it is a setting rather than the CPU count: raise it
    where more cores are free.
    """
    tf = _import_tensorflow()
    images, labels = np.asarray(images), np.asarray(labels)
    _check_dataset_args(images, labels, batch_size, training, augment, augment_workers)
    batch_size = int(batch_size)
    # uint8 images stay uint8 in memory; batches become float32 one by one.
    tensors = [tf.constant(images), tf.constant(labels.astype(np.int32, copy=False))]
    if sample_weights is not None:
        sample_weights = np.asarray(sample_weights, np.float32)
        if sample_weights.shape != labels.shape:
            raise ValueError(
                "`sample_weights` must hold one weight per sample. Received: "
                f"sample_weights.shape={sample_weights.shape}, "
                f"labels.shape={labels.shape}"
            )
        tensors.append(tf.constant(sample_weights))
    if not training:
        dataset = tf.data.Dataset.from_tensor_slices(tuple(tensors))
        dataset = dataset.batch(batch_size).map(_to_float)
        return dataset.prefetch(tf.data.AUTOTUNE)
    return _training_dataset(
        tensors, images.shape[0], batch_size, augment, seed, augment_workers
    )


def _check_dataset_args(images, labels, batch_size, training, augment, augment_workers):
    """Raises the `ValueError` of the first argument `make_dataset` cannot use."""
    if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            "Expected images of shape (N, height, width, channels) and labels "
            f"of shape (N,). Received: images.shape={images.shape}, "
            f"labels.shape={labels.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError("Received no samples: images.shape[0] == 0")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(
            "`batch_size` must be a positive integer. "
            f"Received: batch_size={batch_size}"
        )
    if int(augment_workers) != augment_workers or augment_workers < 1:
        raise ValueError(
            "`augment_workers` must be a positive integer. "
            f"Received: augment_workers={augment_workers}"
        )
    if augment not in (None, "none") and not training:
        raise ValueError(
            "Augmentation is for training only; evaluation data is never "
            f"augmented. Received: augment={augment!r}, training={training}"
        )


def _to_float(batch_images, *rest):
    tf = _import_tensorflow()
    return (tf.cast(batch_images, tf.float32), *rest)


def _training_dataset(tensors, num_samples, batch_size, augment, seed, augment_workers):
    """Reshuffled each epoch, full batches only, augmented in lanes."""
    tf = _import_tensorflow()
    drop_remainder = num_samples >= batch_size

    def lane(index: int, lanes: int):
        # Shuffle indices, not images: the uint8 arrays stay in memory once.
        # Every lane owns its shuffle with the same seed: lanes sharing one
        # would each draw a different epoch order.
        dataset = tf.data.Dataset.range(num_samples).shuffle(
            num_samples, seed=seed, reshuffle_each_iteration=True
        )
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        if lanes > 1:
            dataset = dataset.shard(lanes, index)
        dataset = dataset.map(lambda idx: tuple(tf.gather(t, idx) for t in tensors))
        dataset = dataset.map(_to_float)
        augmentation = build_augmentation(
            augment or "none", seed=_lane_seed(seed, index)
        )
        if augmentation is not None:
            dataset = dataset.map(
                lambda batch_images, *rest: (
                    augmentation(batch_images, training=True),
                    *rest,
                )
            )
        return dataset.prefetch(2)

    if augment in (None, "none"):
        return lane(0, 1).prefetch(tf.data.AUTOTUNE)
    lanes = int(augment_workers)
    # Batch i goes to lane i % lanes and comes back in the same place.
    dataset = tf.data.Dataset.choose_from_datasets(
        [lane(i, lanes) for i in range(lanes)],
        tf.data.Dataset.range(lanes).repeat(),
    )
    # tf.data cannot see through the choice; Keras needs the epoch length.
    num_batches = num_samples // batch_size if drop_remainder else 1
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _lane_seed(seed: int, lane: int) -> int:
    """Well-separated augmentation seeds for the lanes of one pipeline."""
    state = np.random.SeedSequence((int(seed), lane)).generate_state(1)[0]
    return int(state >> 1)
