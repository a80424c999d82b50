"""The one-backend smoke set: what a user of `pip install "fer-keras[BACKEND]"` does.

Run by `.ci/run` with the python of a fresh environment holding the built
wheel and one backend, from a folder outside the checkout, so that nothing
of the checkout is importable:

    python .ci/smoke.py jax FER2013_DIR

It checks that the other backends and TensorFlow are absent, then loads the
shipped model, trains two steps, evaluates on a small folder, predicts on a
photo, and asks for Grad-CAM, which must fail in one line naming the extra.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BACKENDS = ("jax", "tensorflow", "torch")
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"smoke: FAILED: {what}")
    print(f"smoke: ok: {what}", flush=True)


def command(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "fer-keras"
    result = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=900)
    if result.returncode != expect:
        sys.exit(f"smoke: FAILED: fer-keras {' '.join(args)} exited {result.returncode}, "
                 f"expected {expect}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def small_folder(source: Path, target: Path, per_class: int = 4) -> Path:
    """A few real FER2013 images per class, in the Kaggle layout."""
    for split in ("train", "test"):
        for name in CLASSES:
            files = sorted((source / split / name).glob("*.jpg"))[:per_class]
            folder = target / split / name
            folder.mkdir(parents=True)
            for file in files:
                (folder / file.name).write_bytes(file.read_bytes())
    return target


def face_photo(source: Path, path: Path) -> Path:
    """A FER2013 face, enlarged on a grey background, as a photo to predict on."""
    from PIL import Image

    face = Image.open(sorted((source / "test" / "happy").glob("*.jpg"))[0]).convert("RGB")
    photo = Image.new("RGB", (480, 360), (128, 128, 128))
    photo.paste(face.resize((240, 240), Image.BICUBIC), (120, 60))
    photo.save(path)
    return path


def main() -> None:
    backend, fer2013 = sys.argv[1], Path(sys.argv[2])
    os.environ["KERAS_BACKEND"] = backend
    others = [m for m in BACKENDS if m != backend]
    check(all(importlib.util.find_spec(m) is None for m in others),
          f"only {backend} installed ({', '.join(others)} not importable)")
    check("site-packages" in importlib.util.find_spec("fer_keras").origin,
          "fer_keras comes from the installed wheel")

    import fer_keras

    model = fer_keras.load_pretrained()
    check(model.output.shape[-1] == 7, "load_pretrained() gives the 7-class model")

    work = Path(tempfile.mkdtemp())
    data = small_folder(fer2013, work / "data")
    result = command("train", "--backend", backend, "--model", "baseline", "--data-dir",
                     str(data), "--output-dir", str(work / "run"), "--epochs", "1",
                     "--steps-per-epoch", "2", "--batch-size", "8", "--val-split", "0.25",
                     "--quiet")
    run = json.loads((work / "run" / "run.json").read_text())
    check(run["status"] == "completed" and run["backend"] == backend, "a two-step train")
    if backend != "tensorflow":
        check(run["pipeline"] == "device" and "--pipeline device" in result.stderr,
              "without TensorFlow, train picks the array pipeline and says so")

    command("evaluate", "--backend", backend, "--model-path", str(work / "run" / "model.keras"),
            "--data-dir", str(data), "--output-dir", str(work / "eval"))
    metrics = json.loads((work / "eval" / "metrics.json").read_text())
    check(metrics["num_samples"] == 7 * 4, "evaluate on a small folder")

    photo = face_photo(fer2013, work / "photo.jpg")
    command("predict", "--backend", backend, str(photo), "--output-dir", str(work / "pred"))
    faces = json.loads((work / "pred" / "predictions.json").read_text())
    found = [face for record in faces["files"] for face in record.get("faces", [])]
    check(len(found) == 1, f"predict finds the face in a photo (label {found[0]['label']!r})"
          if found else "predict finds the face in a photo")

    if backend != "tensorflow":
        result = command("evaluate", "--backend", backend, "--data-dir", str(data),
                         "--gradcam", "1", "--output-dir", str(work / "cam"), expect=1)
        lines = result.stderr.strip().splitlines()
        check(len(lines) == 1 and 'pip install "fer-keras[gradcam]"' in lines[0]
              and "Traceback" not in result.stderr,
              f"Grad-CAM without TensorFlow fails in one line: {lines[-1] if lines else ''}")


if __name__ == "__main__":
    main()
