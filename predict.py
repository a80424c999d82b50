"""Tell the emotion of each face in photos, folders, videos or a webcam.

    python predict.py photo.jpg holidays/ clip.mp4 --output-dir predictions
    python predict.py --webcam 0 --max-frames 300
    python predict.py photo.jpg --tta ten_crop

Writes an annotated copy of each input (box and "label 87%" on each face; an
.mp4 for a video) under OUTPUT_DIR/annotated/, and every face's box and class
probabilities to OUTPUT_DIR/predictions.csv and predictions.json. A file that
cannot be read is reported and skipped; a photo without a face is reported,
not an error. Exits with status 1 if any input could not be read, and for a
folder with no image or video in it.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import cli

CSV_FIELDS = ("file", "frame", "status", "x", "y", "width", "height", "label", "score")
KEEP_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IMAGE_DETECTION_SIZE = 800
VIDEO_DETECTION_SIZE = 400


def collect_inputs(paths):
    """(file, annotated name, kind) for each input, and (path, error) for the
    missing paths and the folders without an image or video.

    Folders are searched recursively for files with an image or video suffix;
    a file named on the command line is tried whatever its suffix.
    """
    from PIL import Image

    from fer_keras import faces

    image_suffixes = set(Image.registered_extensions())
    inputs, missing = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = 0
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                suffix = file.suffix.lower()
                if faces.is_video(file) or suffix in image_suffixes:
                    name = Path(path.resolve().name) / file.relative_to(path)
                    inputs.append((file, name, "video" if faces.is_video(file) else "image"))
                    found += 1
            if not found:
                missing.append((path, f"no images or videos found in {path}"))
        elif path.is_file():
            inputs.append((path, Path(path.name), "video" if faces.is_video(path) else "image"))
        else:
            missing.append((path, f"{path}: no such file or folder"))
    return inputs, missing


class Results:
    """Collects one record per input and writes predictions.csv / .json."""

    def __init__(self, output_dir: Path, class_names):
        self.output_dir = output_dir
        self.class_names = class_names
        self.records = []
        self._used_names = set()

    def annotated_path(self, name: Path, kind: str) -> Path:
        """A unique path under annotated/ for an input's annotated copy."""
        if kind != "image":
            suffix = ".mp4"
        elif name.suffix.lower() in KEEP_SUFFIXES:
            suffix = name.suffix.lower()
        else:
            suffix = ".png"
        base = self.output_dir / "annotated" / name.with_suffix(suffix)
        path, n = base, 1
        while path in self._used_names:
            n += 1
            path = base.with_name(f"{base.stem}_{n}{base.suffix}")
        self._used_names.add(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add(self, file, kind, faces_by_frame=(), annotated=None, error=None, frames=None):
        found = [{"frame": i, **face.to_dict()}
                 for i, frame_faces in faces_by_frame for face in frame_faces]
        status = "error" if error else ("ok" if found else "no face")
        record = {"file": str(file), "kind": kind, "status": status}
        if error:
            record["error"] = error
        if annotated:
            record["annotated"] = str(annotated)
        if frames is not None:
            record["frames"] = frames
        record["faces"] = found
        self.records.append(record)

    def write(self, meta: dict) -> tuple[Path, Path]:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        json_path = self.output_dir / "predictions.json"
        json_path.write_text(json.dumps({**meta, "files": self.records}, indent=2))
        csv_path = self.output_dir / "predictions.csv"
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[*CSV_FIELDS, *self.class_names, "error"])
            writer.writeheader()
            for record in self.records:
                row = {"file": record["file"], "status": record["status"],
                       "error": record.get("error", "")}
                if not record["faces"]:
                    writer.writerow(row)
                for face in record["faces"]:
                    x, y, w, h = face["box"]
                    writer.writerow({
                        **row, "frame": face["frame"], "x": x, "y": y, "width": w,
                        "height": h, "label": face["label"], "score": f"{face['score']:.6f}",
                        **{k: f"{v:.6f}" for k, v in face["probabilities"].items()},
                    })
        return csv_path, json_path


def predict_images(recognizer, images, results, batch_size, progbar):
    """Classifies the images a batch at a time; a bad file is recorded, not raised."""
    from PIL import Image

    from fer_keras import faces

    for start in range(0, len(images), batch_size):
        batch, loaded = images[start:start + batch_size], []
        for file, name, _ in batch:
            try:
                loaded.append((file, name, faces.load_image(file)))
            except faces.ImageFileError as err:
                results.add(file, "image", error=str(err))
        found = recognizer.predict_batch([rgb for _, _, rgb in loaded])
        for (file, name, rgb), frame_faces in zip(loaded, found):
            out = results.annotated_path(name, "image")
            Image.fromarray(faces.annotate(rgb, frame_faces)).save(out)
            results.add(file, "image", [(0, frame_faces)], annotated=out)
        progbar.add(len(batch))


def predict_video(recognizer, source, name, results, batch_size, max_frames, show):
    """Classifies a video file or webcam (int `source`) and writes an annotated .mp4."""
    import keras

    from fer_keras import faces

    cv2 = faces.import_cv2()
    kind = "webcam" if isinstance(source, int) else "video"
    label = f"webcam {source}" if kind == "webcam" else source
    fps, count = (15.0, 0) if kind == "webcam" else faces.video_info(source)
    if kind == "webcam":
        batch_size = 1  # each frame as soon as it arrives
    target = min(count, max_frames) if count and max_frames else (count or max_frames)
    progbar = keras.utils.Progbar(target or None, unit_name="frame")
    out, writer, found, index, interrupted = None, None, [], 0, False
    frames = faces.read_video(source, max_frames)
    try:
        while True:
            batch = [frame for _, frame in zip(range(batch_size), frames)]
            if not batch:
                break
            for frame, frame_faces in zip(batch, recognizer.predict_batch(batch)):
                annotated = faces.annotate(frame, frame_faces)
                bgr = cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR)
                if writer is None:
                    out = results.annotated_path(name, kind)
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"),
                                             fps or 25.0, (bgr.shape[1], bgr.shape[0]))
                writer.write(bgr)
                if show and _show(cv2, bgr):
                    raise KeyboardInterrupt
                found.append((index, frame_faces))
                index += 1
            progbar.update(index)
    except KeyboardInterrupt:
        interrupted = True
    except (faces.ImageFileError, cv2.error) as err:
        results.add(label, kind, error=str(err))
        return
    finally:
        if writer is not None:
            writer.release()
        frames.close()
    if index == 0 and not interrupted:
        results.add(label, kind, error=f"{label}: no frame could be decoded.")
    elif index:
        results.add(label, kind, found, annotated=out, frames=index)
    if interrupted:
        # Recorded what was seen; Ctrl+C (or q) still ends the whole run.
        raise KeyboardInterrupt


def _show(cv2, bgr) -> bool:
    """Shows a frame; True once the user pressed q."""
    cv2.imshow("fer-keras (q quits)", bgr)
    return cv2.waitKey(1) & 0xFF == ord("q")


def _check_display(cv2) -> None:
    try:
        cv2.namedWindow("fer-keras (q quits)")
    except cv2.error:
        sys.exit("error: --show needs an OpenCV build with a GUI: pip install "
                 "opencv-python (opencv-python-headless cannot open windows).")


def bare_tta_means_mirror(argv: list[str], modes: tuple[str, ...]) -> list[str]:
    """`argv` with a bare `--tta` followed by a PATH written `--tta=mirror`.

    `--tta` takes an optional mode, as in evaluate.py; without this, the old
    `predict.py --tta photo.jpg` would read photo.jpg as the mode. A word
    that looks like neither a path nor a file (a misspelt mode) is left for
    argparse to refuse with the choices.
    """
    argv = list(argv)
    for i, arg in enumerate(argv[:-1]):
        if arg == "--":
            break
        following = argv[i + 1]
        if arg == "--tta" and following not in modes and not following.startswith("-") and (
            any(c in following for c in "./\\") or Path(following).exists()
        ):
            argv[i] = "--tta=mirror"
    return argv


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    backend = cli.select_backend(argv)

    with cli.native_log_filtered():
        import keras

        from fer_keras import CLASS_NAMES, faces, inference, tta

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_backend_argument(parser)
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="image, folder (searched recursively) or video file")
    parser.add_argument("--webcam", type=int, metavar="N", help="read webcam number N")
    parser.add_argument("--model-path", help=".keras file, or a .tflite from export.py "
                        "(default: the default pretrained model)")
    parser.add_argument("--detector", choices=faces.DETECTORS, default="haar")
    parser.add_argument("--output-dir", default="predictions")
    cli.add_tta_argument(parser, tta.TTA_MODES, unit="face")
    parser.add_argument("--margin", type=float, default=0.1,
                        help="fraction of the face box added on each side (default 0.1)")
    parser.add_argument("--detection-size", type=int,
                        help="detect on a copy downscaled to this longest side; raise "
                        f"it for small faces (default {IMAGE_DETECTION_SIZE} for images, "
                        f"{VIDEO_DETECTION_SIZE} for video, which must keep up)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=8,
                        help="images or video frames per model call (default 8; "
                        "a webcam's frames go one by one)")
    parser.add_argument("--max-frames", type=int, help="stop each video after N frames")
    parser.add_argument("--show", action="store_true",
                        help="show video frames in a window (needs opencv-python)")
    args = parser.parse_args(bare_tta_means_mirror(argv, tta.TTA_MODES))
    if not args.paths and args.webcam is None:
        parser.error("give at least one PATH or --webcam N")
    if args.model_path:
        inference.check_model_path(args.model_path, runner="predict.py")
    cli.check_output_folder("--output-dir", args.output_dir)

    try:
        recognizer = faces.EmotionRecognizer(
            args.model_path, detector=args.detector, margin=args.margin, tta=args.tta,
            detection_size=args.detection_size or IMAGE_DETECTION_SIZE,
        )
    except ImportError as err:
        sys.exit(f"error: {err}")
    if args.show:
        _check_display(faces.import_cv2())
    inputs, missing = collect_inputs(args.paths)
    results = Results(Path(args.output_dir), CLASS_NAMES)
    for path, error in missing:
        results.add(path, "folder" if path.is_dir() else "unknown", error=error)

    images = [item for item in inputs if item[2] == "image"]
    try:
        if images:
            progbar = keras.utils.Progbar(len(images), unit_name="image")
            predict_images(recognizer, images, results, args.batch_size, progbar)
        recognizer.detection_size = args.detection_size or VIDEO_DETECTION_SIZE
        for file, name, kind in inputs:
            if kind == "video":
                print(f"{file}:")
                predict_video(recognizer, file, name, results, args.batch_size,
                              args.max_frames, args.show)
        if args.webcam is not None:
            print(f"webcam {args.webcam} (Ctrl+C stops):")
            predict_video(recognizer, args.webcam, Path(f"webcam{args.webcam}.mp4"),
                          results, args.batch_size, args.max_frames, args.show)
    except KeyboardInterrupt:
        print("\nStopped: writing the predictions made so far.")

    csv_path, json_path = results.write({
        "model": args.model_path or "pretrained:cbam", "detector": args.detector,
        "backend": backend, "tta": args.tta, "classes": list(CLASS_NAMES),
    })
    _summarize(results.records, csv_path, json_path)


def _summarize(records, csv_path, json_path) -> None:
    num_faces = sum(len(r["faces"]) for r in records)
    print(f"{len(records)} inputs, {num_faces} faces. Wrote {csv_path} and {json_path}")
    for record in records:
        if record["status"] == "no face":
            print(f"no face found: {record['file']}")
    errors = [r for r in records if r["status"] == "error"]
    for record in errors:
        print(f"skipped: {record['error']}", file=sys.stderr)
    if errors:
        sys.exit(f"error: {len(errors)} of {len(records)} inputs could not be read "
                 "(listed above).")


if __name__ == "__main__":
    cli.run(main)
