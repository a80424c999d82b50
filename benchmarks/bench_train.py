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
import importlib.metadata
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BACKENDS = ("jax", "tensorflow", "torch")
REFERENCE = "reference"
# The original loop as it ran (torch's default OpenMP threads spin while they
# wait), and the same loop with waiting threads asleep, which is much faster
# on a CPU shared with other processes: ratios are given against both.
REFERENCES = {REFERENCE: None, "reference_omp_passive": "PASSIVE"}
NUM_CLASSES = 7
IMAGE_SHAPE = (48, 48, 1)
PRECISIONS = {"off": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
JIT_VALUES = {"auto": "auto", "on": True, "true": True, "off": False, "false": False}
MESSAGE_PREFIX = "BENCH_JSON "
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
        self.timer = _epoch_timer()

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


def _epoch_timer():
    """A callback holding the wall time of the last epoch.

    It has epoch hooks only, so `fit` keeps dispatching steps asynchronously,
    and the epoch ends after the backend has synchronised the state and
    turned the logs into Python floats, so the time covers finished work.
    """
    import keras

    class EpochTimer(keras.callbacks.Callback):
        seconds = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self._start

    return EpochTimer()


class _ReferenceRunner:
    """The original's eager PyTorch loop on the pure-PyTorch reference model."""

    def __init__(self, config: dict):
        import torch

        from fer_keras.torch_reference import REFERENCES

        torch.manual_seed(0)
        self.torch = torch
        # On a GPU the original moved the model there and each batch to it.
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = config["batch_size"]
        self.model = REFERENCES[config["model"]]().train().to(self.device)
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


def send(message: dict) -> None:
    """Sends one message to the driver (on stdout, marked: libraries print there too)."""
    print(MESSAGE_PREFIX + json.dumps(message), flush=True)


def serve(handle) -> None:
    """Answers the driver's requests with `handle(request)` until it says stop."""
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "stop":
            break
        send(handle(request))


def worker(config: dict) -> None:
    """Builds one configuration, reports compile and warm-up, then runs timed windows."""
    runner_class = _ReferenceRunner if config["backend"] in REFERENCES else _KerasRunner
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
    send({"build_s": build_s, "first_step_s": first_step_s, "warmup_s": warmup_s,
          **runner.describe()})
    serve(lambda request: {"seconds": runner.run(request["steps"])})


class WorkerProcess:
    """The driver's handle on one worker: `script --worker CONFIG` under a backend.

    Args:
        script: the benchmark script, whose `--worker` mode serves requests.
        config: JSON-able settings passed to the worker.
        keras_backend: `KERAS_BACKEND` of the process.
        name: what to call it in errors.
        env: extra environment variables (a None value removes one).
    """

    def __init__(self, script: Path, config: dict, keras_backend: str, name: str,
                 env: dict | None = None):
        self.name = name
        environ = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1",
                       KERAS_BACKEND=keras_backend)
        for key, value in (env or {}).items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, str(script), "--worker", json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, env=environ, cwd=ROOT,
        )

    def receive(self) -> dict:
        """The worker's next message, or a RuntimeError with the end of its stderr."""
        for line in self.process.stdout:
            if line.startswith(MESSAGE_PREFIX):
                return json.loads(line[len(MESSAGE_PREFIX):])
        self.process.wait()
        self._stderr.seek(0)
        error = self._stderr.read()[-4000:]
        raise RuntimeError(
            f"The benchmark worker for {self.name} stopped "
            f"(exit code {self.process.returncode}):\n{error}"
        )

    def request(self, message: dict) -> dict:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "stop"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=60)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._stderr.close()


def label(config: dict) -> str:
    """A short name for a configuration, for logs and errors."""
    if config["backend"] in REFERENCES:
        return f"{config['model']} {config['backend']} (torch eager) b{config['batch_size']}"
    return (f"{config['model']} {config['backend']} b{config['batch_size']} "
            f"jit={config['jit_compile']} precision={config['mixed_precision']} "
            f"bn={config['batch_norm']} layout={config['data_format']}")


def _start_worker(config: dict) -> WorkerProcess:
    if config["backend"] in REFERENCES:
        # The reference imports fer_keras for the filter bank; torch is the lightest.
        return WorkerProcess(Path(__file__).resolve(), config, "torch", label(config),
                             env={"OMP_WAIT_POLICY": REFERENCES[config["backend"]]})
    return WorkerProcess(Path(__file__).resolve(), config, config["backend"], label(config))


def _jit_name(config: dict) -> str:
    if config["backend"] in REFERENCES:
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


def measure_model(configs: list[dict], steps: int, rounds: int, log) -> list[dict]:
    """Starts the workers of one model, then times them in turn, round after round."""
    workers, rows = [], []
    try:
        for config in configs:
            log(f"  compiling {label(config)} ...")
            worker_handle = _start_worker(config)
            workers.append(worker_handle)
            ready = worker_handle.receive()
            rows.append({**_public(config), **ready, "jit": _jit_name(config), "windows": []})
            log(f"    first step {ready['first_step_s']:.1f} s, "
                f"warm-up {ready['warmup_s']:.1f} s")
        for r in range(rounds):
            order = list(range(len(workers)))
            if r % 2:
                order.reverse()
            for i in order:
                seconds = workers[i].request({"op": "run", "steps": steps})["seconds"]
                rows[i]["windows"].append(steps * configs[i]["batch_size"] / seconds)
            log(f"  round {r + 1}/{rounds}: " + ", ".join(
                f"{rows[i]['backend']}={rows[i]['windows'][-1]:.1f}" for i in range(len(rows))
            ) + " img/s")
    finally:
        for worker_handle in workers:
            worker_handle.close()
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
        references = [r for r in rows if r["model"] == row["model"] and r["backend"] in REFERENCES]
        original = [r for r in references if r["backend"] == REFERENCE]
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


def hardware_info() -> dict:
    """CPU model, cores and the bf16 instructions that decide if mixed precision can pay."""
    from fer_keras.runinfo import cpu_info

    model, flags = cpu_info()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "bf16_instructions": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile"}),
        "platform": platform.platform(),
    }


def versions() -> dict:
    found = {}
    for package in ("keras", "jax", "jaxlib", "tensorflow", "torch", "numpy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def listed(kind, choices=None):
    """An argparse type: comma-separated values of `kind`, each among `choices`."""

    def parse(text):
        try:
            values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or (choices is not None and not set(values) <= set(choices)):
            expected = ", ".join(map(str, choices)) if choices else f"{kind.__name__} values"
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {expected}. Received: {text!r}"
            )
        return values

    return parse


def parse_args(argv=None) -> argparse.Namespace:
    from fer_keras.models import DATA_FORMAT_CHOICES, MODELS
    from fer_keras.recipes import get_recipe

    recipe_batch_size = get_recipe("seed").batch_size

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models", type=listed(str, MODELS), default=list(MODELS),
                        help="comma-separated zoo models (default: all)")
    parser.add_argument("--backends", type=listed(str, BACKENDS), default=list(BACKENDS),
                        help="comma-separated Keras backends (default: all three)")
    parser.add_argument("--steps", type=int, default=2,
                        help="timed training steps per window (default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="timed windows per configuration, run in turn (default 3)")
    parser.add_argument("--warmup-steps", type=int, default=1,
                        help="untimed steps after the first (compiling) one (default 1)")
    parser.add_argument("--batch-size", type=listed(int), default=[recipe_batch_size],
                        help="Keras batch sizes, comma-separated (default "
                             f"{recipe_batch_size}, the 'seed' recipe's)")
    parser.add_argument("--jit-compile", type=listed(str, JIT_VALUES), default=["auto"],
                        help="auto (what train.py does), on or off, comma-separated: "
                             "XLA under tensorflow, torch.compile under torch; jax "
                             "always compiles with XLA unless off")
    parser.add_argument("--mixed-precision", type=listed(str, PRECISIONS), default=["off"],
                        help="off, bfloat16 or float16, comma-separated (default off)")
    parser.add_argument("--batch-norm", type=listed(str, BATCH_NORMS), default=["fused"],
                        help="fused (the zoo's FusedBatchNormalization: TensorFlow's "
                             "fused kernel when training under tensorflow) or keras "
                             "(keras.layers.BatchNormalization), comma-separated "
                             "(default fused)")
    parser.add_argument("--data-format", type=listed(str, DATA_FORMAT_CHOICES), default=["auto"],
                        help="layout of the Keras models' feature maps, comma-separated: "
                             "auto (what train.py does: channels_first under torch, else "
                             "channels_last), channels_last, channels_first")
    parser.add_argument("--reference-batch-size", type=int, default=32,
                        help="batch size of the original PyTorch loop (default 32, as it trained)")
    parser.add_argument("--references", type=listed(str, [*REFERENCES, "none"]),
                        default=list(REFERENCES),
                        help="reference loops: 'reference' (the original as it ran), "
                             "'reference_omp_passive' (the same with OMP_WAIT_POLICY="
                             "PASSIVE), or none (default: both)")
    parser.add_argument("--json", metavar="PATH", help="write the figures to PATH")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    require_positive(parser, args, ("steps", "rounds", "reference_batch_size"))
    if args.warmup_steps < 0 or any(b < 1 for b in args.batch_size):
        parser.error("--warmup-steps must be >= 0 and batch sizes >= 1. Received: "
                     f"--warmup-steps {args.warmup_steps}, --batch-size {args.batch_size}")
    args.jit_compile = [JIT_VALUES[v] for v in args.jit_compile]
    args.references = [r for r in args.references if r != "none"]
    return args


def require_positive(parser: argparse.ArgumentParser, args, names) -> None:
    """Exits through `parser.error` unless each option in `names` is at least 1."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1. "
                         f"Received: {getattr(args, name)}")


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


def report_context(args, argv, hardware: dict, load_before) -> dict:
    """What every benchmark report records about where and how it ran."""
    return {
        "hardware": hardware,
        "versions": versions(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "worker")},
        "command": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
    }


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return None

    hardware = hardware_info()
    log(f"{hardware['cpu']}, {hardware['cores']} cores; "
        f"bf16 instructions: {', '.join(hardware['bf16_instructions']) or 'none'}")
    load_before = os.getloadavg()
    start = time.perf_counter()
    configs = configurations(args)
    rows = []
    for model in args.models:
        log(f"{model}:")
        model_configs = [c for c in configs if c["model"] == model]
        rows += measure_model(model_configs, args.steps, args.rounds, log)
    summarise(rows)
    report = {
        "benchmark": "train",
        "data": "synthetic: random uint8 0-255 48x48x1 images as float32, 7 classes, "
                "in memory (the input pipeline is not measured)",
        **report_context(args, argv, hardware, load_before),
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
          f"Load average before/after: {load_before[0]:.1f}/"
          f"{report['load_average_after'][0]:.1f}.")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
