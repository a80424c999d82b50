"""predict.py on a folder of real and broken files, a video and a webcam.

Runs `predict.main` in this process (the model loads once per run); one
subprocess run checks that a bad model ends in one line, not a traceback.
The parts live in the package (fer_keras.media, .results, .prediction) and
their unit tests import them from there."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import keras

import fer_keras
from fer_keras import CLASS_NAMES, loading, prediction
from fer_keras.commands import predict
from fer_keras.media import collect_inputs
from fer_keras.results import CSV_FIELDS, VIDEO_FIELDS, Results
from fer_keras.smoothing import ExponentialSmoother

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

ROOT = Path(__file__).resolve().parents[1]

BACKEND = keras.backend.backend()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "cbam.keras"
    fer_keras.build_model("cbam").save(path)
    return path


def write_video(path, frames, fps=10):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                             (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder as users have them: faces, no face, odd formats and broken files."""
    root = tmp_path_factory.mktemp("photos") / "holiday"
    (root / "day2").mkdir(parents=True)
    astronaut = skimage_data.astronaut()
    Image.fromarray(astronaut).save(root / "astronaut.jpg")
    Image.fromarray(skimage_data.chelsea()).save(root / "day2" / "cat.png")
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    Image.fromarray(grey.astype("uint16") * 257).save(root / "day2" / "deep16.png")
    rgba = np.concatenate([astronaut, np.full((512, 512, 1), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(root / "day2" / "alpha.png")
    Image.fromarray(astronaut).convert("P", palette=Image.Palette.ADAPTIVE).save(
        root / "day2" / "palette.gif")
    Image.fromarray(cv2.resize(astronaut, (3000, 3000))).save(root / "large.jpg", quality=80)
    data = (root / "astronaut.jpg").read_bytes()
    (root / "day2" / "cut.jpg").write_bytes(data[: len(data) // 3])
    (root / "day2" / "not_a_photo.jpg").write_text("hello")
    (root / "day2" / "notes.txt").write_text("ignored: not an image suffix")
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[48:432, 128:512] = cv2.resize(astronaut, (384, 384))
    write_video(root / "clip.mp4", [frame, frame[:, ::-1].copy(), frame])
    (root / "broken.avi").write_text("not a video")
    return root


@pytest.fixture(scope="module")
def run(photos, model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(photos), "--model-path", str(model_path), "--output-dir",
                      str(out), "--backend", BACKEND])
    records = json.loads((out / "predictions.json").read_text())
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return out, exit_info.value, records, rows


def by_name(records):
    return {Path(r["file"]).name: r for r in records["files"]}


def test_faces_found_in_every_readable_photo(run):
    _, _, records, _ = run
    files = by_name(records)
    for name in ("astronaut.jpg", "deep16.png", "alpha.png", "palette.gif", "large.jpg"):
        assert files[name]["status"] == "ok", files[name]
        (face,) = files[name]["faces"]
        assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert face["label"] in CLASS_NAMES
    x, y, w, h = files["large.jpg"]["faces"][0]["box"]
    assert x < 225 * 3000 / 512 < x + w and y < 112 * 3000 / 512 < y + h


def test_no_face_is_reported_not_an_error(run):
    _, _, records, rows = run
    assert by_name(records)["cat.png"]["status"] == "no face"
    assert [r["status"] for r in rows if r["file"].endswith("cat.png")] == ["no face"]


def test_bad_files_are_skipped_and_named(run):
    _, exit_info, records, rows = run
    files = by_name(records)
    assert "notes.txt" not in files
    expected = {
        "cut.jpg": "cut.jpg is truncated or corrupt",
        "not_a_photo.jpg": "not_a_photo.jpg is not an image file",
        "broken.avi": "Could not open .*broken.avi",
    }
    for name, message in expected.items():
        assert files[name]["status"] == "error"
        assert re.search(message, files[name]["error"])
    assert "3 of 10 inputs could not be read" in str(exit_info.code)
    assert {r["file"] for r in rows if r["status"] == "error"} == {
        files[name]["file"] for name in expected}


def test_annotated_copies_keep_the_folder_layout(run, photos):
    out, _, records, _ = run
    annotated = out / "annotated" / photos.name
    assert (annotated / "astronaut.jpg").exists()
    assert (annotated / "day2" / "cat.png").exists()
    assert (annotated / "day2" / "palette.png").exists()
    drawn = np.asarray(Image.open(annotated / "day2" / "alpha.png"))
    assert drawn.shape == (512, 512, 3)
    assert not np.array_equal(drawn, skimage_data.astronaut())


def test_video_gets_an_annotated_video_and_a_row_per_face(run):
    out, _, records, rows = run
    clip = by_name(records)["clip.mp4"]
    assert clip["status"] == "ok" and clip["frames"] == 3
    assert [face["frame"] for face in clip["faces"]] == [0, 1, 2]
    assert [r["frame"] for r in rows if r["file"].endswith("clip.mp4")] == ["0", "1", "2"]
    capture = cv2.VideoCapture(clip["annotated"])
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (
        640, 480)
    capture.release()


def face_frame(dx=0):
    """640x480, the astronaut's face about 75 pixels wide, moved `dx` pixels right."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[48:432, 128 + dx:512 + dx] = cv2.resize(skimage_data.astronaut(), (384, 384))
    return frame


@pytest.fixture(scope="module")
def tracked_run(model_path, tmp_path_factory):
    """A face moving right 6 pixels a frame at 10 frames/s, gone in frame 4."""
    folder = tmp_path_factory.mktemp("video")
    frames = [face_frame(6 * i) for i in range(10)]
    frames[4] = np.full_like(frames[4], 90)
    write_video(folder / "moving.mp4", frames, fps=10)
    out = folder / "out"
    predict.main([str(folder / "moving.mp4"), "--smooth", "0.3", "--model-path",
                  str(model_path), "--output-dir", str(out), "--backend", BACKEND])
    (record,) = json.loads((out / "predictions.json").read_text())["files"]
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return out, record, rows


def test_a_video_face_keeps_its_track_and_its_time(tracked_run):
    _, record, rows = tracked_run
    assert record["frames"] == 10 and record["fps"] == 10.0 and record["smooth_s"] == 0.3
    assert [r["frame"] for r in rows] == ["0", "1", "2", "3", "5", "6", "7", "8", "9"]
    assert {r["track"] for r in rows} == {"1"}  # through the frame it was missed in
    assert [float(r["time_s"]) for r in rows] == [int(r["frame"]) / 10 for r in rows]
    assert [f["track"] for f in record["faces"]] == [1] * 9


def test_a_video_row_has_the_smoothed_label_and_the_raw_one(tracked_run):
    _, record, rows = tracked_run
    assert list(rows[0])[len(CSV_FIELDS) + 7:][:len(VIDEO_FIELDS)] == list(VIDEO_FIELDS)
    smoother = ExponentialSmoother(0.3)
    for row in rows:
        raw = np.array([float(row[f"raw_{name}"]) for name in CLASS_NAMES])
        shown = np.array([float(row[name]) for name in CLASS_NAMES])
        assert row["raw_label"] == CLASS_NAMES[int(np.argmax(raw))]
        assert row["label"] == CLASS_NAMES[int(np.argmax(shown))]
        assert float(row["score"]) == pytest.approx(shown.max(), abs=2e-6)
        np.testing.assert_allclose(shown, smoother.update(1, float(row["time_s"]), raw),
                                   atol=2e-6)
    face = record["faces"][5]
    assert face["raw_label"] in CLASS_NAMES and list(face["raw_probabilities"]) == list(
        CLASS_NAMES)


def test_a_video_gets_a_timeline_and_a_summary_of_its_tracks(tracked_run):
    out, record, rows = tracked_run
    annotated = out / "annotated"
    assert record["annotated"] == str(annotated / "moving.mp4")
    assert record["timeline"] == str(annotated / "moving_timeline.png")
    assert (annotated / "moving_timeline.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((annotated / "moving_tracks.json").read_text())
    assert record["tracks_file"] == str(annotated / "moving_tracks.json")
    assert summary["tracks"] == record["tracks"]
    (track,) = summary["tracks"]
    assert (track["track"], track["frames"], track["first_s"], track["last_s"]) == (
        1, 9, 0.0, 0.9)
    # Time on screen under each shown label: 9 frames of 0.1 s.
    shown = [r["label"] for r in rows]
    assert track["share"] == {name: pytest.approx(shown.count(name) / 9, abs=1e-4)
                              for name in CLASS_NAMES}
    assert track["label"] == max(track["share"], key=track["share"].get)
    assert summary["label_switches_per_s"] == record["label_switches_per_s"]


def test_smooth_0_shows_the_raw_label(photos, model_path, tmp_path):
    predict.main([str(photos / "clip.mp4"), "--smooth", "0", "--model-path", str(model_path),
                  "--output-dir", str(tmp_path), "--backend", BACKEND])
    with open(tmp_path / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    for row in rows:
        assert row["label"] == row["raw_label"]
        assert [row[name] for name in CLASS_NAMES] == [row[f"raw_{n}"] for n in CLASS_NAMES]


def test_csv_columns(run):
    _, _, _, rows = run
    row = next(r for r in rows if r["file"].endswith("astronaut.jpg"))
    assert list(row)[:9] == list(CSV_FIELDS)
    assert sum(float(row[name]) for name in CLASS_NAMES) == pytest.approx(1.0, abs=1e-3)
    top = max(float(row[name]) for name in CLASS_NAMES)
    assert float(row[row["label"]]) == pytest.approx(top, abs=2e-6)
    assert float(row["score"]) == pytest.approx(top, abs=2e-6)
    assert all(row[field] == "" for field in VIDEO_FIELDS)


def test_single_image_with_tta_and_no_errors(photos, model_path, tmp_path, capsys):
    """A bare --tta still means mirror, before a PATH too (the old flag's commands)."""
    predict.main(["--tta", str(photos / "astronaut.jpg"), str(photos / "day2" / "cat.png"),
                  "--model-path", str(model_path), "--output-dir", str(tmp_path),
                  "--backend", BACKEND])
    out = capsys.readouterr().out
    assert "2 inputs, 1 faces" in out
    assert "no face found: " in out and "cat.png" in out
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert records["tta"] == "mirror"
    assert (tmp_path / "annotated" / "astronaut.jpg").exists()


def test_tta_takes_the_modes_of_evaluate(photos, model_path, tmp_path):
    """--tta ten_crop, as evaluate.py: the recognizer's ten-crop probabilities."""
    from fer_keras import faces

    photo = photos / "astronaut.jpg"
    predict.main([str(photo), "--tta", "ten_crop", "--model-path", str(model_path),
                  "--output-dir", str(tmp_path), "--backend", BACKEND])
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert records["tta"] == "ten_crop"
    (face,) = records["files"][0]["faces"]
    recognizer = faces.EmotionRecognizer(model_path, tta="ten_crop",
                                         detection_size=prediction.IMAGE_DETECTION_SIZE)
    (expected,) = recognizer.predict(faces.load_image(photo))
    assert face["box"] == list(expected.box)
    np.testing.assert_allclose(list(face["probabilities"].values()), expected.probabilities,
                               atol=1e-5)


def test_several_model_paths_predict_with_their_ensemble(photos, model_path, tmp_path):
    from fer_keras import faces

    keras.utils.set_random_seed(5)
    second = tmp_path / "second.keras"
    fer_keras.build_model("baseline").save(second)
    photo = photos / "astronaut.jpg"
    predict.main([str(photo), "--model-path", str(model_path), "--model-path", str(second),
                  "--output-dir", str(tmp_path / "out"), "--backend", BACKEND])
    records = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert records["model"] == [str(model_path), str(second)]
    (face,) = records["files"][0]["faces"]
    got = list(face["probabilities"].values())
    found = {}
    for name, model in (("ensemble", [model_path, second]), ("first", model_path)):
        recognizer = faces.EmotionRecognizer(model, detection_size=prediction.IMAGE_DETECTION_SIZE)
        (found[name],) = recognizer.predict(faces.load_image(photo))
    np.testing.assert_allclose(got, found["ensemble"].probabilities, atol=1e-5)
    assert np.abs(found["first"].probabilities - found["ensemble"].probabilities).max() > 1e-4


@pytest.mark.parametrize("argv, expected", [
    (["--tta", "a.jpg"], ["--tta=mirror", "a.jpg"]),
    (["--tta", "dir/photo"], ["--tta=mirror", "dir/photo"]),
    (["a.jpg", "--tta"], None), (["--tta", "--backend", "jax", "a.jpg"], None),
    (["--tta", "ten_crop", "a.jpg"], None), (["--tta", "mirror", "a.jpg"], None),
    (["--tta=none", "a.jpg"], None), (["--tta", "tencrop"], None),
    (["--", "--tta", "a.jpg"], None),
])
def test_bare_tta_before_a_path_means_mirror(argv, expected):
    """Only a bare --tta followed by a path is rewritten; a misspelt mode is left to argparse."""
    from fer_keras import tta

    assert prediction.bare_tta_means_mirror(argv, tta.TTA_MODES) == (expected or argv)


def test_misspelt_tta_mode_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["a.jpg", "--tta", "tencrop", "--backend", BACKEND])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--tta: invalid choice: 'tencrop'" in err and "ten_crop" in err


@pytest.mark.parametrize("content", [None, "notes.txt"])
def test_a_folder_without_images_is_an_error(model_path, tmp_path, capsys, content):
    """It used to exit 0, saying only "0 inputs"."""
    folder = tmp_path / "empty"
    folder.mkdir()
    if content:
        (folder / content).write_text("not a picture")
    with pytest.raises(SystemExit, match="1 of 1 inputs could not be read"):
        predict.main([str(folder), "--model-path", str(model_path), "--output-dir",
                      str(tmp_path / "out"), "--backend", BACKEND])
    assert f"no images or videos found in {folder}" in capsys.readouterr().err
    (record,) = json.loads((tmp_path / "out" / "predictions.json").read_text())["files"]
    assert record["status"] == "error" and record["kind"] == "folder"


def test_an_export_without_its_runtime_says_what_to_install(exports_without_runtime):
    """An .onnx file or a SavedModel folder used to get "expected a .keras archive"."""
    onnx, saved = exports_without_runtime
    with pytest.raises(SystemExit, match=r"^error: predict.py runs .*model.onnx \(ONNX export\) "
                       r"with onnxruntime, which is not installed: pip install onnxruntime"):
        predict.main(["x.jpg", "--model-path", str(onnx), "--backend", BACKEND])
    with pytest.raises(SystemExit, match=r"SavedModel export\).*pip install tensorflow"):
        predict.main(["x.jpg", "--model-path", str(saved), "--backend", BACKEND])


@pytest.mark.slow
def test_onnx_export_predicts_like_its_keras_file(served_files, photos, tmp_path):
    pytest.importorskip("onnxruntime")
    photo = str(photos / "astronaut.jpg")
    found = {}
    for kind in ("keras", "onnx"):
        out = tmp_path / kind
        predict.main([photo, "--model-path", str(served_files[kind]), "--output-dir", str(out),
                      "--backend", BACKEND])
        (found[kind],) = json.loads((out / "predictions.json").read_text())["files"][0]["faces"]
    assert found["onnx"]["box"] == found["keras"]["box"]
    np.testing.assert_allclose(list(found["onnx"]["probabilities"].values()),
                               list(found["keras"]["probabilities"].values()), atol=1e-5)


def test_collect_inputs(photos, tmp_path):
    inputs, missing = collect_inputs([photos, photos / "day2" / "notes.txt",
                                      tmp_path / "nowhere"])
    names = {str(name): kind for _, name, kind in inputs}
    assert names["holiday/clip.mp4"] == "video" and names["holiday/day2/cat.png"] == "image"
    assert "holiday/day2/notes.txt" not in names  # found in a folder: not an image suffix
    assert names["notes.txt"] == "image"  # named: tried whatever its suffix
    assert [error for _, error in missing] == [f"{tmp_path / 'nowhere'}: no such file or folder"]


def test_results_writer(tmp_path):
    from fer_keras import faces

    results = Results(tmp_path, CLASS_NAMES)
    first = results.annotated_path(Path("a/photo.gif"), "image")
    assert first == tmp_path / "annotated" / "a" / "photo.png"
    assert results.annotated_path(Path("a/photo.gif"), "image").name == "photo_2.png"
    assert results.annotated_path(Path("clip.avi"), "video").name == "clip.mp4"
    probabilities = np.linspace(1, 7, 7) / 28
    face = faces.Face((1, 2, 3, 4), probabilities, faces.Detection((1.0, 2.0, 3.0, 4.0)))
    results.add("photo.gif", "image", [(0, [face])], annotated=first)
    results.add("cat.png", "image", [(0, [])])
    results.add("cut.jpg", "image", error="cut.jpg is truncated or corrupt")
    csv_path, json_path = results.write({"model": "m"})
    records = json.loads(json_path.read_text())
    assert records["model"] == "m"
    assert [r["status"] for r in records["files"]] == ["ok", "no face", "error"]
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ok", "no face", "error"]
    assert (rows[0]["x"], rows[0]["label"], rows[0]["neutral"]) == ("1", "neutral", "0.250000")
    assert rows[2]["error"] == "cut.jpg is truncated or corrupt"


def test_missing_path_and_webcam_without_camera(model_path, tmp_path):
    with pytest.raises(SystemExit, match="2 of 2 inputs could not be read"):
        predict.main([str(tmp_path / "nowhere.jpg"), "--webcam", "97", "--model-path",
                      str(model_path), "--output-dir", str(tmp_path), "--backend", BACKEND])
    errors = {r["file"]: r["error"] for r in
              json.loads((tmp_path / "predictions.json").read_text())["files"]}
    assert "no such file or folder" in errors[str(tmp_path / "nowhere.jpg")]
    assert "Could not open webcam 97" in errors["webcam 97"]


def test_webcam_until_ctrl_c_keeps_what_it_saw(model_path, tmp_path, monkeypatch):
    from fer_keras import media

    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[48:432, 128:512] = cv2.resize(skimage_data.astronaut(), (384, 384))

    def camera(source, max_frames=None):
        assert source == 0
        for _ in range(3):
            yield frame
        raise KeyboardInterrupt

    monkeypatch.setattr(media, "read_video", camera)
    predict.main(["--webcam", "0", "--model-path", str(model_path), "--output-dir",
                  str(tmp_path), "--backend", BACKEND])
    (record,) = json.loads((tmp_path / "predictions.json").read_text())["files"]
    assert record["file"] == "webcam 0" and record["status"] == "ok"
    assert record["frames"] == 3 and [f["frame"] for f in record["faces"]] == [0, 1, 2]
    assert Path(record["annotated"]).name == "webcam0.mp4"
    # Tracked and smoothed live, on the clock's time.
    assert [f["track"] for f in record["faces"]] == [1, 1, 1]
    times = [f["time_s"] for f in record["faces"]]
    assert times[0] == 0.0 and times == sorted(times)
    assert Path(record["timeline"]).name == "webcam0_timeline.png"


def test_model_with_wrong_input_shape(tmp_path):
    inputs = keras.Input((48, 48, 3))
    outputs = keras.layers.Dense(7)(keras.layers.GlobalAveragePooling2D()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "rgb.keras")
    with pytest.raises(loading.ModelFileError, match="rgb.keras takes inputs of shape"):
        predict.main(["x.jpg", "--model-path", str(tmp_path / "rgb.keras"), "--backend",
                      BACKEND])


@pytest.mark.skipif("GUI:                           NONE" not in cv2.getBuildInformation(),
                    reason="this OpenCV has a GUI")
def test_show_without_a_gui_says_what_to_install(model_path):
    with pytest.raises(SystemExit, match="pip install opencv-python"):
        predict.main(["--webcam", "0", "--show", "--model-path", str(model_path),
                      "--backend", BACKEND])


def test_nothing_to_do_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--backend", BACKEND])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_bad_model_file_is_one_line(tmp_path):
    (tmp_path / "model.keras").write_text("not a model")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), "photo.jpg", "--model-path",
         str(tmp_path / "model.keras"), "--backend", BACKEND],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'model.keras'} is not a Keras model file")


@pytest.mark.parametrize("batch_size", ["0", "-1", "2.5"])
def test_a_batch_size_below_one_is_refused_before_any_work(batch_size, photos, capsys):
    """-1 used to skip every image and exit 0; 0 ended in a traceback."""
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(photos), "--batch-size", batch_size, "--backend", BACKEND])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--batch-size" in err and f"Received: '{batch_size}'" in err
