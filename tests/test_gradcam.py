"""Grad-CAM under every backend, on a task where the right answer is known.

The class of each image is the quadrant in which a bright square sits, so a
model that learned the task must look at the square: its map for the true
class peaks there, and its map for another class does not weigh the square
as much. Under jax and torch every map comes from a TensorFlow subprocess.
"""

import numpy as np
import pytest
from PIL import Image

import keras

import fer_keras
from fer_keras import gradcam
from fer_keras.loading import ModelFileError

SQUARE = 10
MARGIN = 3  # a 12x12 feature map upsampled to 48x48 blurs the peak by ~4 pixels


def quadrant_images(count, seed):
    """Noisy 48x48 images, each with a bright square in the quadrant of its class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, count)
    images = rng.uniform(0, 80, (count, 48, 48, 1)).astype("float32")
    corners = []
    for image, label in zip(images, labels):
        top = (label // 2) * 24 + rng.integers(2, 24 - SQUARE - 1)
        left = (label % 2) * 24 + rng.integers(2, 24 - SQUARE - 1)
        image[top:top + SQUARE, left:left + SQUARE] = rng.uniform(200, 255, (SQUARE, SQUARE, 1))
        corners.append((top, left))
    return images, labels.astype("int32"), corners


def peak_on_square(cam, corner):
    row, col = np.unravel_index(np.argmax(cam), cam.shape)
    top, left = corner
    return (top - MARGIN <= row < top + SQUARE + MARGIN
            and left - MARGIN <= col < left + SQUARE + MARGIN)


def mass_on_square(cam, corner):
    top, left = corner
    return cam[top:top + SQUARE, left:left + SQUARE].sum() / max(cam.sum(), 1e-9)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    keras.utils.set_random_seed(0)
    images, labels, _ = quadrant_images(256, seed=0)
    model = fer_keras.build_model("baseline", num_classes=4)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(images, labels, batch_size=32, epochs=2, verbose=0)
    path = tmp_path_factory.mktemp("model") / "quadrants.keras"
    model.save(path)
    test_images, test_labels, corners = quadrant_images(16, seed=1)
    predictions = model.predict(test_images, verbose=0).argmax(axis=-1)
    assert (predictions == test_labels).mean() >= 0.9, "the tiny task was not learned"
    return model, path, test_images, test_labels, corners


@pytest.fixture(scope="module")
def default_maps(trained):
    model, _, images, _, _ = trained
    return gradcam.gradcam_maps(model, images)


def test_maps_have_the_image_size_and_lie_in_unit_range(default_maps, trained):
    assert default_maps.shape == (16, 48, 48)
    assert default_maps.dtype == np.float32
    assert np.isfinite(default_maps).all()
    assert default_maps.min() >= 0.0 and default_maps.max() <= 1.0
    assert np.allclose(default_maps.max(axis=(1, 2)), 1.0, atol=1e-3)


def test_map_of_the_predicted_class_peaks_on_the_square(default_maps, trained):
    corners = trained[4]
    assert all(peak_on_square(cam, c) for cam, c in zip(default_maps, corners))
    # The square covers 100 of 2304 pixels; a model that looks at it puts
    # far more than that share of the map there.
    assert min(mass_on_square(cam, c) for cam, c in zip(default_maps, corners)) > 0.2


def test_class_indices_from_a_saved_file(default_maps, trained):
    _, path, images, labels, corners = trained
    other = (labels + 1) % 4
    maps = gradcam.gradcam_maps(path, np.concatenate([images, images]),
                                class_indices=np.concatenate([labels, other]))
    true_maps, other_maps = maps[:16], maps[16:]
    # The model predicts the true classes, the default target.
    np.testing.assert_allclose(true_maps, default_maps, atol=1e-3)
    for true_map, other_map, corner in zip(true_maps, other_maps, corners):
        assert mass_on_square(true_map, corner) > mass_on_square(other_map, corner)


def test_gradcam_plus_plus_on_a_named_layer_of_a_mixed_precision_model(trained, tmp_path):
    model, _, images, _, corners = trained
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = fer_keras.build_model("baseline", num_classes=4)
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(model.get_weights())
    mixed.save(tmp_path / "mixed.keras")
    maps = gradcam.gradcam_maps(tmp_path / "mixed.keras", images[:, :, :, 0],
                                layer_name="baseline_block2_conv", method="gradcam++")
    assert maps.shape == (16, 48, 48)
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    assert sum(peak_on_square(cam, c) for cam, c in zip(maps, corners)) >= 14


def test_unknown_layer(trained):
    model, path, images, _, _ = trained
    for model_or_path in (model, path):
        with pytest.raises(ValueError, match=r"no layer 'nope'.*baseline_block3_conv.*"
                                             r"Received: layer_name='nope'"):
            gradcam.gradcam_maps(model_or_path, images[:2], layer_name="nope")


def test_layer_without_a_feature_map(trained):
    model, _, images, _, _ = trained
    with pytest.raises(ValueError, match=r"feature map.*Received: layer_name='baseline_fc'"):
        gradcam.gradcam_maps(model, images[:2], layer_name="baseline_fc")


def test_bad_arguments(trained, tmp_path):
    model, _, images, _, _ = trained
    with pytest.raises(ValueError, match="Received: method='cam'"):
        gradcam.gradcam_maps(model, images[:2], method="cam")
    with pytest.raises(ValueError, match=r"Received: images.shape=\(48, 48\)"):
        gradcam.gradcam_maps(model, images[0, :, :, 0])
    with pytest.raises(ValueError, match="one integer class or one per image"):
        gradcam.gradcam_maps(model, images[:2], class_indices=[0, 1, 2])
    with pytest.raises(ValueError, match=r"in \[0, 4\).*Received: class_indices=\[4\]"):
        gradcam.gradcam_maps(model, images[:2], class_indices=4)
    with pytest.raises(ModelFileError, match="not found"):
        gradcam.gradcam_maps(tmp_path / "missing.keras", images[:2])


def test_missing_tf_keras_vis_says_how_to_install(trained, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tf_keras_vis" else find_spec(name, *a))
    with pytest.raises(ImportError, match="pip install tf-keras-vis"):
        gradcam.gradcam_maps(trained[0], trained[2][:2])


@pytest.mark.only_backend("tensorflow",
                          reason="TensorFlow-side logic, the same in the subprocess; run once")
def test_softmax_output_is_explained_through_its_logits():
    def tiny(activation):
        inputs = keras.Input((48, 48, 1))
        x = keras.layers.Conv2D(6, 3, activation="relu", name="conv1")(inputs)
        x = keras.layers.Conv2D(6, 3, name="conv2")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(3, activation=activation)(x))

    keras.utils.set_random_seed(0)
    logits_model, softmax_model = tiny(None), tiny("softmax")
    softmax_model.set_weights(logits_model.get_weights())
    images = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(
        gradcam.gradcam_maps(softmax_model, images, class_indices=[0, 1, 2, 0]),
        gradcam.gradcam_maps(logits_model, images, class_indices=[0, 1, 2, 0]),
        atol=1e-5,
    )


def test_failed_subprocess_says_why(trained, tmp_path, monkeypatch):
    _, path, images, _, _ = trained
    monkeypatch.setattr(gradcam, "_WORKER_CODE",
                        "import sys; sys.stderr.write('no TensorFlow today'); sys.exit(3)")
    with pytest.raises(RuntimeError, match=r"(?s)exit code 3.*no TensorFlow today"):
        gradcam._tensorflow_subprocess(tmp_path, path, images[:2], None,
                                       "baseline_block3_conv", "gradcam", 8)


def test_overlay_colours_hot_regions_red_and_cold_ones_blue():
    face = np.full((48, 48, 1), 128, dtype="uint8")
    cam = np.zeros((48, 48), "float32")
    cam[:24] = 1.0
    rgb = gradcam.overlay(face, cam)
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
    hot, cold = rgb[10, 10].astype(int), rgb[40, 40].astype(int)
    assert hot[0] > hot[2] + 40 and cold[2] > cold[0] + 40
    with pytest.raises(ValueError,
                       match=r"Received: image.shape=\(48, 48, 1\), cam.shape=\(24, 24\)"):
        gradcam.overlay(face, cam[:24, :24])


def test_grid_png(trained, tmp_path):
    path = trained[1]
    images, labels, _ = quadrant_images(40, seed=2)
    labels[labels == 3] = 2  # class 3 absent: three rows
    keep = np.concatenate([np.flatnonzero(labels != 1), np.flatnonzero(labels == 1)[:2]])
    output = gradcam.gradcam_grid(path, images[keep], labels[keep], per_class=3,
                                  output_path=tmp_path / "eval" / "gradcam.png", seed=0,
                                  class_names=["top-left", "top-right", "bottom-left",
                                               "bottom-right"])
    assert output == tmp_path / "eval" / "gradcam.png"
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = Image.open(output).size
    assert height > width > 300  # three rows of three, the second row short of one


def test_a_grid_of_errors_draws_only_wrong_faces_with_the_map_of_the_class_chosen(
        trained, tmp_path, monkeypatch):
    path = trained[1]
    images, labels, _ = quadrant_images(24, seed=3)
    # As an evaluation with TTA might have decided: every third face wrong.
    predicted = labels.copy()
    predicted[::3] = (labels[::3] + 1) % 4
    drawn = {}

    def capture(row_lengths, columns, faces, class_names, title, output_path):
        drawn.update(rows=row_lengths, faces=faces, title=title)
        return output_path

    monkeypatch.setattr(gradcam, "_draw_grid", capture)
    gradcam.gradcam_grid(path, images, labels, per_class=2, predicted=predicted,
                         errors_only=True, output_path=tmp_path / "errors.png")
    wrong = np.flatnonzero(predicted != labels)
    assert sum(drawn["rows"]) == len(drawn["faces"]) > 0
    assert len(drawn["rows"]) == len(np.unique(labels[wrong]))
    assert "errors only" in drawn["title"]
    # Each face drawn is a wrong one, overlaid with the map of the class it was given.
    overlays = [gradcam.overlay(images[i], cam) for i, cam in zip(
        wrong, gradcam.gradcam_maps(path, images[wrong], class_indices=predicted[wrong]))]
    for rgb, true, guess in drawn["faces"]:
        assert true != guess
        (i,) = [i for i, expected in zip(wrong, overlays)
                if (labels[i], predicted[i]) == (true, guess)
                and np.abs(expected.astype(int) - rgb.astype(int)).max() <= 1]


def test_a_grid_of_errors_needs_the_predictions_and_an_error(trained):
    path = trained[1]
    images, labels, _ = quadrant_images(8, seed=4)
    with pytest.raises(ValueError, match="pass their predictions as `predicted`"):
        gradcam.gradcam_grid(path, images, labels, errors_only=True)
    with pytest.raises(ValueError, match="all 8 images are predicted right"):
        gradcam.gradcam_grid(path, images, labels, predicted=labels, errors_only=True)
    with pytest.raises(ValueError, match="8 images and 3 predictions"):
        gradcam.gradcam_grid(path, images, labels, predicted=labels[:3])


@pytest.fixture(scope="module")
def seven_class(trained):
    """The trained model with three more outputs that never win: ensembles
    take models of the 7 emotions. Its maps are the trained model's."""
    model = trained[0]
    wide = fer_keras.build_model("baseline", num_classes=7)
    for source, target in zip(model.layers, wide.layers):
        weights = source.get_weights()
        if weights and weights[0].shape != target.get_weights()[0].shape:
            kernel, bias = weights
            weights = [np.pad(kernel, ((0, 0), (0, 3))),
                       np.pad(bias, (0, 3), constant_values=-100.0)]
        target.set_weights(weights)
    return wide


def test_an_ensemble_of_one_model_twice_has_that_models_maps(seven_class, trained, default_maps,
                                                             tmp_path):
    from fer_keras import ensemble

    model, images = seven_class, trained[2]
    # The second copy's layers are renamed apart: its Grad-CAM layer is found by its old name.
    path = tmp_path / "twice.keras"
    ensemble.build_ensemble([model, model]).save(path)
    maps = gradcam.gradcam_maps(path, images)
    np.testing.assert_allclose(maps, default_maps, atol=1e-4)


@pytest.mark.only_backend("tensorflow", reason="the maps come from the same TensorFlow code "
                          "under every backend; this checks how members' maps combine")
def test_an_ensembles_map_is_the_mean_of_its_members_maps_for_the_class_it_chose(seven_class,
                                                                                trained):
    from fer_keras import ensemble, models

    model, (_, _, images, _, corners) = seven_class, trained
    zoomed = models.with_inference_zoom(model, 0.75)
    pair = ensemble.build_ensemble([model, zoomed])
    chosen = keras.ops.convert_to_numpy(pair(images)).argmax(axis=-1)
    maps = gradcam.gradcam_maps(pair, images)
    mean = (gradcam.gradcam_maps(model, images, chosen)
            + gradcam.gradcam_maps(zoomed, images, chosen)) / 2
    low, high = mean.min(axis=(1, 2), keepdims=True), mean.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(maps, (mean - low) / (high - low), atol=1e-4)
    assert np.mean([peak_on_square(cam, c) for cam, c in zip(maps, corners)]) >= 0.75


def test_an_ensembles_layer_is_not_chosen_by_name(seven_class, trained):
    from fer_keras import ensemble

    model, images = seven_class, trained[2]
    pair = ensemble.build_ensemble([model, model])
    with pytest.raises(ValueError, match=r"'ensemble' is an ensemble of 2: its map is the mean.*"
                                         r"members\(model\)\[i\].*layer_name='x'"):
        gradcam.gradcam_maps(pair, images[:2], layer_name="x")


@pytest.mark.only_backend("tensorflow", reason="the maps come from the same TensorFlow code "
                          "under every backend; this checks where they are placed")
def test_the_maps_of_a_model_that_zooms_in_cover_the_centre_it_sees(trained):
    from fer_keras import models, tta

    model, _, images, _, _ = trained
    zoomed = models.with_inference_zoom(model, 0.75)
    maps = gradcam.gradcam_maps(zoomed, images[:4])
    # The plain model shown the centre it would zoom to gives the same map, stretched.
    centre = tta.resize(images[:4, 6:42, 6:42], 48, 48)
    plain = gradcam.gradcam_maps(model, centre)
    np.testing.assert_allclose(maps[:, 6:42, 6:42], tta.resize(plain[..., None], 36, 36)[..., 0],
                               atol=1e-3)
    assert maps[:, :6].max() == 0 and maps[:, :, 42:].max() == 0
