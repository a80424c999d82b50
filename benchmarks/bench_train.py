"""Training throughput of the zoo under each Keras backend, against the original loop.

The original project trained with a plain eager PyTorch loop (batch 32, Adam
1e-3 with `weight_decay=1e-4`, cross-entropy). This script measures, in the
same run, that loop on the reference model of the parity tests
(`fer_keras/torch_reference.py`) and `model.fit` of the Keras model under jax,
tensorflow and torch, compiled the way `fer_keras.training` compiles it
(the "seed" recipe's Adam and L2, `CategoricalCrossentropy(from_logits=True)`
on one-hot labels, `CategoricalAccuracy`).

Why it is built this way:

- Each configuration runs in its own process, because `KERAS_BACKEND` and
  the dtype policy are fixed per process, and so that one backend's thread
  pools or allocator do not slow another.
- All processes of a model are started (compiled and warmed up one after
  the other, timed apart), then run short timed windows in turn, round after
  round in alternating order. On a shared machine the load moves; taking
  every configuration's windows side by side keeps the ratios fair, and the
  spread of the windows shows the noise.
- The data is synthetic and in memory (random 0-255 grey 48x48 images, 7
  classes), the same for every configuration: this measures the training
  step, not the input pipeline.
- The original loop runs twice: as it ran, and with `OMP_WAIT_POLICY=PASSIVE`.
  PyTorch's OpenMP threads spin while they wait, which on a CPU shared with
  other processes makes the loop several times slower; ratios are given
  against both, the second being the conservative one.

Example:

    python benchmarks/bench_train.py --models cbam --json bench_train.json
    python benchmarks/bench_train.py --models cbam --backends tensorflow \
        --batch-size 32,64,128 --jit-compile auto,on
    python benchmarks/bench_train.py --backends torch \
        --data-format channels_last,channels_first
"""

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

import harness

NUM_CLASSES = 7
IMAGE_SHAPE = (48, 48, 1)
PRECISIONS = {"off": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
JIT_VALUES = {"auto": "auto", "on": True, "true": True, "off": False, "false": False}
BATCH_NORMS = ("fused", "keras")


def synthetic_data(num_images: int, seed: int = 0) -> tuple:
    """Random 0-255 grey images as float32 (what the data pipeline yields) and labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_images, *IMAGE_SHAPE), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, num_images)
    return images.astype("float32"), labels


class _KerasRunner:
    """`model.fit` of a zoo model, compiled as `fer_keras.training` compiles it."""

    def __init__(self, config: dict):
        import numpy as np

        import keras

        from fer_keras.models import build_model, resolve_data_format
        from fer_keras.recipes import get_recipe
        from fer_keras.training import add_l2, make_optimizer

        keras.utils.set_random_seed(0)
        keras.config.set_dtype_policy(PRECISIONS[config["mixed_precision"]])
        self.batch_size = config["batch_size"]
        recipe = get_recipe("seed").replace(batch_size=self.batch_size)
        self.data_format = resolve_data_format(config["data_format"])
        self.model = build_model(config["model"], num_classes=NUM_CLASSES,
                                 data_format=self.data_format)
        if config["batch_norm"] == "keras":
            self.model = _with_keras_batch_norm(self.model)
        add_l2(self.model, recipe.weight_decay)
        self.model.compile(
            optimizer=make_optimizer(recipe, steps_per_epoch=1000),
            loss=keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=recipe.label_smoothing
            ),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            jit_compile=config["jit_compile"],
        )
        images, labels = synthetic_data(self.batch_size * config["max_steps"])
        self.images = images
        self.labels = np.eye(NUM_CLASSES, dtype="float32")[labels]
        self.timer = harness.epoch_timer()

    def describe(self) -> dict:
        return {"jit_compiled": bool(self.model.jit_compile),
                "dtype_policy": self.model.dtype_policy.name,
                "layout": self.data_format}

    def run(self, steps: int) -> float:
        n = steps * self.batch_size
        self.model.fit(
            self.images[:n], self.labels[:n], batch_size=self.batch_size, epochs=1,
            shuffle=False, verbose=0, callbacks=[self.timer],
        )
        return self.timer.seconds


def _with_keras_batch_norm(model):
    """The model with `keras.layers.BatchNormalization` in place of the fused one."""
    import keras

    from fer_keras.layers import FusedBatchNormalization

    def clone(layer):
        if isinstance(layer, FusedBatchNormalization):
            return keras.layers.BatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=clone)


class _ReferenceRunner:
    """The original's eager PyTorch loop on the pure-PyTorch reference model."""

    def __init__(self, config: dict):
        import torch

        from fer_keras import torch_reference

        torch.manual_seed(0)
        self.torch = torch
        # On a GPU the original moved the model there and each batch to it.
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = config["batch_size"]
        self.model = torch_reference.REFERENCES[config["model"]]().train().to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=1e-3, weight_decay=1e-4
        )
        self.loss = torch.nn.CrossEntropyLoss()
        self.images, self.labels = synthetic_data(self.batch_size * config["max_steps"])

    def describe(self) -> dict:
        return {"torch_threads": self.torch.get_num_threads(), "dtype_policy": "float32",
                "device": str(self.device)}

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for i in range(steps):
            batch = slice(i * self.batch_size, (i + 1) * self.batch_size)
            x = self.torch.from_numpy(self.images[batch]).to(self.device)
            y = self.torch.from_numpy(self.labels[batch]).to(self.device)
            self.optimizer.zero_grad()
            loss = self.loss(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            loss.item()
        return time.perf_counter() - start


def worker(config: dict) -> None:
    """Builds one configuration, reports compile and warm-up, then runs timed windows."""
    runner_class = _ReferenceRunner if config["backend"] in harness.REFERENCES else _KerasRunner
    start = time.perf_counter()
    runner = runner_class(config)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    runner.run(1)
    first_step_s = time.perf_counter() - start
    start = time.perf_counter()
    if config["warmup_steps"]:
        runner.run(config["warmup_steps"])
    warmup_s = time.perf_counter() - start
    harness.send({"build_s": build_s, "first_step_s": first_step_s, "warmup_s": warmup_s,
                  **runner.describe()})
    harness.serve(lambda request: {"seconds": runner.run(request["steps"])})


def label(config: dict) -> str:
    """A short name for a configuration, for logs and errors."""
    if config["backend"] in harness.REFERENCES:
        return f"{config['model']} {config['backend']} (torch eager) b{config['batch_size']}"
    return (f"{config['model']} {config['backend']} b{config['batch_size']} "
            f"jit={config['jit_compile']} precision={config['mixed_precision']} "
            f"bn={config['batch_norm']} layout={config['data_format']}")


def _start_worker(config: dict) -> harness.WorkerProcess:
    script = Path(__file__).resolve()
    if config["backend"] in harness.REFERENCES:
        return harness.reference_worker(script, config, config["backend"], label(config))
    return harness.WorkerProcess(script, config, config["backend"], label(config))


def _jit_name(config: dict) -> str:
    if config["backend"] in harness.REFERENCES:
        return "eager"
    jit = config["jit_compile"]
    if config["backend"] == "jax":
        return "xla" if jit is not False else "eager"
    if config["backend"] == "tensorflow":
        return "xla" if jit is True else "graph"
    return "compile" if jit is True else "eager"


def configurations(args) -> list[dict]:
    """The reference and every backend x batch size x jit x precision x batch norm
    x layout ("auto" and the layout it stands for count once)."""
    from fer_keras.models import resolve_data_format
    from fer_keras.torch_reference import ORIGINAL_MODELS

    common = {"warmup_steps": args.warmup_steps,
              "max_steps": max(args.steps, args.warmup_steps, 1)}
    configs = []
    for model in args.models:
        # The original loop exists for the original's four models only.
        for reference in args.references if model in ORIGINAL_MODELS else ():
            configs.append({"model": model, "backend": reference,
                            "batch_size": args.reference_batch_size, "jit_compile": False,
                            "mixed_precision": "off", "batch_norm": "-",
                            "data_format": "-", **common})
        seen = set()
        for backend, batch_size, jit, precision, norm, data_format in itertools.product(
            args.backends, args.batch_size, args.jit_compile, args.mixed_precision,
            args.batch_norm, args.data_format,
        ):
            config = {"model": model, "backend": backend, "batch_size": batch_size,
                      "jit_compile": jit, "mixed_precision": precision,
                      "batch_norm": norm, "data_format": data_format, **common}
            try:
                layout = resolve_data_format(data_format, backend)
            except ValueError as err:  # a layout this CPU cannot compute: say so, go on
                print(f"Skipped {backend} {data_format}: {err}", file=sys.stderr)
                continue
            key = (backend, batch_size, _jit_name(config), precision, norm, layout)
            if key not in seen:
                seen.add(key)
                configs.append(config)
    return configs


def measure_model(configs: list[dict], steps: int, rounds: int) -> list[dict]:
    """Starts the workers of one model, then times them in turn, round after round."""
    rows = []
    with harness.started_workers() as workers:
        for config in configs:
            harness.log(f"  compiling {label(config)} ...")
            workers.append(_start_worker(config))
            ready = workers[-1].receive()
            rows.append({**_public(config), **ready, "jit": _jit_name(config), "windows": []})
            harness.log(f"    first step {ready['first_step_s']:.1f} s, "
                        f"warm-up {ready['warmup_s']:.1f} s")
        for r, order in harness.in_turn(len(workers), rounds):
            for i in order:
                seconds = workers[i].request({"op": "run", "steps": steps})["seconds"]
                rows[i]["windows"].append(steps * configs[i]["batch_size"] / seconds)
            harness.log(f"  round {r + 1}/{rounds}: " + ", ".join(
                f"{row['backend']}={row['windows'][-1]:.1f}" for row in rows) + " img/s")
    return rows


def _public(config: dict) -> dict:
    return {k: config[k] for k in ("model", "backend", "batch_size", "jit_compile",
                                   "mixed_precision", "batch_norm", "data_format")}


def summarise(rows: list[dict]) -> None:
    """Adds throughput, its spread and the ratios to the reference loops, in place.

    `ratio_vs_reference` is against the original loop as it ran;
    `ratio_vs_best_reference` against the fastest reference variant, the
    conservative figure. The paired ratios divide windows run side by side,
    which cancels most of the load other processes put on the machine.
    """
    for row in rows:
        windows = row["windows"]
        row["images_per_s"] = statistics.median(windows)
        row["spread_pct"] = 100.0 * (max(windows) - min(windows)) / row["images_per_s"]
    for row in rows:
        references = [r for r in rows
                      if r["model"] == row["model"] and r["backend"] in harness.REFERENCES]
        original = [r for r in references if r["backend"] == harness.REFERENCE]
        if original:
            row["ratio_vs_reference"] = row["images_per_s"] / original[0]["images_per_s"]
        if references:
            best = max(references, key=lambda r: r["images_per_s"])
            paired = [a / b for a, b in zip(row["windows"], best["windows"])]
            row["best_reference"] = best["backend"]
            row["ratio_vs_best_reference"] = row["images_per_s"] / best["images_per_s"]
            row["ratio_paired_range"] = [min(paired), max(paired)]


def fastest_per_backend(rows: list[dict]) -> dict:
    """{model: {backend: the row of its fastest configuration}}."""
    results = {}
    for row in rows:
        best = results.setdefault(row["model"], {}).get(row["backend"])
        if best is None or row["images_per_s"] > best["images_per_s"]:
            results[row["model"]][row["backend"]] = row
    return results


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (it reads as well in a terminal)."""
    header = ("| model | backend | batch | compile | precision | batch norm | layout | "
              "img/s | spread | x reference | x best reference | paired range | "
              "first step s | warm-up s |")
    lines = [header, "|" + "---|" * 14]
    for r in rows:
        paired = r.get("ratio_paired_range")
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['batch_size']} | {r['jit']} | "
            f"{r['dtype_policy']} | {r['batch_norm']} | {r.get('layout', '-')} | "
            f"{r['images_per_s']:.1f} | "
            f"{r['spread_pct']:.0f}% | "
            f"{_ratio(r.get('ratio_vs_reference'))} | "
            f"{_ratio(r.get('ratio_vs_best_reference'))} | "
            f"{'-' if paired is None else f'{paired[0]:.2f}-{paired[1]:.2f}'} | "
            f"{r['first_step_s']:.1f} | {r['warmup_s']:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    from fer_keras.models import DATA_FORMAT_CHOICES, MODELS
    from fer_keras.recipes import get_recipe

    recipe_batch_size = get_recipe("seed").batch_size

    parser = harness.argument_parser(__doc__)
    parser.add_argument("--models", type=harness.listed(str, MODELS), default=list(MODELS),
                        help="comma-separated zoo models (default: all)")
    parser.add_argument("--backends", type=harness.listed(str, harness.BACKENDS),
                        default=list(harness.BACKENDS),
                        help="comma-separated Keras backends (default: all three)")
    harness.add_window_arguments(parser, steps=2, warmup_steps=1)
    parser.add_argument("--batch-size", type=harness.listed(int), default=[recipe_batch_size],
                        help="Keras batch sizes, comma-separated (default "
                             f"{recipe_batch_size}, the 'seed' recipe's)")
    parser.add_argument("--jit-compile", type=harness.listed(str, JIT_VALUES), default=["auto"],
                        help="auto (what train.py does), on or off, comma-separated: "
                             "XLA under tensorflow, torch.compile under torch; jax "
                             "always compiles with XLA unless off")
    parser.add_argument("--mixed-precision", type=harness.listed(str, PRECISIONS), default=["off"],
                        help="off, bfloat16 or float16, comma-separated (default off)")
    parser.add_argument("--batch-norm", type=harness.listed(str, BATCH_NORMS), default=["fused"],
                        help="fused (the zoo's FusedBatchNormalization: TensorFlow's "
                             "fused kernel when training under tensorflow) or keras "
                             "(keras.layers.BatchNormalization), comma-separated "
                             "(default fused)")
    parser.add_argument("--data-format", type=harness.listed(str, DATA_FORMAT_CHOICES),
                        default=["auto"],
                        help="layout of the Keras models' feature maps, comma-separated: "
                             "auto (what train.py does: channels_first under torch, else "
                             "channels_last), channels_last, channels_first")
    parser.add_argument("--reference-batch-size", type=harness.at_least(1), default=32,
                        help="batch size of the original PyTorch loop (default 32, as it trained)")
    parser.add_argument("--references", type=harness.listed(str, [*harness.REFERENCES, "none"]),
                        default=list(harness.REFERENCES),
                        help="reference loops: 'reference' (the original as it ran), "
                             "'reference_omp_passive' (the same with OMP_WAIT_POLICY="
                             "PASSIVE), or none (default: both)")
    harness.add_output_arguments(parser)
    args = parser.parse_args(argv)
    if any(b < 1 for b in args.batch_size):
        parser.error(f"--batch-size: batch sizes must be >= 1. Received: {args.batch_size}")
    args.jit_compile = [JIT_VALUES[v] for v in args.jit_compile]
    args.references = [r for r in args.references if r != "none"]
    return args


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return None

    hardware = harness.hardware_info()
    harness.log(f"{hardware['cpu']}, {hardware['cores']} cores; "
                f"bf16 instructions: {', '.join(hardware['bf16_instructions']) or 'none'}")
    load_before = os.getloadavg()
    start = time.perf_counter()
    configs = configurations(args)
    rows = []
    for model in args.models:
        harness.log(f"{model}:")
        model_configs = [c for c in configs if c["model"] == model]
        rows += measure_model(model_configs, args.steps, args.rounds)
    summarise(rows)
    report = {
        "benchmark": "train",
        "data": "synthetic: random uint8 0-255 48x48x1 images as float32, 7 classes, "
                "in memory (the input pipeline is not measured)",
        **harness.report_context(args, argv, hardware, load_before),
        "wall_s": time.perf_counter() - start,
        "rows": rows,
        "results": fastest_per_backend(rows),
    }
    print(format_table(rows))
    print(f"\n{hardware['cpu']}, {hardware['cores']} cores. Synthetic in-memory data. "
          f"img/s: median of {args.rounds} windows of {args.steps} steps; spread: "
          "(max - min) / median of the windows; x reference: against the original "
          "PyTorch loop as it ran; x best reference: against the faster reference "
          "variant; paired range: ratios to it of windows run side by side. "
          + harness.load_note(report))
    harness.write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
