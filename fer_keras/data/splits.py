"""Labels -> class counts, class weights and the validation splits of a seed.

The splits are stratified and seeded: runs validated on a seed's split are
evaluated on it again later, so a seed must keep giving the same indices.
"""

import numpy as np

from fer_keras.classes import CLASS_NAMES


def check_labels(labels, num_classes: int | None = len(CLASS_NAMES)) -> np.ndarray:
    """`labels` as a 1-D integer array of ids in 0..num_classes - 1 (or >= 0)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "`labels` must be a 1-D array of integer class ids. "
            f"Received: labels with shape {labels.shape} and dtype {labels.dtype}"
        )
    too_big = num_classes is not None and labels.size and labels.max() >= num_classes
    if labels.size and (labels.min() < 0 or too_big):
        expected = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise ValueError(
            f"`labels` must be class ids in {expected}. "
            f"Received: labels in {labels.min()}..{labels.max()}"
        )
    return labels


def class_counts(labels) -> dict[str, int]:
    """Number of samples per class, keyed by class name in `CLASS_NAMES` order."""
    counts = np.bincount(check_labels(labels), minlength=len(CLASS_NAMES))
    return {name: int(n) for name, n in zip(CLASS_NAMES, counts)}


def train_val_split(
    labels, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) index arrays, each class split in the same ratio.

    Stratified so that the rare "disgust" class (1.5% of FER2013) is in the
    validation set in its real proportion; seeded so a run can be repeated.
    """
    labels = check_labels(labels, num_classes=None)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"`val_fraction` must be between 0 and 1 (exclusive). "
            f"Received: val_fraction={val_fraction}"
        )
    _, counts = np.unique(labels, return_counts=True)
    held = np.round(val_fraction * counts).astype(np.int64)
    if labels.size and not held.any():
        raise ValueError(
            f"`val_fraction` holds out no image: {val_fraction} of {counts.max()} images "
            f"(the most of any class) rounds to 0. Expected more than "
            f"{0.5 / counts.max():.2g}. Received: val_fraction={val_fraction}"
        )
    if np.any(held == counts):
        raise ValueError(
            f"`val_fraction` holds out every image of a class ({counts[held == counts].min()} "
            "of them), leaving none of it to train on. Expected a smaller fraction. "
            f"Received: val_fraction={val_fraction}"
        )
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        val.append(members[: int(round(val_fraction * members.size))])
    val = np.sort(np.concatenate(val)) if val else np.empty(0, np.int64)
    train = np.setdiff1d(np.arange(labels.size), val)
    return train, val


def kfold_splits(
    labels, k: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold: k sorted (train, val) index pairs; the vals partition all.

    Each class is dealt out over the folds in turn, continuing where the
    previous class stopped, so fold sizes differ by at most one.
    """
    labels = check_labels(labels, num_classes=None)
    if int(k) != k or k < 2 or k > labels.size:
        raise ValueError(
            "`k` must be an integer from 2 to the number of samples "
            f"({labels.size}). Received: k={k}"
        )
    # More folds than images of the rarest class leave it out of some folds'
    # validation sets, whose accuracy then means something else.
    classes, counts = np.unique(labels, return_counts=True)
    rarest = int(np.argmin(counts))
    if k > counts[rarest]:
        name = (CLASS_NAMES[classes[rarest]] if classes[rarest] < len(CLASS_NAMES)
                else f"class {classes[rarest]}")
        raise ValueError(
            f"`k` (train.py's --folds) must be at most {counts[rarest]}, the number of "
            f"images of the rarest class ({name}), so that every fold validates on "
            f"each class. Received: k={k}"
        )
    k = int(k)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(labels.size, np.int64)
    start = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold_of[members] = (start + np.arange(members.size)) % k
        start = (start + members.size) % k
    return [
        (np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold))
        for fold in range(k)
    ]


CLASS_WEIGHT_MODES = ("seed", "balanced", "none")


def class_weights(
    labels, mode: str = "seed", num_classes: int = len(CLASS_NAMES)
) -> dict[int, float] | None:
    """Per-class loss weights for `model.fit(class_weight=...)`.

    - "seed": inverse class frequency scaled so the largest weight is 1.0,
      as the original project did;
    - "balanced": n / (classes * count), so the mean weight per sample is 1;
    - "none": None (no weighting).

    Classes absent from `labels` get weight 0.0: there is nothing to weigh,
    but Keras wants a weight for every class id.
    """
    if mode not in CLASS_WEIGHT_MODES:
        raise ValueError(
            f"Unknown class weight mode {mode!r}. Expected one of: "
            f"{', '.join(CLASS_WEIGHT_MODES)}. Received: mode={mode!r}"
        )
    if mode == "none":
        return None
    counts = np.bincount(check_labels(labels, num_classes), minlength=num_classes)
    present = counts > 0
    if not present.any():
        raise ValueError("`labels` is empty: there are no classes to weigh.")
    weights = np.zeros(num_classes)
    if mode == "seed":
        weights[present] = counts[present].min() / counts[present]
    else:
        weights[present] = counts.sum() / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}
