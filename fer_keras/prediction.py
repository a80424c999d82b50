"""Classifying the faces in photos, folders, videos and a webcam: predict.py's work.

`predict_all` runs a recognizer over what `fer_keras.media.collect_inputs`
found, writes an annotated copy of each input and records every face in a
`fer_keras.results.Results`. A video's faces are tracked and their labels
smoothed over time (`fer_keras.timeline`), and each video gets a timeline
picture and a per-track summary beside its annotated copy. A file that
cannot be read is recorded and skipped, so that one broken photo does not
cost a folder's run; Ctrl+C keeps what was seen so far.
"""

import json
import sys
import time
from pathlib import Path

import keras

from fer_keras import detectors, faces, media, plots
from fer_keras.results import Results
from fer_keras.timeline import DEFAULT_MAX_MISSED, DEFAULT_SMOOTH_S, FaceTimeline

# Photos are detected on a larger copy than video frames, which must keep up.
IMAGE_DETECTION_SIZE = 800
VIDEO_DETECTION_SIZE = 400
WINDOW = "fer-keras (q quits)"


def predict_images(recognizer: faces.EmotionRecognizer, images: list, results: Results,
                   batch_size: int, progbar: keras.utils.Progbar) -> None:
    """Classifies the images a batch at a time; a bad file is recorded, not raised."""
    from PIL import Image

    for start in range(0, len(images), batch_size):
        batch, loaded = images[start:start + batch_size], []
        for file, name, _ in batch:
            try:
                loaded.append((file, name, media.load_image(file)))
            except media.ImageFileError as err:
                results.add(file, "image", error=str(err))
        found = recognizer.predict_batch([rgb for _, _, rgb in loaded])
        for (file, name, rgb), frame_faces in zip(loaded, found):
            out = results.annotated_path(name, "image")
            Image.fromarray(faces.annotate(rgb, frame_faces)).save(out)
            results.add(file, "image", [(0, frame_faces)], annotated=out)
        progbar.add(len(batch))


def predict_video(recognizer: faces.EmotionRecognizer, source: "str | Path | int", name: Path,
                  results: Results, batch_size: int, max_frames: int | None,
                  show: bool, smooth_s: float = DEFAULT_SMOOTH_S,
                  max_missed: int = DEFAULT_MAX_MISSED) -> None:
    """Classifies a video file or webcam (int `source`), tracking and
    smoothing its faces (`FaceTimeline`), and writes an annotated .mp4, its
    timeline .png and its tracks' summary .json."""
    cv2 = detectors.import_cv2()
    kind = "webcam" if isinstance(source, int) else "video"
    label = f"webcam {source}" if kind == "webcam" else source
    fps, count = (15.0, 0) if kind == "webcam" else media.video_info(source)
    fps = fps or 25.0
    if kind == "webcam":
        batch_size = 1  # each frame as soon as it arrives
    target = min(count, max_frames) if count and max_frames else (count or max_frames)
    progbar = keras.utils.Progbar(target or None, unit_name="frame")
    timeline = FaceTimeline(smooth_s, max_missed)
    out, writer, found, index, interrupted = None, None, [], 0, False
    frames = media.read_video(source, max_frames)
    stamped = _stamped(frames, fps, live=kind == "webcam")
    try:
        while True:
            batch = [item for _, item in zip(range(batch_size), stamped)]
            if not batch:
                break
            predicted = recognizer.predict_batch([frame for _, frame in batch])
            for (time_s, frame), frame_faces in zip(batch, predicted):
                tracked = timeline.add(time_s, frame_faces)
                bgr = cv2.cvtColor(faces.annotate(frame, tracked), cv2.COLOR_RGB2BGR)
                if writer is None:
                    out = results.annotated_path(name, kind)
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"),
                                             fps, (bgr.shape[1], bgr.shape[0]))
                writer.write(bgr)
                if show and _show(cv2, bgr):
                    raise KeyboardInterrupt
                found.append((index, tracked))
                index += 1
            progbar.update(index)
    except KeyboardInterrupt:
        interrupted = True
    except (media.ImageFileError, cv2.error) as err:
        results.add(label, kind, error=str(err))
        return
    finally:
        if writer is not None:
            writer.release()
        frames.close()
    if index == 0 and not interrupted:
        results.add(label, kind, error=f"{label}: no frame could be decoded.")
    elif index:
        details = write_timeline(timeline, results, out, str(label), fps)
        results.add(label, kind, found, annotated=out, frames=index,
                    details={"fps": fps, **details})
    if interrupted:
        # Recorded what was seen; Ctrl+C (or q) still ends the whole run.
        raise KeyboardInterrupt


def write_timeline(timeline: FaceTimeline, results: Results, annotated: Path,
                   file: str, fps: float) -> dict:
    """Writes a video's timeline picture and its tracks' summary beside its
    annotated copy; returns what its record keeps of them, and prints the
    flicker it measured."""
    summary = timeline.summary()
    rates = timeline.switch_rates()
    picture = plots.plot_timeline(
        {track: timeline.series(track) for track in timeline.tracks},
        results.beside(annotated, "_timeline.png"),
        frame_interval=float(timeline.frame_durations()[-1]) or 1.0 / fps,
        title=f"{Path(file).name}: smoothed over {timeline.smooth_s:g} s")
    details = {"smooth_s": timeline.smooth_s, "label_switches_per_s": rates,
               "timeline": str(picture), "tracks": summary}
    tracks_file = results.beside(annotated, "_tracks.json")
    tracks_file.write_text(json.dumps({"file": file, **details}, indent=2))
    print(f"{len(summary)} track(s); label switches per second of track time: "
          f"{rates['raw']:.2f} raw, {rates['shown']:.2f} shown (smoothed over "
          f"{timeline.smooth_s:g} s)")
    return {**details, "tracks_file": str(tracks_file)}


def _stamped(frames, fps: float, live: bool):
    """(time in seconds, frame) pairs: by the clock since the first frame for
    a live source, whose frames come when they come; by frame number over
    `fps` for a file."""
    start = None
    for index, frame in enumerate(frames):
        now = time.monotonic()
        start = now if start is None else start
        yield (now - start if live else index / fps), frame


def predict_all(recognizer: faces.EmotionRecognizer, inputs: list, results: Results,
                batch_size: int = 8, webcam: int | None = None, max_frames: int | None = None,
                show: bool = False, detection_size: int | None = None,
                smooth_s: float = DEFAULT_SMOOTH_S, max_missed: int = DEFAULT_MAX_MISSED) -> None:
    """Classifies the photos, then the videos, then the webcam, into `results`.

    `detection_size` overrides the defaults, `IMAGE_DETECTION_SIZE` for
    photos and `VIDEO_DETECTION_SIZE` for video. `smooth_s` and `max_missed`
    set each video's `FaceTimeline`. Ctrl+C stops the run and keeps what was
    recorded.
    """
    images = [item for item in inputs if item[2] == "image"]
    try:
        recognizer.detection_size = detection_size or IMAGE_DETECTION_SIZE
        if images:
            progbar = keras.utils.Progbar(len(images), unit_name="image")
            predict_images(recognizer, images, results, batch_size, progbar)
        recognizer.detection_size = detection_size or VIDEO_DETECTION_SIZE
        for file, name, kind in inputs:
            if kind == "video":
                print(f"{file}:")
                predict_video(recognizer, file, name, results, batch_size, max_frames, show,
                              smooth_s, max_missed)
        if webcam is not None:
            print(f"webcam {webcam} (Ctrl+C stops):")
            predict_video(recognizer, webcam, Path(f"webcam{webcam}.mp4"), results,
                          batch_size, max_frames, show, smooth_s, max_missed)
    except KeyboardInterrupt:
        print("\nStopped: writing the predictions made so far.")


def report(results: Results, csv_path: Path, json_path: Path) -> str | None:
    """Prints what was found and skipped; returns the error line to end with,
    or None when every input could be read."""
    records = results.records
    num_faces = sum(len(r["faces"]) for r in records)
    print(f"{len(records)} inputs, {num_faces} faces. Wrote {csv_path} and {json_path}")
    for record in records:
        if record["status"] == "no face":
            print(f"no face found: {record['file']}")
    errors = [r for r in records if r["status"] == "error"]
    for record in errors:
        print(f"skipped: {record['error']}", file=sys.stderr)
    if not errors:
        return None
    return f"error: {len(errors)} of {len(records)} inputs could not be read (listed above)."


def _show(cv2, bgr) -> bool:
    """Shows a frame; True once the user pressed q."""
    cv2.imshow(WINDOW, bgr)
    return cv2.waitKey(1) & 0xFF == ord("q")


def check_display() -> None:
    """Raises an ImportError, saying what to install, if OpenCV cannot open a window."""
    cv2 = detectors.import_cv2()
    try:
        cv2.namedWindow(WINDOW)
    except cv2.error as err:
        raise ImportError(
            "--show needs an OpenCV build with a GUI: pip install opencv-python "
            "(opencv-python-headless cannot open windows)."
        ) from err


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
