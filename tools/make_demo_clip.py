"""Make a video of real faces changing expression, to measure label flicker.

`python tools/make_demo_clip.py /tmp/demo_clip.mp4 --data-dir ../shared/fer2013`

No video of a real person's expressions, one after the other, is on this
project's machines, and they have no network. This one is made of real face
photos instead: on the left, a "person" whose face is a FER2013 test photo
of each class in turn (angry, disgust, fear, happy, sad, surprise, neutral),
each held `--hold` seconds, enlarged from 48 to about 150 pixels; on the
right, scikit-image's astronaut photo all along, gone for a quarter of a
second halfway (a detector's miss, as a turned head gives). Both drift,
sway in size and brightness, and every frame gets fresh camera noise, so
the model sees a slightly different face in each frame, as from a camera.

Each class's photo is the first, in file-name order, that OpenCV's Haar
cascade finds as one face once enlarged: chosen by the detector, never by
what the model says. The schedule (which class when) is printed and written
beside the clip as NAME_truth.csv. The clip (about 20 s, a few MB) is not
kept in the repository: this script makes the same one again.
"""

import argparse
import csv
import math
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fer_keras import cli  # noqa: E402

FRAME_SIZE = (640, 480)
# The class folders of the Kaggle layout, in the package's class order.
FOLDERS = {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
           "sad": "sad", "surprise": "surprise", "neutral": "neutral"}
FACE_SIDE = 150  # pixels, before the sway in size
ASTRONAUT_FACE = (150, 40, 160)  # x, y, side of the face's square in the 512 px photo


def soft_mask(side: int, feather: int) -> np.ndarray:
    """A square of ones whose edges fade to 0 over `feather` pixels."""
    ramp = np.clip(np.minimum(np.arange(side), np.arange(side)[::-1]) / feather, 0, 1)
    return np.minimum(ramp[:, None], ramp[None, :])


def framed(face: np.ndarray, side: int) -> np.ndarray:
    """A face photo enlarged to `side` pixels inside a border of its own edge
    pixels, a fifth of its side wide: FER2013 photos are tight crops, and a
    detector looks for a face with some head around it."""
    import cv2

    inner = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    pad = side // 5
    return cv2.copyMakeBorder(inner, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def fer_faces(data_dir: Path, detector) -> dict[str, tuple[Path, np.ndarray]]:
    """For each class, the first test photo the detector finds once enlarged."""
    from fer_keras import media

    chosen = {}
    for name, folder in FOLDERS.items():
        for path in sorted((data_dir / "test" / folder).glob("*")):
            rgb = framed(media.load_image(path), FACE_SIDE)
            if len(detector.detect(rgb)) == 1:
                chosen[name] = (path, rgb)
                break
        else:
            raise SystemExit(f"error: no photo in {data_dir / 'test' / folder} is found as a "
                             "face once enlarged.")
    return chosen


def place(frame: np.ndarray, face: np.ndarray, centre: tuple[float, float], scale: float,
          gain: float) -> None:
    """Blends `face`, scaled and brightened, into `frame` around `centre`."""
    import cv2

    side = max(8, int(round(face.shape[0] * scale)))
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA).astype("float32") * gain
    alpha = soft_mask(side, max(2, side // 12))[..., None]
    x0, y0 = int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2))
    fx0, fy0 = max(0, -x0), max(0, -y0)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(frame.shape[1], x0 + side - fx0), min(frame.shape[0], y0 + side - fy0)
    patch = face[fy0:fy0 + y1 - y0, fx0:fx0 + x1 - x0]
    a = alpha[fy0:fy0 + y1 - y0, fx0:fx0 + x1 - x0]
    frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1 - a) + patch * a


def schedule(hold: float, fps: float) -> list[tuple[int, float, str, str]]:
    """(frame, time, person, class shown) for every frame and face: the left
    person's class changes every `hold` seconds; the astronaut's photo does
    not change (its class is unknown: "-")."""
    frames = int(round(hold * fps * len(FOLDERS)))
    gone = range(int(frames / 2), int(frames / 2 + 0.25 * fps))
    rows = []
    for i in range(frames):
        rows.append((i, i / fps, "left", list(FOLDERS)[int(i / fps // hold)]))
        if i not in gone:
            rows.append((i, i / fps, "astronaut", "-"))
    return rows


def render(path: Path, people: dict[str, np.ndarray], astronaut: np.ndarray, hold: float,
           fps: float, seed: int) -> list[tuple[int, float, str, str]]:
    """Writes the clip; returns its schedule."""
    import cv2

    rng = np.random.default_rng(seed)
    width, height = FRAME_SIZE
    rows = schedule(hold, fps)
    shown = {}
    for frame_index, _, person, name in rows:
        shown.setdefault(frame_index, {})[person] = name
    backdrop = np.linspace(70, 130, height, dtype="float32")[:, None, None] * np.array(
        [0.9, 1.0, 1.1], dtype="float32")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    try:
        for i in sorted(shown):
            t = i / fps
            frame = np.broadcast_to(backdrop, (height, width, 3)).copy()
            gain = 1.0 + 0.08 * math.sin(2 * math.pi * t / 6.0)
            if "left" in shown[i]:
                centre = (180 + 40 * math.sin(2 * math.pi * t / 7.0) + rng.normal(0, 1.5),
                          230 + 25 * math.sin(2 * math.pi * t / 5.0) + rng.normal(0, 1.5))
                scale = 1.0 + 0.12 * math.sin(2 * math.pi * t / 4.5)
                place(frame, people[shown[i]["left"]], centre, scale, gain)
            if "astronaut" in shown[i]:
                centre = (470 + 30 * math.sin(2 * math.pi * t / 6.0 + 1.0) + rng.normal(0, 1.5),
                          240 + 30 * math.sin(2 * math.pi * t / 8.0 + 2.0) + rng.normal(0, 1.5))
                scale = 0.95 + 0.1 * math.sin(2 * math.pi * t / 5.5 + 0.5)
                place(frame, astronaut, centre, scale, gain)
            frame += rng.normal(0, 6.0, frame.shape).astype("float32")
            rgb = np.clip(np.rint(frame), 0, 255).astype("uint8")
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", help="the .mp4 to write")
    parser.add_argument("--data-dir", help="FER2013 in the Kaggle layout (default: "
                        "$FER2013_DIR, else ../shared/fer2013)")
    parser.add_argument("--hold", type=cli.positive_float, default=3.0,
                        help="seconds each expression is held (default 3)")
    parser.add_argument("--fps", type=cli.positive_float, default=25.0,
                        help="frames per second (default 25)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the motion's jitter "
                        "and the noise (default 0)")
    args = parser.parse_args(argv)

    import cv2
    from skimage import data

    from fer_keras import detectors

    data_dir = Path(args.data_dir or os.environ.get("FER2013_DIR") or ROOT.parent / "shared"
                    / "fer2013")
    if not (data_dir / "test").is_dir():
        sys.exit(f"error: {data_dir} has no test/ folder. Expected FER2013 in the Kaggle "
                 f"layout (test/<class>/*.jpg). Received: --data-dir {data_dir}")
    people = fer_faces(data_dir, detectors.HaarDetector())
    x, y, side = ASTRONAUT_FACE
    framed_side = FACE_SIDE + 2 * (FACE_SIDE // 5)  # as large as the FER2013 faces, framed
    astronaut = cv2.resize(data.astronaut()[y:y + side, x:x + side], (framed_side,) * 2,
                           interpolation=cv2.INTER_AREA)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    rows = render(output, {name: rgb for name, (_, rgb) in people.items()}, astronaut,
                  args.hold, args.fps, args.seed)
    truth = output.with_name(output.stem + "_truth.csv")
    with open(truth, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frame", "time_s", "person", "class"])
        writer.writerows((i, f"{t:.4f}", person, name) for i, t, person, name in rows)
    for index, (name, (path, _)) in enumerate(people.items()):
        print(f"{index * args.hold:5.1f}-{(index + 1) * args.hold:5.1f} s  left: {name:8s} "
              f"{path.relative_to(data_dir)}")
    print(f"Wrote {output} ({output.stat().st_size / 1e6:.1f} MB, "
          f"{len({r[0] for r in rows})} frames at {args.fps:g} frames/s) and {truth}")


if __name__ == "__main__":
    main()
