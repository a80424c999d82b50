"""The photos and videos a prediction run classifies, found from paths.

Folders are searched recursively for files with an image or video suffix;
a file named by the user is tried whatever its suffix, so that an odd name
gets a clear "not an image file" rather than being skipped in silence.
"""

import os
from pathlib import Path

from fer_keras import faces


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
                if faces.is_video(file) or file.suffix.lower() in image_suffixes:
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
    return "video" if faces.is_video(path) else "image"
