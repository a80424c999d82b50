"""FER2013 on disk -> one canonical form -> splits and input pipelines.

Every reader ends in the same arrays: images uint8 `(N, 48, 48, 1)` and
labels int32 `(N,)` in `CLASS_NAMES` order, whatever the layout on disk:

- the Kaggle `msambare/fer2013` folders, `train/<class>/*.jpg` and
  `test/<class>/*.jpg`;
- the `ananthu017/emotion-detection-fer` folders (PNG, class folders named
  "disgusted", "fearful", "surprised", ...);
- the original `fer2013.csv` (`emotion,pixels,Usage`).

Decoded arrays are cached as `.npz` files, so the 28,709 training images are
decoded once. Everything after `load_split` works on arrays only.

The modules, one job each:

- `readers`: the `Reader` of a layout and the registry that picks one;
- `folders`, `csv_file`: the built-in readers;
- `decoding`: image files to 48x48 grey;
- `locate`: where the copy is (a path, FER2013_DIR, or kagglehub);
- `cache`: the `.npz` cache of decoded splits;
- `load`: `load_split`, which ties the above together;
- `splits`: class counts and weights, the validation split and k folds;
- `pipelines`: `make_dataset` (tf.data) and `ArrayBatches`.
"""

from fer_keras.classes import CLASS_NAMES
from fer_keras.data.cache import _CACHE_VERSION, cache_file, cache_folder, read_cache, write_cache
from fer_keras.data.csv_file import (
    CSV_COLUMNS,
    CSV_NAME,
    CSV_SPLITS,
    FER2013_CSV,
    Fer2013Csv,
    _describe_pixels,
    parse_pixels,
    read_csv,
)
from fer_keras.data.decoding import decode_image, decode_images
from fer_keras.data.folders import (
    EMOTION_DETECTION_FOLDERS,
    FOLDER_LAYOUTS,
    FOLDER_SPLITS,
    IMAGE_SUFFIXES,
    KAGGLE_FOLDERS,
    ClassFolders,
    list_folder_split,
    match_layout,
)
from fer_keras.data.load import load_split
from fer_keras.data.locate import KAGGLE_HANDLE, download, locate_data
from fer_keras.data.pipelines import ArrayBatches, _import_tensorflow, _lane_seed, make_dataset
from fer_keras.data.readers import (
    IMAGE_SIZE,
    DataError,
    Reader,
    SplitListing,
    describe_layouts,
    find_layout,
    find_reader,
    known_splits,
    register_reader,
    registered_readers,
)
from fer_keras.data.splits import (
    CLASS_WEIGHT_MODES,
    check_labels,
    class_counts,
    class_weights,
    kfold_splits,
    train_val_split,
)

# The built-in layouts, in the order they are tried and listed in errors:
# a folder holding both train/ and a fer2013.csv is read as folders.
register_reader(KAGGLE_FOLDERS)
register_reader(EMOTION_DETECTION_FOLDERS)
register_reader(FER2013_CSV)

# The names of the single-module `fer_keras.data`, for code written against it.
_cache_dir = cache_folder
_cache_file = cache_file
_check_labels = check_labels
_decode_image = decode_image
_decode_images = decode_images
_describe_layouts = describe_layouts
_download = download
_find_layout = find_layout
_list_folder_split = list_folder_split
_match_layout = match_layout
_parse_pixels = parse_pixels
_read_cache = read_cache
_read_csv = read_csv
_write_cache = write_cache

__all__ = [
    "CLASS_NAMES",
    "ArrayBatches",
    "ClassFolders",
    "DataError",
    "Reader",
    "SplitListing",
    "check_labels",
    "class_counts",
    "class_weights",
    "decode_image",
    "find_layout",
    "kfold_splits",
    "list_folder_split",
    "load_split",
    "locate_data",
    "make_dataset",
    "register_reader",
    "train_val_split",
]
