"""Pack FER2013's training split into one file, for a machine that has no copy.

`python tools/pack_data.py fer2013_train.npz --data-dir ../shared/fer2013`

A GPU machine lent for one run has no FER2013 folder and no network, and
all it is sent must stay small (64 MiB with the repository). The image files
are therefore stored byte for byte, JPEG staying JPEG, with their labels, in
a `.npz` that NumPy reads anywhere: the 28,709 training JPEGs hold 44.0 MB,
against 66 MB decoded, and the pack 34.7 MB, because its deflate removes the
318-byte header every file repeats. `read_pack` decodes them with the
package's own decoder (Pillow) into exactly the arrays
`fer_keras.data.load_split` gives, in the same order, so a seed draws the
same validation split from the pack as from the folder.

Only the training split goes into a pack: the test split stays on the
machine that holds it, to be looked at once.
"""

import argparse
import concurrent.futures
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fer_keras import cli  # noqa: E402

PACK_FORMAT = "fer_keras.pack/1"
PACK_KEYS = ("format", "split", "class_names", "labels", "offsets", "data")


def pack_split(data_dir: str | os.PathLike | None, path: str | os.PathLike,
               split: str = "train") -> Path:
    """Writes the image files of `split` and their labels to the `.npz` at `path`.

    The files are listed as `load_split` lists them (class by class, names
    sorted), so the pack keeps its order. Written beside `path` and renamed
    over it: an interrupted run leaves no half pack.

    Raises:
        DataError: `data_dir` is not a FER2013 image-folder copy.
    """
    from fer_keras import data as fer_data

    kind, source = fer_data.find_layout(fer_data.locate_data(data_dir))
    if kind != "folders":
        raise fer_data.DataError(
            f"{source} is a csv of pixel values, not image files: a pack holds "
            "image files as they are. Pass a folder holding train/<class>/ images "
            "(the Kaggle msambare/fer2013 layout) with --data-dir."
        )
    paths, labels, _ = fer_data.list_folder_split(source, split)
    blobs = [Path(p).read_bytes() for p in paths]
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial")
    with open(partial, "wb") as f:
        # Compressed: the scans do not shrink, but the headers all files share do.
        np.savez_compressed(
            f,
            format=np.array(PACK_FORMAT),
            split=np.array(split),
            class_names=np.array(fer_data.CLASS_NAMES),
            labels=np.asarray(labels, np.int32),
            offsets=offsets,
            data=np.frombuffer(b"".join(blobs), np.uint8),
        )
    os.replace(partial, path)
    return path


def _open_pack(path: Path) -> dict:
    from fer_keras.data import CLASS_NAMES, DataError

    remedy = ("Make it again with `python tools/pack_data.py PATH --data-dir "
              "FER2013_FOLDER`.")
    if not path.is_file():
        raise DataError(f"Pack file not found: {path}. {remedy}")
    try:
        with np.load(path, allow_pickle=False) as pack:
            found = sorted(pack.files)
            if not set(PACK_KEYS) <= set(found):
                raise DataError(
                    f"{path} is not a FER2013 pack: expected the arrays "
                    f"{', '.join(PACK_KEYS)}. Found: {', '.join(found) or 'none'}. "
                    + remedy
                )
            arrays = {key: pack[key] for key in PACK_KEYS}
    except (OSError, ValueError) as err:
        raise DataError(f"Could not read {path} as a `.npz` pack ({err}). {remedy}") from err
    if str(arrays["format"]) != PACK_FORMAT:
        raise DataError(
            f"{path} is a pack of format {str(arrays['format'])!r}; this reader "
            f"knows {PACK_FORMAT!r}. {remedy}"
        )
    if [str(c) for c in arrays["class_names"]] != list(CLASS_NAMES):
        raise DataError(
            f"{path} labels its images with the classes "
            f"{[str(c) for c in arrays['class_names']]}; expected {list(CLASS_NAMES)}. "
            + remedy
        )
    offsets, data = arrays["offsets"], arrays["data"]
    if (len(offsets) != len(arrays["labels"]) + 1 or offsets[0] != 0
            or offsets[-1] != data.size or np.any(np.diff(offsets) <= 0)):
        raise DataError(
            f"{path} is damaged: its {len(arrays['labels'])} labels, "
            f"{len(offsets)} offsets and {data.size} bytes do not agree. {remedy}"
        )
    return arrays


def read_pack(path: str | os.PathLike, workers: int | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 48, 48, 1) and labels int32 (N,) of the pack at `path`.

    The same arrays as `fer_keras.data.load_split` on the folder that was
    packed. Decoded on `workers` threads (default: up to 16).

    Raises:
        DataError: `path` is not a pack `pack_split` wrote, or an image in it
            does not decode.
    """
    from fer_keras import data as fer_data

    path = Path(path)
    arrays = _open_pack(path)
    data, offsets = arrays["data"], arrays["offsets"]

    def decode(i: int) -> np.ndarray:
        blob = io.BytesIO(data[offsets[i]:offsets[i + 1]].tobytes())
        try:
            return fer_data.decode_image(blob)[0]
        except fer_data.DataError as err:
            raise fer_data.DataError(
                f"Image {i} of {path} does not decode ({err.__cause__}). The pack is "
                "damaged: make it again with tools/pack_data.py."
            ) from err

    count = len(arrays["labels"])
    images = np.empty((count, fer_data.IMAGE_SIZE, fer_data.IMAGE_SIZE, 1), np.uint8)
    workers = workers or min(16, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for i, pixels in enumerate(pool.map(decode, range(count))):
            images[i, :, :, 0] = pixels
    return images, arrays["labels"].astype(np.int32)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the pack to write, e.g. fer2013_train.npz")
    parser.add_argument("--data-dir", help="FER2013 folder holding train/<class>/ images "
                        "(default: $FER2013_DIR, else download with kagglehub)")
    args = parser.parse_args(argv)
    cli.select_backend([])  # Packing reads files only; any backend does.
    from fer_keras.data import DataError, class_counts

    start = time.perf_counter()
    try:
        path = pack_split(args.data_dir, args.output)
    except DataError as err:
        sys.exit(f"error: {err}")
    with np.load(path) as pack:
        labels = pack["labels"]
    print(f"Packed {len(labels)} training images ({class_counts(labels)}) into {path}: "
          f"{path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    cli.run(main)
