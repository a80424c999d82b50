"""Wall time on this CPU to reach the original's accuracy, and 65%, on the validation split.

Issue 20 asks how much sooner the project's recipes reach (a) the accuracy
of the original project (its recipe re-run in plain PyTorch ends at 58.8%
after its 20 epochs) and (b) 65% on the validation split (10% of the
training folder, stratified, `--seed`), than the original's own recipe.

Time = epochs to the threshold x seconds per epoch. Both factors come from
where they can be measured honestly:

- **Seconds per epoch are measured here, side by side, over a fixed number
  of steps**, for every configuration in the same run: the original's loop
  as it really ran (plain eager PyTorch on `fer_keras.torch_reference`
  without the filter bank; every epoch, a `DataLoader` with its defaults, no
  worker processes, reads and decodes the JPEGs; no augmentation,
  class-weighted cross-entropy, Adam 1e-3 with `weight_decay=1e-4`, batch
  32), and the project's `train.py` path
  (`fer_keras.training.prepare_fit`: the tf.data pipeline with the recipe's
  augmentation, `fit` with its class weights and NaN guard) per `--models`,
  `--recipes` and `--backends`. Each window times the data loading (the
  original: inside its steps; the project: decoding as many JPEGs with the
  package's reader, which a run does once and caches), the training steps
  and a validation pass over `--val-images` images, then extrapolates to a
  full epoch (the formula is printed with the table).
- **Epochs to a threshold come from recorded runs**: the first epoch of a
  `history.csv` (`--history MODEL/RECIPE=PATH`) whose `val_accuracy`
  reaches it. Runs shortened with `--steps-per-epoch` are converted to full
  epochs by images seen, from the `run.json` beside the history. The
  original's recipe reaches (a) after its 20 epochs by definition, and
  never reaches (b).

As in `bench_train.py`, each configuration runs in its own process (the
backend and dtype policy are fixed per process); all are started and
warmed up one after the other, then they run their timed windows in turn,
round after round in alternating order, so the load of other processes on
a shared machine falls on all of them alike.

Example:

    python benchmarks/bench_time_to_accuracy.py \\
        --history cbam/crop44=runs/cbam_crop44_tensorflow/history.csv \\
        --json time_to_accuracy.json
"""

import argparse
import csv
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import harness

ORIGINAL_ACCURACY = 0.588
TARGET_ACCURACY = 0.65
ORIGINAL_EPOCHS = 20
ORIGINAL_BATCH_SIZE = 32
TARGET_SPEEDUP = 3.0
PRECISIONS = ("auto", "off", "bfloat16", "float16")
FORMULA = (
    "s/epoch = train window s / window steps x steps per epoch + validation window s / "
    "validation window images x validation images. The original's steps per epoch are "
    "ceil(training images / 32) (its DataLoader keeps the last partial batch) and it "
    "reads and decodes the JPEGs inside its steps, every epoch; the project's are "
    "training images // batch (full batches only) and it decodes the JPEGs once per run "
    "(load s: window decode s / window images x images of the training folder). "
    "Time to a threshold = E x train s/epoch + k x validation s + load s, where k is the "
    "first epoch of the history whose val_accuracy reaches it and E = k x the history's "
    "steps per epoch x its batch / (steps per epoch x batch measured here), its images "
    "seen in full epochs (E = k for full epochs). The original's recipe: "
    "{original_epochs} epochs x s/epoch to (a), never to (b)."
)


def _jpeg_folder(data_dir: str) -> Path:
    """The FER2013 folder layout (train/<class>/*.jpg) at `data_dir`.

    Both loops are timed reading the JPEG files, as the original did; the
    csv layout holds no files to read.
    """
    from fer_keras import data as fer_data

    kind, source = fer_data.find_layout(fer_data.locate_data(data_dir))
    if kind != "folders":
        raise fer_data.DataError(
            f"The benchmark reads image files, as the original did: --data-dir must be "
            f"a folder holding train/<class>/ images. Received: {source} (a csv file)"
        )
    return source


class _ImageFiles:
    """A map-style dataset of image files, each read and decoded when asked.

    What the original's `ImageFolder` did for every image of every epoch;
    the decoding is the package's own (`fer_keras.data`). Scaling to [-1, 1]
    is the reference model's first operation, as the Keras models' is.
    """

    def __init__(self, paths: list[str], labels):
        self.paths = paths
        self.labels = [int(label) for label in labels]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        import numpy as np

        from fer_keras import data as fer_data

        pixels = fer_data.decode_image(self.paths[index])[0]
        return pixels[:, :, None].astype(np.float32), self.labels[index]


class _OriginalRunner:
    """The original's recipe as it ran: eager PyTorch, JPEGs read every epoch,
    no augmentation, no filter bank, class-weighted cross-entropy, Adam."""

    def __init__(self, config: dict):
        import torch

        from fer_keras import data as fer_data
        from fer_keras.torch_reference import original_model

        self.torch = torch
        folder = _jpeg_folder(config["data_dir"])
        paths, labels, _ = fer_data.list_folder_split(folder, "train")
        train_idx, val_idx = fer_data.train_val_split(
            labels, config["val_split"], config["seed"]
        )
        torch.manual_seed(config["seed"])
        self.model = original_model(config["model"]).train()
        weights = fer_data.class_weights(labels[train_idx], "seed")
        self.loss = torch.nn.CrossEntropyLoss(
            weight=torch.tensor([weights[i] for i in sorted(weights)], dtype=torch.float32)
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, weight_decay=1e-4)
        self.batch_size = ORIGINAL_BATCH_SIZE
        self.train_loader = torch.utils.data.DataLoader(
            _ImageFiles([paths[i] for i in train_idx], labels[train_idx]),
            batch_size=self.batch_size, shuffle=True,
            generator=torch.Generator().manual_seed(config["seed"]),
        )
        wanted = min(config["val_images_per_window"], len(val_idx))
        window = val_idx[:_round_up(wanted, self.batch_size)]
        self.val_loader = torch.utils.data.DataLoader(
            _ImageFiles([paths[i] for i in window], labels[window]),
            batch_size=self.batch_size,
        )
        self._batches = iter(self.train_loader)
        self.shape = {
            "batch_size": self.batch_size,
            "train_images": int(len(train_idx)),
            "steps_per_epoch": math.ceil(len(train_idx) / self.batch_size),
            "val_images": int(len(val_idx)),
            "val_window_images": int(len(window)),
            "folder_images": len(paths),
        }

    def describe(self) -> dict:
        return {**self.shape, "dtype_policy": "float32", "layout": "channels_first",
                "torch_threads": self.torch.get_num_threads()}

    def _next_batch(self):
        try:
            return next(self._batches)
        except StopIteration:  # an epoch ends: a new shuffle, as the original's did
            self._batches = iter(self.train_loader)
            return next(self._batches)

    def run(self, steps: int) -> dict:
        torch = self.torch
        start = time.perf_counter()
        for _ in range(steps):
            images, labels = self._next_batch()
            self.optimizer.zero_grad()
            loss = self.loss(self.model(images), labels)
            loss.backward()
            self.optimizer.step()
            loss.item()
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        self.model.eval()
        with torch.no_grad():
            for images, labels in self.val_loader:
                logits = self.model(images)
                self.loss(logits, labels).item()
                (logits.argmax(1) == labels).sum().item()
        self.model.train()
        return {"train_s": train_s, "val_s": time.perf_counter() - start,
                "load_s": None, "load_images": 0}


class _ProjectRunner:
    """`train.py`'s path: what `fer_keras.training.prepare_fit` builds, fitted."""

    def __init__(self, config: dict):
        from fer_keras import data as fer_data
        from fer_keras import training
        from fer_keras.augment import INFERENCE_ZOOM
        from fer_keras.recipes import get_recipe

        self.fer_data, self.training = fer_data, training
        self.folder = _jpeg_folder(config["data_dir"])
        self.paths = fer_data.list_folder_split(self.folder, "train")[0]
        images, labels = fer_data.load_split(self.folder, "train")
        train_idx, val_idx = fer_data.train_val_split(
            labels, config["val_split"], config["seed"]
        )
        recipe = get_recipe(config["recipe"])
        self.batch_size = recipe.batch_size
        self.setup = training.prepare_fit(
            training.TrainConfig(
                model=config["model"], recipe=recipe, recipe_name=config["recipe"],
                data_dir=str(self.folder), val_split=config["val_split"],
                # A repeated pipeline, as `train.py --steps-per-epoch` uses:
                # windows of any length draw from one stream.
                steps_per_epoch=config["steps"], mixed_precision=config["mixed_precision"],
                seed=config["seed"], data_format=config["data_format"], verbose=0,
            ),
            images, labels, train_idx, val_idx,
            # As a new run of the recipe validates: behind its zoom, if it crops.
            inference_zoom=INFERENCE_ZOOM.get(recipe.augment),
        )
        window_images, batches = 0, 0
        for batch_images, _ in self.setup.val_data:
            window_images += int(batch_images.shape[0])
            batches += 1
            if window_images >= config["val_images_per_window"]:
                break
        self.val_window = self.setup.val_data.take(batches)
        self._next_file = 0
        self.shape = {
            "batch_size": self.batch_size,
            "train_images": int(len(train_idx)),
            "steps_per_epoch": training.full_epoch_steps(len(train_idx), self.batch_size),
            "val_images": int(len(val_idx)),
            "val_window_images": window_images,
            "inference_zoom": self.setup.inference_zoom,
            "folder_images": len(self.paths),
        }

    def describe(self) -> dict:
        return {**self.shape, "dtype_policy": self.setup.dtype_policy,
                "layout": self.setup.data_format}

    def _decode(self, count: int) -> float:
        """Seconds to decode the next `count` JPEGs as `load_split` does uncached."""
        count = min(count, len(self.paths))
        paths = [self.paths[(self._next_file + i) % len(self.paths)] for i in range(count)]
        self._next_file = (self._next_file + count) % len(self.paths)
        start = time.perf_counter()
        self.fer_data.decode_images(paths, self.folder / "train")
        return time.perf_counter() - start

    def run(self, steps: int) -> dict:
        load_images = steps * self.batch_size
        load_s = self._decode(load_images)
        timer = harness.epoch_timer()
        self.setup.trainer.fit(
            self.setup.train_data, epochs=1, steps_per_epoch=steps,
            class_weight=self.setup.class_weight, shuffle=False, verbose=0,
            callbacks=[timer, self.training.StopOnNaN()],
        )
        start = time.perf_counter()
        self.setup.trainer.evaluate(self.val_window, verbose=0)
        return {"train_s": timer.seconds, "val_s": time.perf_counter() - start,
                "load_s": load_s, "load_images": min(load_images, len(self.paths))}


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def worker(config: dict) -> None:
    """Builds one configuration, times its first window and warm-up, then serves windows."""
    runner_class = _OriginalRunner if config["kind"] == "original" else _ProjectRunner
    start = time.perf_counter()
    runner = runner_class(config)
    build_s = time.perf_counter() - start
    first = runner.run(1)
    start = time.perf_counter()
    if config["warmup_steps"]:
        runner.run(config["warmup_steps"])
    harness.send({"build_s": build_s, "first_step_s": first["train_s"],
                  "first_val_s": first["val_s"], "warmup_s": time.perf_counter() - start,
                  **runner.describe()})
    harness.serve(lambda request: runner.run(request["steps"]))


# ---------------------------------------------------------------------------
# Configurations and measurement


def label(config: dict) -> str:
    """The configuration as the table names it."""
    if config["kind"] == "original":
        passive = "" if config["reference"] == harness.REFERENCE else ", OMP_WAIT_POLICY=PASSIVE"
        return f"original {config['model']}: its recipe, plain PyTorch{passive}"
    return (f"{config['model']} {config['recipe']}: {config['backend']}, "
            f"mixed precision {config['mixed_precision']}")


def configurations(args) -> list[dict]:
    """The original's loop per `--references`, then every (model, recipe) x backend."""
    common = {"data_dir": str(args.data_dir), "seed": args.seed, "val_split": args.val_split,
              "steps": args.steps, "warmup_steps": args.warmup_steps,
              "val_images_per_window": args.val_images}
    configs = [{"kind": "original", "model": args.original_model, "reference": reference,
                "backend": "torch eager", **common} for reference in args.references]
    for model, recipe in args.pairs:
        for backend in args.backends:
            configs.append({"kind": "project", "model": model, "recipe": recipe,
                            "backend": backend, "mixed_precision": args.mixed_precision,
                            "data_format": args.data_format, **common})
    for config in configs:
        config["name"] = label(config)
    return configs


def _start_worker(config: dict) -> harness.WorkerProcess:
    script = Path(__file__).resolve()
    if config["kind"] == "original":
        return harness.reference_worker(script, config, config["reference"], config["name"])
    return harness.WorkerProcess(script, config, config["backend"], config["name"])


def measure(configs: list[dict], steps: int, rounds: int) -> list[dict]:
    """Starts every worker in turn, then times their windows round after round."""
    rows = []
    with harness.started_workers() as workers:
        for config in configs:
            harness.log(f"  starting {config['name']} ...")
            workers.append(_start_worker(config))
            ready = workers[-1].receive()
            rows.append({**config, **ready, "windows": []})
            if config["kind"] == "project":  # the policy "auto" stands for, once known
                rows[-1]["name"] = (f"{config['model']} {config['recipe']}: "
                                    f"{config['backend']}, {ready['dtype_policy']}")
            harness.log(f"    first step {ready['first_step_s']:.1f} s, "
                        f"warm-up {ready['warmup_s']:.1f} s")
        for r, order in harness.in_turn(len(workers), rounds):
            for i in order:
                rows[i]["windows"].append(workers[i].request({"op": "run", "steps": steps}))
            harness.log(f"  round {r + 1}/{rounds}: " + ", ".join(
                f"{row['name']} {_epoch_seconds(row, row['windows'][-1], steps):.0f} s/epoch"
                for row in rows))
    return rows


def _epoch_seconds(row: dict, window: dict, steps: int) -> float:
    return (window["train_s"] / steps * row["steps_per_epoch"]
            + window["val_s"] / row["val_window_images"] * row["val_images"])


def summarise(rows: list[dict], steps: int) -> None:
    """Per-epoch components (medians over the windows) and their spread, in place."""
    for row in rows:
        windows = row["windows"]
        totals = [_epoch_seconds(row, w, steps) for w in windows]
        row["train_s_per_epoch"] = statistics.median(
            w["train_s"] / steps * row["steps_per_epoch"] for w in windows)
        row["val_s_per_pass"] = statistics.median(
            w["val_s"] / row["val_window_images"] * row["val_images"] for w in windows)
        row["s_per_epoch"] = row["train_s_per_epoch"] + row["val_s_per_pass"]
        row["spread_pct"] = 100.0 * (max(totals) - min(totals)) / statistics.median(totals)
        loads = [w["load_s"] / w["load_images"] for w in windows if w["load_s"] is not None]
        row["load_s_once"] = (statistics.median(loads) * row["folder_images"]) if loads else 0.0
        trained = min(row["steps_per_epoch"] * row["batch_size"], row["train_images"])
        row["images_per_s"] = trained / row["train_s_per_epoch"]


# ---------------------------------------------------------------------------
# Histories


def parse_history_arg(text: str) -> tuple[str, Path]:
    """`MODEL/RECIPE=PATH` (or `MODEL/RECIPE/BACKEND=PATH`) -> (name, path)."""
    name, sep, path = text.partition("=")
    if not sep or not path or len(name.split("/")) not in (2, 3):
        raise argparse.ArgumentTypeError(
            "expected MODEL/RECIPE=PATH or MODEL/RECIPE/BACKEND=PATH, e.g. "
            f"cbam/crop44=runs/cbam_crop44_tensorflow/history.csv. Received: {text!r}"
        )
    return name, Path(path)


def read_history(name: str, path: Path) -> dict:
    """The validation accuracies of one run, and how long its epochs were.

    `run.json` beside the history gives its steps per epoch, batch size and
    training images; without one the epochs are taken as full epochs.
    Its model and recipe must be those that `name` says.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--history {name}={path}: no such file.")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "val_accuracy" not in rows[0]:
        raise ValueError(
            f"--history {name}={path} has no val_accuracy column (or no epochs). Expected "
            "the history.csv that train.py writes into its run folder."
        )
    model, recipe, *backend = name.split("/")
    history = {
        "name": name, "path": str(path), "model": model, "recipe": recipe,
        "backend": backend[0] if backend else None,
        "val_accuracy": [float(r["val_accuracy"]) for r in rows],
        "steps_per_epoch": None, "batch_size": None, "train_images": None, "run_json": None,
    }
    run_path = path.with_name("run.json")
    if run_path.is_file():
        run = json.loads(run_path.read_text())
        held = (run.get("model"), run.get("recipe_name"))
        if held != (model, recipe):
            raise ValueError(
                f"--history {name}={path}: its run.json says --model {held[0]} --recipe "
                f"{held[1]}. Name it {held[0]}/{held[1]}, or pass the history of a "
                f"{model} {recipe} run."
            )
        history.update(
            run_json=str(run_path), steps_per_epoch=run.get("steps_per_epoch"),
            batch_size=(run.get("recipe") or {}).get("batch_size"),
            train_images=((run.get("data") or {}).get("train") or {}).get("total"),
        )
    return history


def epochs_to_threshold(val_accuracy: list[float], threshold: float) -> int | None:
    """The first epoch (1-based) whose validation accuracy reaches `threshold`, or None."""
    for epoch, accuracy in enumerate(val_accuracy, start=1):
        if accuracy >= threshold:
            return epoch
    return None


def full_epochs(epochs: int, history: dict, measured: dict) -> float:
    """`epochs` of a history in full epochs of the measured configuration, by images seen."""
    steps, batch = history["steps_per_epoch"], history["batch_size"]
    if steps is None or batch is None:
        return float(epochs)
    return epochs * steps * batch / (measured["steps_per_epoch"] * measured["batch_size"])


def time_to(epochs: int, history: dict, measured: dict) -> dict:
    """Full epochs and wall time for a history's first `epochs` on a measured configuration."""
    full = full_epochs(epochs, history, measured)
    seconds = (full * measured["train_s_per_epoch"] + epochs * measured["val_s_per_pass"]
               + measured["load_s_once"])
    return {"history_epochs": epochs, "full_epochs": full, "seconds": seconds}


# ---------------------------------------------------------------------------
# The table


def results(rows: list[dict], histories: list[dict], args) -> tuple[list[dict], dict]:
    """One result per original loop, and per history x matching configuration."""
    thresholds = {"a": args.original_accuracy, "b": args.target_accuracy}
    originals = [r for r in rows if r["kind"] == "original"]
    for row in originals:
        row["original_time_to_a_s"] = args.original_epochs * row["s_per_epoch"]
    best = min(originals, key=lambda r: r["original_time_to_a_s"]) if originals else None
    baseline_s = best["original_time_to_a_s"] if best else None
    table = []
    for row in originals:
        seconds = row["original_time_to_a_s"]
        table.append({
            "configuration": row["name"], "history": None, "s_per_epoch": row["s_per_epoch"],
            "a": {"history_epochs": args.original_epochs,
                  "full_epochs": float(args.original_epochs), "seconds": seconds},
            "b": None, "b_note": "never",
            "speedup_vs_original": baseline_s / seconds,
        })
    matched = set()
    for history in histories:
        for row in rows:
            if not _matches(history, row):
                continue
            matched.add(row["name"])
            if history["batch_size"] not in (None, row["batch_size"]):
                harness.log(f"Note: {history['path']} trained at batch "
                            f"{history['batch_size']}, measured at {row['batch_size']}: its "
                            "epochs are converted by images seen, at the measured batch's "
                            "speed.")
            entry = {"configuration": row["name"], "history": history["path"],
                     "s_per_epoch": row["s_per_epoch"], "speedup_vs_original": None}
            for key, threshold in thresholds.items():
                epoch = epochs_to_threshold(history["val_accuracy"], threshold)
                entry[key] = None if epoch is None else time_to(epoch, history, row)
                entry[f"{key}_note"] = (f"not in its {len(history['val_accuracy'])} epochs"
                                        if epoch is None else None)
            if entry["a"] and baseline_s:
                entry["speedup_vs_original"] = baseline_s / entry["a"]["seconds"]
            table.append(entry)
    for row in rows:
        if row["kind"] == "project" and row["name"] not in matched:
            table.append({"configuration": row["name"], "history": None,
                          "s_per_epoch": row["s_per_epoch"], "a": None, "b": None,
                          "a_note": "no history", "b_note": "no history",
                          "speedup_vs_original": None})
    speedups = [e["speedup_vs_original"] for e in table
                if e["history"] and e["speedup_vs_original"]]
    target = {
        "speedup": TARGET_SPEEDUP,
        "against": best["name"] if best else None,
        "best_speedup": max(speedups) if speedups else None,
        "met": bool(speedups) and max(speedups) >= TARGET_SPEEDUP,
    }
    return table, target


def _matches(history: dict, row: dict) -> bool:
    return (row["kind"] == "project" and row["model"] == history["model"]
            and row["recipe"] == history["recipe"]
            and history["backend"] in (None, row["backend"]))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _epochs(reached: dict | None, note: str | None) -> str:
    if reached is None:
        return note or "-"
    full, epochs = reached["full_epochs"], reached["history_epochs"]
    if abs(full - epochs) < 1e-9:
        return f"{epochs}"
    return f"{full:.1f} ({epochs} short epochs)"


def _time(reached: dict | None, note: str | None) -> str:
    if reached is not None:
        return _duration(reached["seconds"])
    return "never" if note == "never" else "-"


def format_table(table: list[dict], thresholds: tuple[float, float]) -> str:
    """The results as a Markdown table."""
    a, b = (f"{100 * t:.1f}%" for t in thresholds)
    lines = [f"| configuration | s/epoch measured | epochs to (a) {a} | time to (a) | "
             f"speed-up vs the original | epochs to (b) {b} | time to (b) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for entry in table:
        name = entry["configuration"]
        if entry["history"]:
            name += f" (history: {Path(entry['history']).parent.name})"
        speedup = entry["speedup_vs_original"]
        lines.append(
            f"| {name} | {entry['s_per_epoch']:.0f} | "
            f"{_epochs(entry['a'], entry.get('a_note'))} | "
            f"{_time(entry['a'], entry.get('a_note'))} | "
            f"{'-' if speedup is None else f'{speedup:.2f}x'} | "
            f"{_epochs(entry['b'], entry.get('b_note'))} | "
            f"{_time(entry['b'], entry.get('b_note'))} |"
        )
    return "\n".join(lines)


def format_components(rows: list[dict], steps: int, rounds: int) -> str:
    """Where each configuration's epoch goes, as a Markdown table."""
    lines = ["| configuration | precision | batch | steps/epoch | train s/epoch | img/s | "
             "validation s | load s | s/epoch | spread | first step s | warm-up s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        load = "in the steps" if r["kind"] == "original" else f"{r['load_s_once']:.1f} once"
        lines.append(
            f"| {r['name']} | {r['dtype_policy']} | {r['batch_size']} | {r['steps_per_epoch']} | "
            f"{r['train_s_per_epoch']:.0f} | {r['images_per_s']:.1f} | "
            f"{r['val_s_per_pass']:.1f} | {load} | {r['s_per_epoch']:.0f} | "
            f"{r['spread_pct']:.0f}% | {r['first_step_s']:.1f} | {r['warmup_s']:.1f} |"
        )
    return "\n".join(lines) + (f"\n\nMedians of {rounds} windows of {steps} steps and a "
                               "validation pass each; spread: (max - min) / median of the "
                               "windows' s/epoch.")


# ---------------------------------------------------------------------------
# Command line


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected a fraction between 0 and 1 (0.65 for 65%). Received: {text!r}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    from fer_keras.models import DATA_FORMAT_CHOICES, MODELS
    from fer_keras.recipes import RECIPES
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--history", type=parse_history_arg, action="append", default=[],
                        metavar="MODEL/RECIPE=PATH",
                        help="a train.py history.csv of that model and recipe (repeatable); "
                             "MODEL/RECIPE/BACKEND=PATH pairs it with one backend only")
    parser.add_argument("--models", type=harness.listed(str, MODELS),
                        help="zoo models to measure (default: those of --history, else cbam)")
    parser.add_argument("--recipes", type=harness.listed(str, RECIPES),
                        help="recipes to measure (default: those of --history, else seed); "
                             "with neither --models nor --recipes, exactly the (model, "
                             "recipe) pairs of --history")
    parser.add_argument("--backends", type=harness.listed(str, harness.BACKENDS),
                        default=["tensorflow"],
                        help="Keras backends (default: tensorflow, the fastest on CPUs "
                             "with AVX-512)")
    parser.add_argument("--mixed-precision", choices=PRECISIONS, default="auto",
                        help="as train.py's (default auto: bfloat16 on CPUs with "
                             "AVX512-BF16 or AMX, else float32)")
    parser.add_argument("--data-format", choices=DATA_FORMAT_CHOICES, default="auto",
                        help="as train.py's (default auto)")
    parser.add_argument("--original-model", default="cbam",
                        help="the original's model (baseline, kernels, resnet or cbam), as "
                             "it ran: without the filter bank (default cbam, its best)")
    parser.add_argument("--references", type=harness.listed(str, [*harness.REFERENCES]),
                        default=list(harness.REFERENCES),
                        help="the original loop as it ran ('reference'), and/or with "
                             "OMP_WAIT_POLICY=PASSIVE ('reference_omp_passive'); speed-ups "
                             "are against the faster (default: both)")
    parser.add_argument("--original-accuracy", type=_fraction, default=ORIGINAL_ACCURACY,
                        help=f"threshold (a) (default {ORIGINAL_ACCURACY})")
    parser.add_argument("--target-accuracy", type=_fraction, default=TARGET_ACCURACY,
                        help=f"threshold (b) (default {TARGET_ACCURACY})")
    parser.add_argument("--original-epochs", type=harness.at_least(1), default=ORIGINAL_EPOCHS,
                        help=f"the original's epochs to (a) (default {ORIGINAL_EPOCHS})")
    parser.add_argument("--data-dir", type=Path, default=harness.default_data_dir(),
                        help="FER2013 folders (default: FER2013_DIR, else ../shared/fer2013)")
    parser.add_argument("--seed", type=int, default=0,
                        help="draws the validation split, as train.py's --seed (default 0)")
    parser.add_argument("--val-split", type=_fraction, default=0.1,
                        help="fraction of the training folder held out, as train.py's "
                             "(default 0.1)")
    harness.add_window_arguments(parser, steps=20, warmup_steps=2)
    parser.add_argument("--val-images", type=harness.at_least(1), default=512,
                        help="validation images per window, extrapolated to the split "
                             "(default 512)")
    harness.add_output_arguments(parser, json_help="write every figure to PATH")
    args = parser.parse_args(argv)
    if args.worker:
        return args
    # Only the driver imports torch for the names: a Keras worker has no use for it.
    from fer_keras.torch_reference import ORIGINAL_MODELS

    if args.original_model not in ORIGINAL_MODELS:
        parser.error(f"--original-model must be one of {', '.join(ORIGINAL_MODELS)}. "
                     f"Received: {args.original_model!r}")
    for name, path in args.history:
        model, recipe, *backend = name.split("/")
        if model not in MODELS or recipe not in RECIPES or (backend and backend[0] not in
                                                            args.backends):
            parser.error(
                f"--history {name}={path}: expected MODEL/RECIPE[/BACKEND] with a model of "
                f"{', '.join(MODELS)}, a recipe of {', '.join(RECIPES)} and a backend of "
                f"--backends ({', '.join(args.backends)}).")
    named = [tuple(name.split("/")[:2]) for name, _ in args.history]
    if named and args.models is None and args.recipes is None:
        args.pairs = list(dict.fromkeys(named))
    else:
        models = args.models or list(dict.fromkeys(m for m, _ in named)) or ["cbam"]
        recipes = args.recipes or list(dict.fromkeys(r for _, r in named)) or ["seed"]
        args.pairs = [(m, r) for m in models for r in recipes]
    missing = sorted({f"{m}/{r}" for m, r in named} - {f"{m}/{r}" for m, r in args.pairs})
    if missing:
        parser.error(f"--history {', '.join(missing)}: not measured. Add the model to "
                     "--models and the recipe to --recipes, or leave both out.")
    return args


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return None
    try:
        _jpeg_folder(args.data_dir)
        histories = [read_history(name, path) for name, path in args.history]
    except ValueError as err:  # DataError is one too
        sys.exit(f"error: {err}")

    hardware = harness.hardware_info()
    harness.log(f"{hardware['cpu']}, {hardware['cores']} cores")
    load_before = os.getloadavg()
    start = time.perf_counter()
    rows = measure(configurations(args), args.steps, args.rounds)
    summarise(rows, args.steps)
    table, target = results(rows, histories, args)
    formula = FORMULA.format(original_epochs=args.original_epochs)
    report = {
        "benchmark": "time_to_accuracy",
        "thresholds": {"a": args.original_accuracy, "b": args.target_accuracy},
        "formula": formula,
        **harness.report_context(args, argv, hardware, load_before),
        "wall_s": time.perf_counter() - start,
        "configurations": rows,
        "histories": histories,
        "table": table,
        "target": target,
    }
    report["settings"]["data_dir"] = str(args.data_dir)
    report["settings"]["history"] = [[name, str(path)] for name, path in args.history]
    print(format_table(table, (args.original_accuracy, args.target_accuracy)))
    print()
    print(format_components(rows, args.steps, args.rounds))
    if target["best_speedup"] is None:
        verdict = "no history reaches (a)"
    else:
        verdict = (f"{'met' if target['met'] else 'not met'}: best {target['best_speedup']:.2f}x "
                   f"against {target['against']}")
    print(f"\n{hardware['cpu']}, {hardware['cores']} cores. (a): the original's accuracy, "
          f"{100 * args.original_accuracy:.1f}%; (b): {100 * args.target_accuracy:.1f}%, on "
          f"the validation split. Speed-ups against the faster original loop. {formula} "
          f"Per-epoch file writes of train.py (model, backup, curves) are not counted. "
          f"Target, at least {TARGET_SPEEDUP:.0f}x faster than the original to (a): {verdict}. "
          f"{harness.load_note(report)}")
    harness.write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
