"""What the benchmark scripts share: options, worker processes, timing and reports.

The `bench_*.py` scripts run as scripts (`python benchmarks/bench_train.py`),
so this folder is on `sys.path` and they import this module by name.
Importing it puts the repository root first on `sys.path`: a benchmark
measures the `fer_keras` of its own checkout, installed or not.

Why the worker machinery: `KERAS_BACKEND` and the dtype policy are fixed per
process, so each configuration runs in its own process (`WorkerProcess`),
started by the driver as `script --worker CONFIG`; the worker answers the
driver's JSON requests (`send`, `serve`) and the driver times the workers
in turn (`in_turn`), so the load of other processes falls on all of them.
"""

import argparse
import concurrent.futures
import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BACKENDS = ("jax", "tensorflow", "torch")
REFERENCE = "reference"
# The original PyTorch loop as it ran (torch's default OpenMP threads spin
# while they wait), and the same loop with waiting threads asleep, which is
# much faster on a CPU shared with other processes: ratios are given against
# both. The value is the loop's OMP_WAIT_POLICY.
REFERENCES = {REFERENCE: None, "reference_omp_passive": "PASSIVE"}
MESSAGE_PREFIX = "BENCH_JSON "

# ---------------------------------------------------------------------------
# Command line


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of `doc`, its examples kept as written."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def listed(kind: Callable, choices=None) -> Callable[[str], list]:
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


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than `minimum`."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}. Received: {text!r}")
        return value

    return parse


def add_window_arguments(parser: argparse.ArgumentParser, steps: int,
                         warmup_steps: int) -> None:
    """`--steps`, `--rounds` and `--warmup-steps`: the timed windows of a worker."""
    parser.add_argument("--steps", type=at_least(1), default=steps,
                        help=f"timed training steps per window (default {steps})")
    parser.add_argument("--rounds", type=at_least(1), default=3,
                        help="timed windows per configuration, run in turn (default 3)")
    parser.add_argument("--warmup-steps", type=at_least(0), default=warmup_steps,
                        help="untimed steps after the first (compiling) one "
                             f"(default {warmup_steps})")


def add_output_arguments(parser: argparse.ArgumentParser,
                         json_help: str = "write the figures to PATH") -> None:
    """`--json PATH`, and the hidden `--worker CONFIG` that `WorkerProcess` passes."""
    parser.add_argument("--json", metavar="PATH", help=json_help)
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def default_data_dir() -> Path:
    """FER2013_DIR, else the `shared/fer2013` folder beside the checkout."""
    return Path(os.environ.get("FER2013_DIR") or ROOT.parent / "shared" / "fer2013")


# ---------------------------------------------------------------------------
# Worker processes


def send(message: dict) -> None:
    """Sends one message to the driver (on stdout, marked: libraries print there too)."""
    print(MESSAGE_PREFIX + json.dumps(message), flush=True)


def serve(handle: Callable[[dict], dict]) -> None:
    """Answers the driver's requests with `handle(request)` until it says stop."""
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "stop":
            break
        send(handle(request))


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


def reference_worker(script: Path, config: dict, reference: str, name: str) -> WorkerProcess:
    """A worker running the original PyTorch loop, with the OMP_WAIT_POLICY of `reference`.

    It imports fer_keras (for the reference model or the data), under torch,
    the lightest backend for it.
    """
    return WorkerProcess(script, config, "torch", name,
                         env={"OMP_WAIT_POLICY": REFERENCES[reference]})


@contextlib.contextmanager
def started_workers() -> Iterator[list]:
    """A list for the handles started in the block, each closed when it ends.

    They close together: each process takes seconds to shut its libraries down.
    """
    handles = []
    try:
        yield handles
    finally:
        with concurrent.futures.ThreadPoolExecutor(max(1, len(handles))) as pool:
            list(pool.map(lambda handle: handle.close(), handles))


def in_turn(count: int, rounds: int) -> Iterator[tuple[int, list[int]]]:
    """(round, order of the `count` workers) for each round.

    The order alternates, forwards then backwards, so that no worker always
    runs right after the same other one.
    """
    for r in range(rounds):
        order = list(range(count))
        yield r, order[::-1] if r % 2 else order


# ---------------------------------------------------------------------------
# Timing


def epoch_timer():
    """A Keras callback holding the wall time of the last epoch.

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


# ---------------------------------------------------------------------------
# Reports


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


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
    """The installed versions of Keras, the backends and NumPy."""
    found = {}
    for package in ("keras", "jax", "jaxlib", "tensorflow", "torch", "numpy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def report_context(args: argparse.Namespace, argv: list[str] | None, hardware: dict,
                   load_before: tuple) -> dict:
    """What every benchmark report records about where and how it ran."""
    return {
        "hardware": hardware,
        "versions": versions(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "worker")},
        "command": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
    }


def load_note(report: dict) -> str:
    """The report's load averages, for the line under a table."""
    return (f"Load average before/after: {report['load_average_before'][0]:.1f}/"
            f"{report['load_average_after'][0]:.1f}.")


def write_json(path: str | Path | None, report: dict) -> None:
    """Writes the report to `path` (its folder made if needed); nothing if no path."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
