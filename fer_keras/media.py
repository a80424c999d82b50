"""Photos and videos as RGB frames: the files read, and the files found.

`load_image` reads any image file Pillow knows (as training data is decoded,
`fer_keras.images`), `read_video` the frames of a video or a webcam through
OpenCV; both raise `ImageFileError` naming the file. `collect_inputs` finds
the photos and videos of a prediction run: folders are searched recursively
for files with an image or video suffix; a file named by the user is tried
whatever its suffix, so that an odd name gets a clear "not an image file"
rather than being skipped in silence.
"""

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from fer_keras.detectors import import_cv2

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
# The largest image read, as Pillow's own decompression-bomb guard: past it a
# file is more likely an attack or an error than a photo (its RGB copy alone
# would take over 0.5 GB).
MAX_IMAGE_PIXELS = 2 * 89_478_485


class ImageFileError(ValueError):
    """An image or video file that cannot be read."""


def load_image(path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Reads any image file Pillow knows as RGB uint8 (H, W, 3), upright.

    Handles what photos come as: EXIF rotation, palette, alpha (laid on white),
    16-bit, float and bilevel images, by the rules of `fer_keras.images`,
    which training data is decoded with too. Raises `ImageFileError` naming
    the file for a missing, truncated, non-image or too large (over
    `max_pixels`) file. `path` may also be a binary file (an upload held in
    memory, `io.BytesIO`), named in messages by its `name` attribute, else
    "The upload".
    """
    from PIL import Image, UnidentifiedImageError

    from fer_keras import images as image_decoder

    if hasattr(path, "read"):
        source, name = path, getattr(path, "name", "The upload")
    else:
        source = name = Path(path)
        if not source.is_file():
            raise ImageFileError(f"{name}: no such file.")
    try:
        image = image_decoder.open_image(source, max_pixels=max_pixels)
    except UnidentifiedImageError:
        raise ImageFileError(
            f"{name} is not an image file Pillow can read (expected e.g. JPEG, PNG, "
            "BMP, WebP, TIFF, GIF)."
        ) from None
    except Image.DecompressionBombError as err:
        raise ImageFileError(
            f"{name} is too large to read safely ({err}); the limit is "
            f"{max_pixels:,} pixels. Downscale it first."
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageFileError(f"{name} is truncated or corrupt: {err}.") from None
    return _pil_to_rgb(image)


def _pil_to_rgb(image) -> np.ndarray:
    """RGB uint8 pixels of an open Pillow image, as training decodes them."""
    from fer_keras import images as image_decoder

    return image_decoder.to_array(image, "RGB")


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def read_video(path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """The RGB frames of a video file, or of webcam number `path` if an int."""
    cv2 = import_cv2()
    capture = cv2.VideoCapture(path if isinstance(path, int) else str(path))
    try:
        if not capture.isOpened():
            what = f"webcam {path}" if isinstance(path, int) else str(path)
            raise ImageFileError(
                f"Could not open {what} as a video: OpenCV cannot decode it or the "
                "device does not exist."
            )
        count = 0
        while max_frames is None or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def video_info(path) -> tuple[float, int]:
    """(frames per second, frame count) of a video file; 0 where unknown."""
    cv2 = import_cv2()
    capture = cv2.VideoCapture(str(path))
    try:
        return (float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
                int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        capture.release()




def collect_inputs(
    paths: list[str | os.PathLike],
) -> tuple[list[tuple[Path, Path, str]], list[tuple[Path, str]]]:
    """(file, annotated name, kind) for each input, and (path, error) for the
    missing paths and the folders without an image or video.

    The annotated name keeps a folder's layout below the folder's own name,
    so that photos of two folders with the same file names do not collide.
    `kind` is "image" or "video".
    """
    from PIL import Image

    image_suffixes = set(Image.registered_extensions())
    inputs, missing = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = 0
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if is_video(file) or file.suffix.lower() in image_suffixes:
                    name = Path(path.resolve().name) / file.relative_to(path)
                    inputs.append((file, name, _kind(file)))
                    found += 1
            if not found:
                missing.append((path, f"no images or videos found in {path}"))
        elif path.is_file():
            inputs.append((path, Path(path.name), _kind(path)))
        else:
            missing.append((path, f"{path}: no such file or folder"))
    return inputs, missing


def _kind(path: Path) -> str:
    return "video" if is_video(path) else "image"
