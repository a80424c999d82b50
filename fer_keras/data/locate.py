"""Where the FER2013 copy is: a path, FER2013_DIR, else a kagglehub download."""

import os
import pathlib

from fer_keras.data.readers import DataError, find_layout

KAGGLE_HANDLE = "msambare/fer2013"


def download() -> pathlib.Path:
    """Downloads `msambare/fer2013` with kagglehub; a `DataError` if it fails."""
    try:
        import kagglehub

        return pathlib.Path(kagglehub.dataset_download(KAGGLE_HANDLE))
    except Exception as err:
        hint = " (pip install kagglehub)" if isinstance(err, ImportError) else ""
        raise DataError(
            f"Downloading FER2013 ({KAGGLE_HANDLE}) with kagglehub failed: "
            f"{type(err).__name__}: {err}{hint}. Point at a local copy instead, with "
            "`--data-dir PATH` or the FER2013_DIR environment variable (a folder "
            "holding train/ and test/, or a fer2013.csv)."
        ) from err


def locate_data(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The absolute path of the FER2013 copy to read: a folder or a csv file.

    Looks at `data_dir`, else the `FER2013_DIR` environment variable, else
    downloads `msambare/fer2013` with kagglehub, so the scripts run with no
    setup where the network allows and with one setting where it does not.
    """
    if data_dir is not None:
        path, source = pathlib.Path(data_dir).expanduser(), "data_dir"
    elif os.environ.get("FER2013_DIR"):
        path, source = pathlib.Path(os.environ["FER2013_DIR"]).expanduser(), (
            "the FER2013_DIR environment variable"
        )
    else:
        path, source = download(), "kagglehub"
    if not path.exists():
        raise DataError(
            f"FER2013 folder {path} (from {source}) does not exist. Pass the "
            "folder holding train/ and test/ (or a fer2013.csv) with "
            "`--data-dir` or FER2013_DIR. "
            f"Received: data_dir={str(data_dir) if data_dir is not None else None}"
        )
    path = path.resolve()
    find_layout(path)
    return path
