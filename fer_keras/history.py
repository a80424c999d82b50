"""`history.csv`: one row per finished epoch, as Keras' `CSVLogger` writes it.

Rewrites go to a temporary name and are renamed into place, so a kill never
leaves a half-written history.
"""

import csv
import os
from pathlib import Path


def read_history(path: str | os.PathLike) -> list[dict]:
    """The rows of `path` (strings, as in the file); [] when there is none."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_history(path: str | os.PathLike, rows: list[dict]) -> None:
    """Replaces `path` with `rows`, whole or not at all."""
    path = Path(path)
    partial = path.with_name(f"{path.name}.partial")
    with open(partial, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    os.replace(partial, path)


def truncate_history(path: str | os.PathLike, epochs_done: int) -> list[dict]:
    """Keeps the rows of finished epochs, so a resumed run has no gap or repeat."""
    rows = read_history(path)
    kept = [r for r in rows if int(r["epoch"]) < epochs_done]
    if len(kept) != len(rows):
        write_history(path, kept)
    return kept
