"""Augmented training images per second that `make_dataset` delivers.

Reads the real FER2013 training split, builds the training pipeline (shuffle,
batch, augment, prefetch), runs one full pass to warm it up, then counts the
images it yields for `--seconds` (or `--batches`). No model runs: this is
the ceiling the input pipeline puts on training speed.

    python benchmarks/bench_data.py --augment seed --batch-size 64 --seconds 20 \\
        --json bench_data.json
"""

import argparse
import json
import os
import pathlib
import platform
import time

from harness import default_data_dir, write_json


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=pathlib.Path,
        default=default_data_dir(),
        help="FER2013 folder or csv (default: FER2013_DIR, else ../shared/fer2013)",
    )
    parser.add_argument("--augment", default="seed", help="augmentation name")
    parser.add_argument("--batch-size", type=int, default=64)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--seconds", type=float, default=None, help="measure this long (default 20)"
    )
    budget.add_argument("--batches", type=int, default=None, help="measure N batches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=pathlib.Path, help="also write results here")
    args = parser.parse_args(argv)
    if args.seconds is None and args.batches is None:
        args.seconds = 20.0
    return args


def measure(dataset, seconds: float | None, batches: int | None) -> dict:
    """Images and batches drawn from `dataset`, epoch after epoch, until done."""
    images = done = 0
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    while True:
        for x, _ in dataset:
            images += int(x.shape[0])
            done += 1
            if batches is not None and done >= batches:
                break
            if seconds is not None and time.perf_counter() - start_wall >= seconds:
                break
        else:
            continue
        break
    wall = time.perf_counter() - start_wall
    cpu = time.process_time() - start_cpu
    return {
        "images": images,
        "batches": done,
        "seconds": round(wall, 3),
        "images_per_s": round(images / wall, 1),
        "images_per_cpu_s": round(images / cpu, 1),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    import tensorflow as tf

    import keras

    from fer_keras import data

    images, labels = data.load_split(args.data_dir, "train")
    dataset = data.make_dataset(
        images,
        labels,
        batch_size=args.batch_size,
        training=True,
        augment=args.augment,
        seed=args.seed,
    )
    warm_start = time.perf_counter()
    for _ in dataset:
        pass
    warm_up_s = time.perf_counter() - warm_start

    result = {
        "benchmark": "make_dataset",
        "backend": keras.backend.backend(),
        "augment": args.augment,
        "batch_size": args.batch_size,
        "train_images": int(len(images)),
        "warm_up_s": round(warm_up_s, 3),
        **measure(dataset, args.seconds, args.batches),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
