"""The reader of the original `fer2013.csv` (`emotion,pixels,Usage`)."""

import csv
import pathlib
import warnings

import numpy as np

from fer_keras.classes import CLASS_NAMES
from fer_keras.data.readers import IMAGE_SIZE, DataError, Reader, SplitListing

CSV_NAME = "fer2013.csv"
CSV_COLUMNS = ("emotion", "pixels", "Usage")

# Split name -> the csv `Usage` values it holds.
CSV_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("Training",),
    "test": ("PublicTest", "PrivateTest"),
    "public_test": ("PublicTest",),
    "private_test": ("PrivateTest",),
}


class Fer2013Csv(Reader):
    """The Kaggle challenge's csv: one row of 2304 grey values per image."""

    name = CSV_NAME
    kind = "csv"
    splits = tuple(CSV_SPLITS)

    def __repr__(self) -> str:
        return "Fer2013Csv()"

    def describe(self) -> str:
        return f"the original {CSV_NAME} with columns {','.join(CSV_COLUMNS)}"

    def find(self, path: pathlib.Path) -> pathlib.Path | None:
        if path.is_file():
            return path if path.suffix.lower() == ".csv" else None
        if (path / CSV_NAME).is_file():
            return path / CSV_NAME
        return None

    def list_split(self, source: pathlib.Path, split: str) -> SplitListing:
        if split not in CSV_SPLITS:
            raise ValueError(
                f"Split {split!r} is not in {CSV_NAME}. Expected one of: "
                f"{', '.join(CSV_SPLITS)}. Received: split={split!r}"
            )
        stat = source.stat()
        return SplitListing(source, split, [(source.name, stat.st_size, stat.st_mtime_ns)])

    def read_split(self, listing: SplitListing) -> tuple[np.ndarray, np.ndarray]:
        return read_csv(listing.source, listing.split)


FER2013_CSV = Fer2013Csv()


def parse_pixels(text: str) -> np.ndarray | None:
    """Space-separated integers as an array, None if any is not an integer."""
    with warnings.catch_warnings():
        # Text-mode fromstring parses a row several times faster than splitting
        # (benchmarks/README.md, "Data pipeline"); on a bad token it warns
        # (older NumPy) or raises, and here both mean "not integers".
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None


def _describe_pixels(values: np.ndarray | None) -> str:
    if values is None:
        return "non-integer values"
    if values.size == 0:
        return "no values"
    return f"{values.size} values in {values.min()}..{values.max()}"


def read_csv(path: pathlib.Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `split` in the original fer2013.csv, checked row by row."""
    usages = CSV_SPLITS[split]
    known = {u for values in CSV_SPLITS.values() for u in values}
    images, labels = [], []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not set(CSV_COLUMNS) <= set(header):
            raise DataError(
                f"{path} has the wrong columns. Expected: {', '.join(CSV_COLUMNS)}. "
                f"Found: {', '.join(header) or 'no header'}. Use the original "
                "fer2013.csv (Kaggle challenges-in-representation-learning)."
            )
        emotion, pixels, usage = (header.index(c) for c in CSV_COLUMNS)
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}, line {line}"
            if len(row) < len(header):
                raise DataError(
                    f"{where}: expected {len(header)} fields "
                    f"({', '.join(header)}), found {len(row)}."
                )
            row_usage = row[usage].strip()
            if row_usage not in known:
                raise DataError(
                    f"{where}: unknown Usage {row[usage]!r}. Expected one of: "
                    f"{', '.join(sorted(known))}."
                )
            if row_usage not in usages:
                continue
            try:
                label = int(row[emotion])
            except ValueError:
                label = -1
            if not 0 <= label < len(CLASS_NAMES):
                raise DataError(
                    f"{where}: label {row[emotion]!r} is out of range. Expected "
                    f"an integer 0-{len(CLASS_NAMES) - 1} "
                    f"({', '.join(CLASS_NAMES)})."
                )
            values = parse_pixels(row[pixels])
            if (
                values is None
                or values.size != IMAGE_SIZE * IMAGE_SIZE
                or values.min() < 0
                or values.max() > 255
            ):
                raise DataError(
                    f"{where}: bad pixel row. Expected {IMAGE_SIZE * IMAGE_SIZE} "
                    f"space-separated integers 0-255, found "
                    f"{_describe_pixels(values)}. Fix or delete the row."
                )
            images.append(values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 1))
            labels.append(label)
    if not images:
        raise DataError(f"{path} has no rows with Usage {' or '.join(usages)}.")
    labels = np.asarray(labels, np.int32)
    if split == "train" and np.bincount(labels, minlength=len(CLASS_NAMES)).min() == 0:
        absent = [CLASS_NAMES[i] for i in range(len(CLASS_NAMES)) if i not in labels]
        raise DataError(
            f"{path} has no training rows of class(es) {', '.join(absent)}. "
            "Every class needs training images: use the complete fer2013.csv."
        )
    return np.stack(images), labels
