"""The registry of FER2013 layouts on disk: one `Reader` per layout.

Every reader ends in the same arrays: images uint8 `(N, 48, 48, 1)` and
labels int32 `(N,)` in `CLASS_NAMES` order. `find_reader` asks the readers
in the order they were registered which one reads a path, so a new layout
is one new `Reader` passed to `register_reader`.
"""

import abc
import dataclasses
import pathlib

import numpy as np

IMAGE_SIZE = 48

_READERS: list["Reader"] = []


class DataError(ValueError):
    """The data on disk is missing or not in a form this package can read."""


@dataclasses.dataclass(frozen=True)
class SplitListing:
    """What a reader found of one split, before reading any pixels.

    `stamps` are `(name, size, mtime_ns)` per file read: they key the cache,
    so an edited copy is read again and an unchanged one never is. `paths`
    and `labels` are there for readers that list image files.
    """

    source: pathlib.Path
    split: str
    stamps: list[tuple]
    paths: list[str] = dataclasses.field(default_factory=list)
    labels: np.ndarray | None = None


class Reader(abc.ABC):
    """One layout of FER2013 on disk, read into the canonical arrays.

    Attributes:
        name: the layout's name in error messages and the registry.
        kind: what the source is, "folders" (image files) or "csv" (pixel
            values): tools that need image files check it.
        splits: the split names this layout holds.
    """

    name: str
    kind: str
    splits: tuple[str, ...]

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for the list of layouts that errors show."""

    @abc.abstractmethod
    def find(self, path: pathlib.Path) -> pathlib.Path | None:
        """The source this reader reads at `path` (existing), or None."""

    @abc.abstractmethod
    def list_split(self, source: pathlib.Path, split: str) -> SplitListing:
        """The files of `split` at `source`, checked, with their stamps."""

    @abc.abstractmethod
    def read_split(self, listing: SplitListing) -> tuple[np.ndarray, np.ndarray]:
        """Images uint8 (N, 48, 48, 1) and labels int32 (N,) of `listing`."""


def register_reader(reader: Reader) -> Reader:
    """Adds `reader` last, or in place of the registered reader of its name."""
    if not isinstance(reader, Reader):
        raise TypeError(
            "`reader` must be a fer_keras.data.Reader. "
            f"Received: reader={reader!r} of type {type(reader).__name__}"
        )
    for i, registered in enumerate(_READERS):
        if registered.name == reader.name:
            _READERS[i] = reader
            return reader
    _READERS.append(reader)
    return reader


def registered_readers() -> tuple[Reader, ...]:
    """The registered readers, in the order they are tried."""
    return tuple(_READERS)


def known_splits() -> tuple[str, ...]:
    """Every split some reader holds, in the order the readers name them."""
    return tuple(dict.fromkeys(s for reader in _READERS for s in reader.splits))


def describe_layouts() -> str:
    """The registered layouts, one indented line each, for error messages."""
    return "\n".join(f"  {reader.describe()}" for reader in _READERS)


def find_reader(path: pathlib.Path) -> tuple[Reader, pathlib.Path]:
    """The first reader that reads `path`, and its source; else a `DataError`."""
    for reader in _READERS:
        source = reader.find(path)
        if source is not None:
            return reader, source
    if path.is_file():
        raise DataError(
            f"{path} is a file but not a csv. Expected a folder holding train/ "
            "and test/ class folders, or a fer2013.csv."
        )
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    shown = ", ".join(found[:10]) + (", ..." if len(found) > 10 else "")
    raise DataError(
        f"{path} does not look like FER2013: it has no train/ or test/ folder "
        f"and no fer2013.csv. Expected one of these layouts:\n{describe_layouts()}\n"
        f"Found: {shown or 'an empty folder'}"
    )


def find_layout(path: pathlib.Path) -> tuple[str, pathlib.Path]:
    """("folders", root) or ("csv", csv_file); a `DataError` for anything else."""
    reader, source = find_reader(path)
    return reader.kind, source
