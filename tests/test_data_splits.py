"""Tests for fer_keras.data.splits: class counts and weights, the validation
split and k folds of a seed."""

import numpy as np
import pytest

from fer_keras import data


def imbalanced_labels():
    counts = [40, 5, 41, 72, 48, 31, 49]
    return np.repeat(np.arange(7), counts).astype(np.int32)


def test_train_val_split_is_stratified_disjoint_and_seeded():
    labels = imbalanced_labels()
    train, val = data.train_val_split(labels, val_fraction=0.2, seed=3)
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.union1d(train, val), np.arange(labels.size))
    val_counts = np.bincount(labels[val], minlength=7)
    expected = np.round(0.2 * np.bincount(labels)).astype(int)
    np.testing.assert_array_equal(val_counts, expected)
    again = data.train_val_split(labels, val_fraction=0.2, seed=3)
    np.testing.assert_array_equal(again[1], val)
    other = data.train_val_split(labels, val_fraction=0.2, seed=4)
    assert not np.array_equal(other[1], val)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_train_val_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match=f"Received: val_fraction={fraction}"):
        data.train_val_split(imbalanced_labels(), val_fraction=fraction)


def test_kfold_splits_cover_everything_once():
    labels = imbalanced_labels()
    folds = data.kfold_splits(labels, k=3, seed=1)
    assert len(folds) == 3
    vals = np.concatenate([val for _, val in folds])
    np.testing.assert_array_equal(np.sort(vals), np.arange(labels.size))
    for train, val in folds:
        np.testing.assert_array_equal(np.union1d(train, val), np.arange(labels.size))
        assert np.intersect1d(train, val).size == 0
    sizes = [len(val) for _, val in folds]
    assert max(sizes) - min(sizes) <= 1
    per_class = np.stack([np.bincount(labels[val], minlength=7) for _, val in folds])
    assert np.all(per_class.max(axis=0) - per_class.min(axis=0) <= 1)
    again = data.kfold_splits(labels, k=3, seed=1)
    for (_, a), (_, b) in zip(folds, again):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("k", [1, 0, 2.5, 1000])
def test_kfold_splits_rejects_bad_k(k):
    with pytest.raises(ValueError, match=f"Received: k={k}"):
        data.kfold_splits(imbalanced_labels(), k=k)


def test_kfold_splits_refuses_more_folds_than_the_rarest_class_has_images():
    # 5 "disgust" images: a sixth fold would validate on no disgust at all.
    with pytest.raises(ValueError, match=r"at most 5, .*rarest class \(disgust\).*"
                       "Received: k=6"):
        data.kfold_splits(imbalanced_labels(), k=6)
    for _, val in data.kfold_splits(imbalanced_labels(), k=5):
        assert np.all(np.bincount(imbalanced_labels()[val], minlength=7) >= 1)


def test_train_val_split_refuses_a_fraction_that_holds_out_nothing_or_a_whole_class():
    labels = np.repeat(np.arange(7), 3)
    with pytest.raises(ValueError, match="holds out no image.*Received: val_fraction=0.1"):
        data.train_val_split(labels, val_fraction=0.1)
    labels = np.repeat(np.arange(2), [40, 1])
    with pytest.raises(ValueError,
                       match=r"every image of a class \(1 of them\).*val_fraction=0.6"):
        data.train_val_split(labels, val_fraction=0.6)


def test_checks_leave_the_splits_of_a_seed_as_they_were():
    """Runs validated on these splits are evaluated on them again later
    (`evaluate.py --split val`): the digest is of the splits before the checks."""
    import hashlib

    labels = imbalanced_labels()
    digest = hashlib.sha256()
    for k in (2, 3, 5):
        for seed in (0, 1):
            for train, val in data.kfold_splits(labels, k, seed):
                digest.update(train.astype(np.int64).tobytes())
                digest.update(val.astype(np.int64).tobytes())
    for fraction in (0.1, 0.2, 0.5):
        for seed in (0, 3):
            train, val = data.train_val_split(labels, fraction, seed)
            digest.update(train.astype(np.int64).tobytes())
            digest.update(val.astype(np.int64).tobytes())
    assert digest.hexdigest() == (
        "ea18e91c96c77dcc0a06dbb895a325e0c539959872a6c4e6d48f610d7013d4cb"
    )


def test_class_weights_seed_is_inverse_frequency_with_max_one():
    labels = imbalanced_labels()
    counts = np.bincount(labels)
    weights = data.class_weights(labels, "seed")
    assert sorted(weights) == list(range(7))
    assert max(weights.values()) == pytest.approx(1.0)
    assert weights[1] == pytest.approx(1.0)  # the rarest class
    for i in range(7):
        assert weights[i] == pytest.approx(counts.min() / counts[i])
        assert weights[i] / weights[3] == pytest.approx(counts[3] / counts[i])


def test_class_weights_balanced_formula():
    labels = imbalanced_labels()
    counts = np.bincount(labels)
    weights = data.class_weights(labels, "balanced")
    for i in range(7):
        assert weights[i] == pytest.approx(labels.size / (7 * counts[i]))
    mean_per_sample = np.mean([weights[label] for label in labels])
    assert mean_per_sample == pytest.approx(1.0)


def test_class_weights_none_and_unknown_mode():
    assert data.class_weights(imbalanced_labels(), "none") is None
    with pytest.raises(ValueError, match="seed, balanced, none. Received: mode='inv'"):
        data.class_weights(imbalanced_labels(), "inv")


def test_class_weights_absent_class_gets_zero():
    weights = data.class_weights(np.array([0, 0, 2]), "seed")
    assert weights == {0: 0.5, 1: 0.0, 2: 1.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 0.0}


def test_class_counts_and_bad_labels():
    assert data.class_counts(np.array([3, 3, 6])) == {
        "angry": 0,
        "disgust": 0,
        "fear": 0,
        "happy": 2,
        "sad": 0,
        "surprise": 0,
        "neutral": 1,
    }
    with pytest.raises(ValueError, match="Received: labels in 0..7"):
        data.class_counts(np.array([0, 7]))
