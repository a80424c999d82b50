"""Grad-CAM and Grad-CAM++ maps of any saved model, through tf-keras-vis.

tf-keras-vis differentiates the model with `tf.GradientTape`, so it needs a
model running on the TensorFlow backend. Keras 3 has one backend per process,
fixed when Keras is imported, so:

- under `KERAS_BACKEND=tensorflow` the model is used as it is, in process;
- under jax or torch, the model (a `.keras` path, or an in-memory model that is
  first saved to a temporary `.keras` file) is loaded in a short-lived
  subprocess with `KERAS_BACKEND=tensorflow`, which computes the maps and
  hands them back in an `.npz` file. A `.keras` file holds no backend-specific
  state, so the maps are those of the very same weights. The subprocess runs
  TensorFlow on the CPU: the parent's backend may hold the GPU's memory or the
  TPU (which only one process may open), and maps for a grid of faces take
  seconds on a CPU. Each call pays for starting TensorFlow, so pass all
  images in one call. Arguments, layer names and the model file are
  checked in the calling process first, so mistakes fail before that.

An ensemble (`fer_keras.build_ensemble`) is explained by the mean of its
members' maps, each for the class the ensemble chose: its logit is the mean
of theirs. Models saved under mixed precision are cloned to float32 first: tf-keras-vis
cannot compute maps in bfloat16, and float32 maps are the more accurate.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

import keras

from fer_keras.classes import CLASS_NAMES
from fer_keras.ensemble import is_ensemble, members
from fer_keras.errors import install_extra, unknown
from fer_keras.loading import load_model
from fer_keras.models import gradcam_layer_name, inference_zoom
from fer_keras.tta import crop_size, resize

METHODS = ("gradcam", "gradcam++")

_WORKER_CODE = (
    "import sys; from fer_keras.gradcam import _worker; _worker(sys.argv[1], sys.argv[2])"
)


def gradcam_maps(
    model_or_path: "keras.Model | str | os.PathLike",
    images: np.ndarray,
    class_indices: "int | Sequence[int] | np.ndarray | None" = None,
    layer_name: str | None = None,
    method: str = "gradcam",
    batch_size: int = 64,
) -> np.ndarray:
    """Class activation maps of `images`, one (H, W) map in [0, 1] per image.

    Args:
        model_or_path: a Keras model, or the path of a `.keras` file saved
            under any backend. An ensemble's map is the mean of its members'
            maps, each at its last conv block, for the class the ensemble chose.
        images: raw 0-255 grey images, (N, H, W, 1) or (N, H, W).
        class_indices: the class whose map to draw, one for all images or one
            per image; None draws the class the model predicts.
        layer_name: the layer whose feature map is weighted; None uses the
            last conv block (`fer_keras.models.gradcam_layer_name`). An
            ensemble takes None only.
        method: "gradcam" or "gradcam++".
        batch_size: images per gradient computation.

    Returns:
        float32 array (N, H, W): each map min-max scaled to [0, 1].
    """
    return _compute(model_or_path, images, class_indices, layer_name, method, batch_size)[
        "maps"
    ]


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.4,
            colormap: str = "jet") -> np.ndarray:
    """The map drawn in colour over the grey face, as RGB uint8 (H, W, 3).

    Args:
        image: a raw 0-255 grey image, (H, W) or (H, W, 1).
        cam: its map, (H, W) in [0, 1].
        alpha: weight of the map's colours against the face.
        colormap: a Matplotlib colormap name.
    """
    from matplotlib import colormaps

    grey = np.asarray(image, dtype="float32")
    if grey.ndim == 3 and grey.shape[-1] == 1:
        grey = grey[..., 0]
    cam = np.asarray(cam, dtype="float32")
    if grey.ndim != 2 or cam.shape != grey.shape:
        raise ValueError(
            "`overlay` expects a grey image (H, W) or (H, W, 1) and a map (H, W) of "
            f"the same size. Received: image.shape={np.shape(image)}, "
            f"cam.shape={np.shape(cam)}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must lie in [0, 1]. Received: alpha={alpha}")
    face = np.repeat(np.clip(grey, 0, 255)[..., None] / 255.0, 3, axis=-1)
    heat = colormaps[colormap](np.clip(cam, 0.0, 1.0))[..., :3]
    blended = (1.0 - alpha) * face + alpha * heat
    return np.round(blended * 255.0).astype("uint8")


def gradcam_grid(
    model_or_path: "keras.Model | str | os.PathLike",
    images: np.ndarray,
    labels: np.ndarray,
    per_class: int = 4,
    output_path: "str | os.PathLike" = "gradcam.png",
    seed: int = 0,
    method: str = "gradcam",
    layer_name: str | None = None,
    class_names: Sequence[str] | None = None,
    predicted: np.ndarray | None = None,
    errors_only: bool = False,
) -> Path:
    """Writes a PNG of Grad-CAM maps, `per_class` random images of each class.

    One row per class; each face is titled with its true and predicted label
    (red when wrong) and overlaid with the map of the predicted class, so one
    sees what the model looked at when right and when wrong. With
    `errors_only`, only faces predicted wrong are drawn: what the model saw
    in each class it confuses.

    Args:
        model_or_path: a Keras model, or a `.keras` file saved under any backend.
        images: raw 0-255 grey images, (N, H, W, 1) or (N, H, W).
        labels: their true classes, (N,).
        per_class: images drawn from each class present in `labels`.
        output_path: where to write the PNG.
        seed: seed of the random choice of images.
        method: "gradcam" or "gradcam++".
        layer_name: the target layer; None uses the last conv block.
        class_names: names of the model's classes; None uses `CLASS_NAMES`
            for 7-class models and the class numbers otherwise.
        predicted: the predicted class of each image, (N,), as an evaluation
            made them (with test-time augmentation, say): the faces are titled
            with them and their maps drawn. None: the model's own predictions
            of the images as they are.
        errors_only: draw only images whose `predicted` class is not their
            label (`predicted` must be given).

    Returns:
        The path of the PNG.
    """
    images = _as_batch(images)
    labels = np.asarray(labels).astype("int64").reshape(-1)
    if len(labels) != len(images):
        raise ValueError(
            "`images` and `labels` must have the same length. Received: "
            f"{len(images)} images and {len(labels)} labels"
        )
    if int(per_class) < 1:
        raise ValueError(f"`per_class` must be at least 1. Received: per_class={per_class}")
    if predicted is not None:
        predicted = np.asarray(predicted).astype("int64").reshape(-1)
        if len(predicted) != len(labels):
            raise ValueError(
                "`predicted` must give one class per image. Received: "
                f"{len(labels)} images and {len(predicted)} predictions"
            )
    if errors_only and predicted is None:
        raise ValueError("`errors_only` draws the images predicted wrong: pass their "
                         "predictions as `predicted`. Received: predicted=None")
    drawn = predicted != labels if errors_only else np.ones(len(labels), bool)
    if not drawn.any():
        raise ValueError(f"No image to draw: all {len(labels)} images are predicted right.")
    picks = _grid_picks(labels, int(per_class), seed, drawn)
    chosen = np.concatenate(picks)
    explained = None if predicted is None else predicted[chosen]
    result = _compute(model_or_path, images[chosen], explained, layer_name, method, 64)
    if explained is None:
        explained = result["logits"].argmax(axis=-1)
    class_names = _grid_class_names(class_names, result["logits"].shape[-1],
                                    int(labels.max()) + 1)
    faces = [
        (overlay(images[i], cam), labels[i], guess)
        for i, cam, guess in zip(chosen, result["maps"], explained)
    ]
    title = (f"{'Grad-CAM++' if method == 'gradcam++' else 'Grad-CAM'} of the predicted "
             f"class{', errors only' if errors_only else ''}\n{_layer_label(result['layers'])}")
    return _draw_grid([len(pick) for pick in picks], int(per_class), faces, class_names,
                      title, Path(output_path))


def _grid_picks(labels: np.ndarray, per_class: int, seed: int,
                drawn: np.ndarray) -> list[np.ndarray]:
    """For each class with images to draw, in order, up to `per_class` of
    those images' indices at random."""
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(labels[drawn]):
        candidates = np.flatnonzero((labels == c) & drawn)
        picks.append(np.sort(rng.choice(candidates, min(per_class, len(candidates)),
                                        replace=False)))
    return picks


def _grid_class_names(class_names, num_classes: int, num_label_classes: int) -> Sequence[str]:
    """The names to title faces with: `CLASS_NAMES` for 7-class models, else numbers."""
    if class_names is None:
        class_names = CLASS_NAMES if num_classes == len(CLASS_NAMES) else [
            str(i) for i in range(num_classes)
        ]
    if len(class_names) < max(num_classes, num_label_classes):
        raise ValueError(
            f"`class_names` must name all {max(num_classes, num_label_classes)} classes. "
            f"Received: class_names={list(class_names)}"
        )
    return class_names


def _draw_grid(row_lengths: list[int], columns: int, faces: list, class_names: Sequence[str],
               title: str, output_path: Path) -> Path:
    """Writes the grid: one row a class, each face (overlay, true, predicted)
    titled green when right and red when wrong."""
    from fer_keras.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(len(row_lengths), columns, squeeze=False, layout="constrained",
                             figsize=(max(1.9 * columns, 3.8), 2.15 * len(row_lengths) + 0.6))
    remaining = iter(faces)
    for r, length in enumerate(row_lengths):
        for col in range(columns):
            ax = axes[r, col]
            ax.axis("off")
            if col >= length:
                continue
            image, true, predicted = next(remaining)
            ax.imshow(image)
            ax.set_title(f"true {class_names[true]}\npred {class_names[predicted]}",
                         fontsize=9, color="tab:green" if true == predicted else "tab:red")
    fig.suptitle(title, fontsize=10)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output_path, dpi=110)
    plt.close(fig)
    return output_path


def _as_batch(images) -> np.ndarray:
    images = np.asarray(images, dtype="float32")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            "Expected a non-empty batch of grey images of shape (N, H, W, 1) or "
            f"(N, H, W). Received: images.shape={images.shape}"
        )
    return images


def check_installed() -> None:
    """Raises an ImportError naming the extra to install, where Grad-CAM's
    libraries are missing; callers check before long work."""
    missing = [name for name, module in (("tensorflow", "tensorflow"),
                                         ("tf-keras-vis", "tf_keras_vis"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(
            f"Grad-CAM is computed with tf-keras-vis on TensorFlow, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install with "
            f"`{install_extra('gradcam')}` (that is, pip install {' '.join(missing)}; any "
            "Keras backend can stay in use)."
        )


def _check_method(method) -> None:
    if method not in METHODS:
        raise unknown("Grad-CAM method", method, METHODS, "method")


def _resolve_layer(model: keras.Model, layer_name: str | None) -> str:
    """The target layer's name; a clear error for one that does not exist or
    has no spatial output to weight."""
    if layer_name is None:
        return gradcam_layer_name(model)
    spatial = [layer.name for layer in model.layers if _output_rank(layer) == 4]
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(
            f"Model {model.name!r} has no layer {layer_name!r}. Layers with a spatial "
            f"output that Grad-CAM can use include: {', '.join(spatial[-8:]) or 'none'}. "
            f"Received: layer_name={layer_name!r}"
        )
    if layer_name not in spatial:
        raise ValueError(
            "Grad-CAM needs a layer whose output is a feature map (batch, height, width, "
            f"channels). Layers that qualify include: {', '.join(spatial[-8:]) or 'none'}. "
            f"Received: layer_name={layer_name!r}"
        )
    return layer_name


def _output_rank(layer) -> int:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):
        return -1


def _compute(model_or_path, images, class_indices, layer_name, method, batch_size) -> dict:
    """Maps, logits and the layer used, in process or in a TensorFlow subprocess.

    Everything is checked here, under the current backend, so that mistakes
    fail fast with a clear error before a TensorFlow process is started.
    """
    _check_method(method)
    images = _as_batch(images)
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be at least 1. Received: batch_size={batch_size}")
    check_installed()
    model = model_or_path
    if not isinstance(model, keras.Model):
        model = load_model(model_or_path, num_classes=None)
    if is_ensemble(model) and layer_name is not None:
        raise ValueError(
            f"{model.name!r} is an ensemble of {len(members(model))}: its map is the mean "
            "of its members' maps, each at its own last conv block. To choose the "
            "layer, compute the maps of a member: `fer_keras.ensemble.members(model)[i]`. "
            f"Received: layer_name={layer_name!r}"
        )
    layers = ([gradcam_layer_name(member) for member in members(model)] if is_ensemble(model)
              else [_resolve_layer(model, layer_name)])
    if class_indices is not None:
        class_indices = _check_class_indices(class_indices, len(images),
                                             int(model.outputs[0].shape[-1]))
    if runs_in_process():
        return _tf_compute(model, images, class_indices, layers, method, int(batch_size))
    with tempfile.TemporaryDirectory(prefix="fer_keras_gradcam_") as tmp:
        if isinstance(model_or_path, keras.Model):
            model_path = Path(tmp) / "model.keras"
            model.save(model_path)
        else:
            model_path = Path(model_or_path).resolve()
        return _tensorflow_subprocess(Path(tmp), model_path, images, class_indices, layers,
                                      method, int(batch_size))


def runs_in_process() -> bool:
    """Whether the maps are computed in this process (the TensorFlow backend)
    rather than in a TensorFlow subprocess given the `.keras` file."""
    return keras.backend.backend() == "tensorflow"


def _check_class_indices(class_indices, count: int, num_classes: int) -> np.ndarray:
    class_indices = np.asarray(class_indices)
    if class_indices.ndim == 0:
        class_indices = np.full(count, class_indices)
    if class_indices.shape != (count,) or not np.issubdtype(class_indices.dtype, np.integer):
        raise ValueError(
            "`class_indices` must be one integer class or one per image. Received: "
            f"{count} images and class_indices of shape {class_indices.shape}, "
            f"dtype {class_indices.dtype}"
        )
    if np.any((class_indices < 0) | (class_indices >= num_classes)):
        raise ValueError(
            f"`class_indices` must lie in [0, {num_classes}) for a model with "
            f"{num_classes} outputs. Received: class_indices={np.unique(class_indices).tolist()}"
        )
    return class_indices.astype("int64")


def _tensorflow_subprocess(tmp: Path, model_path: Path, images, class_indices, layers, method,
                           batch_size) -> dict:
    """Runs `_tf_compute` on the `.keras` file in a process with KERAS_BACKEND=tensorflow."""
    request, response = tmp / "request.npz", tmp / "response.npz"
    np.savez(
        request,
        model_path=str(model_path),
        images=images,
        class_indices=np.zeros(0, "int64") if class_indices is None else class_indices,
        has_class_indices=class_indices is not None,
        layers=np.array(layers),
        method=method,
        batch_size=batch_size,
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_USE_LEGACY_KERAS="0")
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    done = subprocess.run(
        [sys.executable, "-c", _WORKER_CODE, str(request), str(response)],
        env=env, capture_output=True, text=True,
    )
    if done.returncode != 0 or not response.exists():
        raise RuntimeError(
            "Computing the Grad-CAM maps with TensorFlow in a subprocess failed "
            f"(exit code {done.returncode}). Its output ends with:\n{done.stderr[-3000:]}"
        )
    with np.load(response) as result:
        return {"maps": result["maps"], "logits": result["logits"], "layers": list(layers)}


def _worker(request_path: str, response_path: str) -> None:
    """The subprocess' entry point, under KERAS_BACKEND=tensorflow."""
    import tensorflow as tf

    # The parent's backend may hold the GPU or TPU; a few maps are quick on CPU.
    tf.config.set_visible_devices([], "GPU")
    with np.load(request_path) as request:
        args = {key: request[key] for key in request.files}
    result = _tf_compute(
        load_model(str(args["model_path"]), num_classes=None),
        args["images"],
        args["class_indices"] if bool(args["has_class_indices"]) else None,
        [str(layer) for layer in args["layers"]],
        str(args["method"]),
        int(args["batch_size"]),
    )
    np.savez(response_path, maps=result["maps"], logits=result["logits"])


def _tf_compute(model, images, class_indices, layers, method, batch_size) -> dict:
    """The maps by tf-keras-vis; needs the TensorFlow backend.

    An ensemble's map is the mean of its members' maps (`layers` names one
    layer of each), each for the class the ensemble chose: its logits are the
    mean of theirs, so each member's share of the score is its own logit.
    """
    import tensorflow as tf

    if tf.keras.Model is not keras.Model:
        raise RuntimeError(
            "tf-keras-vis builds its models with `tf.keras`, which is Keras 2 (tf_keras) "
            "here, not the Keras 3 of fer_keras. Unset TF_USE_LEGACY_KERAS. Received: "
            f"TF_USE_LEGACY_KERAS={os.environ.get('TF_USE_LEGACY_KERAS')!r}"
        )
    parts = [_float32(part) for part in members(model) or [model]]
    logits = np.mean([_logits(part, images, batch_size) for part in parts], axis=0)
    if class_indices is None:
        class_indices = logits.argmax(axis=-1)
    maps = [_member_maps(part, images, class_indices, layer, method, batch_size)
            for part, layer in zip(parts, layers)]
    maps = maps[0] if len(maps) == 1 else _rescaled(np.mean(maps, axis=0))
    return {"maps": maps, "logits": logits.astype("float32"), "layers": list(layers)}


def _logits(model, images, batch_size) -> np.ndarray:
    return np.concatenate([
        keras.ops.convert_to_numpy(model(images[i:i + batch_size], training=False))
        for i in range(0, len(images), batch_size)
    ]).astype("float32")


def _member_maps(model, images, class_indices, layer, method, batch_size) -> np.ndarray:
    """The maps of one (float32) model by tf-keras-vis, on the pixels it saw."""
    from tf_keras_vis.gradcam import Gradcam, GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    # Softmax saturates, so its gradients say little: weight the logits instead.
    ends_in_softmax = getattr(model.layers[-1], "activation", None) is keras.activations.softmax
    visualizer = (GradcamPlusPlus if method == "gradcam++" else Gradcam)(
        model, model_modifier=ReplaceToLinear() if ends_in_softmax else None
    )
    maps = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        cams = visualizer(
            CategoricalScore([int(c) for c in class_indices[start:start + batch_size]]),
            batch,
            penultimate_layer=layer,
            seek_penultimate_conv_layer=False,
        )
        maps.append(np.asarray(cams).reshape(batch.shape[:3]))
    maps = np.clip(np.nan_to_num(np.concatenate(maps)), 0.0, 1.0).astype("float32")
    zoom = inference_zoom(model)
    if zoom is not None:
        maps = _into_centre(maps, zoom)
    return maps


def _rescaled(maps: np.ndarray) -> np.ndarray:
    """Each map min-max scaled to [0, 1], as tf-keras-vis scales one model's;
    a flat map becomes zeros."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0).astype("float32")


def _layer_label(layers: Sequence[str]) -> str:
    """The layer(s) the maps weight, as a grid's title names them."""
    if len(layers) == 1:
        return f"layer {layers[0]}"
    return f"the mean of the members' maps, layers {', '.join(layers)}"


def _into_centre(maps: np.ndarray, zoom: float) -> np.ndarray:
    """The maps of a model that zooms in (`InferenceZoom`) on the pixels it saw.

    tf-keras-vis stretches each map over the whole input, but the feature
    maps of such a model cover only the centre `zoom` of the image: shrink
    each map into that centre, with nothing outside it.
    """
    height, width = maps.shape[1:3]
    crop_h, crop_w = crop_size(height, width, zoom)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    placed = np.zeros_like(maps)
    placed[:, top:top + crop_h, left:left + crop_w] = resize(
        maps[..., None], crop_h, crop_w)[..., 0]
    return np.clip(placed, 0.0, 1.0)


def _float32(model: keras.Model) -> keras.Model:
    """`model`, or a float32 clone with the same weights if it uses mixed precision."""
    if all(layer.compute_dtype == "float32" for layer in model.layers):
        return model

    def as_float32(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=as_float32)
    clone.set_weights(model.get_weights())
    return clone
