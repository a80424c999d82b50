"""Tests for fer_keras.data.pipelines: make_dataset (tf.data) and ArrayBatches."""

import numpy as np
import pytest

import keras

import fer_keras
from fer_keras import data


def id_images(n):
    """Image i is filled with the value i, so a batch says which samples it holds."""
    images = np.repeat(np.arange(n, dtype=np.uint8), 48 * 48).reshape(n, 48, 48, 1)
    return images, (np.arange(n) % 7).astype(np.int32)


def as_numpy(batch):
    return tuple(keras.ops.convert_to_numpy(t) for t in batch)


def test_eval_dataset_keeps_order_and_every_sample():
    images, labels = id_images(70)
    batches = [as_numpy(b) for b in data.make_dataset(images, labels, batch_size=32)]
    assert [len(b[0]) for b in batches] == [32, 32, 6]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert x.shape == (70, 48, 48, 1)
    np.testing.assert_array_equal(x, images.astype(np.float32))
    np.testing.assert_array_equal(y, labels)


def test_training_dataset_shuffles_full_batches_each_epoch():
    images, labels = id_images(70)
    dataset = data.make_dataset(images, labels, batch_size=16, training=True, seed=5)
    epochs = []
    for _ in range(2):
        batches = [as_numpy(b) for b in dataset]
        assert [b[0].shape for b in batches] == [(16, 48, 48, 1)] * 4
        ids = np.concatenate([b[0][:, 0, 0, 0] for b in batches]).astype(int)
        assert len(set(ids)) == 64  # no sample twice, 6 left for the next epoch
        np.testing.assert_array_equal(
            np.concatenate([b[1] for b in batches]), labels[ids]
        )
        epochs.append(ids)
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[0], np.sort(epochs[0]))
    spec = dataset.element_spec
    assert tuple(spec[0].shape) == (16, 48, 48, 1) and tuple(spec[1].shape) == (16,)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_augmentation_lanes_keep_the_shuffled_order(workers):
    images = np.zeros((70, 48, 48, 1), np.uint8)
    ids = np.arange(70, dtype=np.int32)  # labels as sample ids
    plain = data.make_dataset(images, ids, batch_size=8, training=True, seed=2)
    lanes = data.make_dataset(
        images,
        ids,
        batch_size=8,
        training=True,
        augment="seed",
        seed=2,
        augment_workers=workers,
    )
    for _ in range(2):  # the second epoch reshuffles the same way in both
        expected = [as_numpy(b)[1] for b in plain]
        got = [as_numpy(b)[1] for b in lanes]
        assert len(got) == 8
        np.testing.assert_array_equal(np.concatenate(got), np.concatenate(expected))
        assert len(set(np.concatenate(got))) == 64


def test_augmentation_lanes_must_be_positive():
    images, labels = id_images(10)
    with pytest.raises(ValueError, match="Received: augment_workers=0"):
        data.make_dataset(images, labels, training=True, augment_workers=0)


@pytest.mark.parametrize(
    "training, augment", [(False, None), (True, None), (True, "seed")]
)
def test_dataset_knows_its_number_of_batches(training, augment):
    images, labels = id_images(70)
    dataset = data.make_dataset(
        images, labels, batch_size=16, training=training, augment=augment
    )
    expected = 4 if training else 5  # training drops the partial batch
    assert int(dataset.cardinality()) == expected
    assert len(list(dataset)) == expected


def test_training_dataset_is_deterministic_for_a_seed():
    images = np.random.default_rng(0).integers(0, 256, (40, 48, 48, 1), np.uint8)
    labels = (np.arange(40) % 7).astype(np.int32)

    def first_two(seed):
        dataset = data.make_dataset(
            images, labels, batch_size=8, training=True, augment="seed", seed=seed
        )
        return [as_numpy(b) for b in dataset.take(2)]

    a, b, c = first_two(1), first_two(1), first_two(2)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_allclose(xa, xb, atol=1e-4)
    assert not np.allclose(a[0][0], c[0][0])


def test_training_augmentation_changes_images_but_not_shape_or_range():
    _, labels = id_images(64)
    gradient = np.linspace(0, 255, 48).astype(np.uint8)
    images = np.tile(gradient[None, None, :, None], (64, 48, 1, 1))
    plain = data.make_dataset(images, labels, batch_size=32, training=True, seed=0)
    augmented = data.make_dataset(
        images, labels, batch_size=32, training=True, augment="seed", seed=0
    )
    for (x, y), (xa, ya) in zip(map(as_numpy, plain), map(as_numpy, augmented)):
        np.testing.assert_array_equal(y, ya)  # same shuffle for the same seed
        assert xa.shape == x.shape and xa.dtype == np.float32
        assert xa.min() >= 0.0 and xa.max() <= 255.0
        changed = np.abs(xa - x).reshape(len(x), -1).max(axis=1) > 1.0
        assert changed.mean() > 0.9


def test_sample_weights_travel_with_their_samples():
    images, labels = id_images(20)
    weights = np.arange(20, dtype=np.float32) / 10
    for training in (False, True):
        dataset = data.make_dataset(
            images, labels, batch_size=8, training=training, sample_weights=weights
        )
        for x, y, w in map(as_numpy, dataset):
            ids = x[:, 0, 0, 0].astype(int)
            np.testing.assert_allclose(w, weights[ids])
            np.testing.assert_array_equal(y, labels[ids])


def test_small_training_set_keeps_its_only_batch():
    images, labels = id_images(5)
    batches = list(data.make_dataset(images, labels, batch_size=8, training=True))
    assert len(batches) == 1 and batches[0][0].shape[0] == 5


def test_make_dataset_rejects_bad_arguments():
    images, labels = id_images(10)
    with pytest.raises(ValueError, match="training only.*Received: augment='seed'"):
        data.make_dataset(images, labels, augment="seed")
    with pytest.raises(ValueError, match="Received: images.shape"):
        data.make_dataset(images, labels[:5])
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        data.make_dataset(images, labels, batch_size=0)
    with pytest.raises(ValueError, match="Unknown augmentation 'wild'"):
        data.make_dataset(images, labels, training=True, augment="wild")


def test_model_fit_on_a_training_dataset():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (48, 48, 48, 1), np.uint8)
    labels = (np.arange(48) % 7).astype(np.int32)
    model = fer_keras.build_model("baseline")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train = data.make_dataset(
        images, labels, batch_size=16, training=True, augment="seed", seed=0
    )
    history = model.fit(
        train,
        epochs=1,
        class_weight=data.class_weights(labels),
        verbose=0,
    )
    assert len(history.history["loss"]) == 1
    assert np.isfinite(history.history["loss"][0])


def test_array_batches_shuffle_full_one_hot_batches_each_epoch():
    images, labels = id_images(70)
    batches = data.ArrayBatches(images, labels, batch_size=16, seed=5)
    assert len(batches) == 4
    epochs = []
    for _ in range(2):
        ids = []
        for i in range(len(batches)):
            x, y = batches[i]
            assert x.shape == (16, 48, 48, 1) and x.dtype == np.float32
            assert y.shape == (16, 7) and y.dtype == np.float32
            batch_ids = x[:, 0, 0, 0].astype(int)
            np.testing.assert_array_equal(y.argmax(axis=1), labels[batch_ids])
            np.testing.assert_array_equal(y.sum(axis=1), np.ones(16))
            np.testing.assert_array_equal(x, images[batch_ids].astype(np.float32))
            ids.extend(batch_ids)
        assert len(set(ids)) == 64  # no sample twice, 6 left out this epoch
        epochs.append(ids)
        batches.on_epoch_end()
    assert epochs[0] != epochs[1] and epochs[0] != sorted(epochs[0])
    again = data.ArrayBatches(images, labels, batch_size=16, seed=5)
    np.testing.assert_array_equal(again[0][0], data.ArrayBatches(images, labels, 16, seed=5)[0][0])
    assert not np.array_equal(again[0][0], data.ArrayBatches(images, labels, 16, seed=6)[0][0])


@pytest.mark.parametrize("batch_size", [0, 71])
def test_array_batches_reject_a_batch_size_that_cannot_fill(batch_size):
    images, labels = id_images(70)
    with pytest.raises(ValueError, match=f"Received: batch_size={batch_size}"):
        data.ArrayBatches(images, labels, batch_size=batch_size)
    with pytest.raises(ValueError, match="69 labels"):
        data.ArrayBatches(images, labels[:69], batch_size=8)
