"""Prediction speed of `fer_keras.inference.Predictor`: one face, and batches.

For each backend it measures the latency of one face (p50, p99; what a
webcam loop feels), the throughput of batches of raw images, and, to show
what the predictor saves, `model.predict` on one face. The model is a
`.keras` file (`--model-path`), or a zoo model with random weights
(`--model`; the speed does not depend on the weights).

`--litert` adds the model exported as `python export.py --format tflite
--quantize` does (int8 weights), run by the same `Predictor` through LiteRT.

Without `--backends`, it runs in this process under the current Keras
backend. With it, each backend runs in its own process; the processes load
and compile one after the other, then measure in turn, round after round,
so the load of other processes on a shared machine falls on all of them.

Example:

    KERAS_BACKEND=jax python benchmarks/bench_predict.py --model cbam
    python benchmarks/bench_predict.py --backends jax,tensorflow,torch --litert --json p.json
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import harness


class _PredictRunner:
    """One backend's predictor and the measurements the driver asks for."""

    def __init__(self, config: dict):
        import numpy as np

        import keras

        from fer_keras.inference import Predictor
        from fer_keras.models import build_model

        start = time.perf_counter()
        if config["model_path"]:
            from fer_keras.loading import load_model

            model = load_model(config["model_path"])
        else:
            keras.utils.set_random_seed(0)
            model = build_model(config["model"])
        self.backend = keras.backend.backend()
        if config.get("litert"):
            from fer_keras.export import export_model

            self._folder = tempfile.TemporaryDirectory()
            model = export_model(model, Path(self._folder.name) / "model.tflite",
                                 "tflite", quantize=True)
            self.backend = "litert int8"
        self.load_s = time.perf_counter() - start
        self.predictor = Predictor(model, batch_size=config["batch_size"])
        self.model = self.predictor.model
        h, w = self.predictor.image_shape
        rng = np.random.default_rng(0)
        self.faces = rng.integers(0, 256, (64, h, w), dtype=np.uint8)
        self.batch = rng.integers(0, 256, (config["batch_images"], h, w, 1), dtype=np.uint8)
        self._predict_compiled = False

    def warm_up(self) -> dict:
        start = time.perf_counter()
        self.predictor.predict_proba(self.faces[0])
        first_call_s = time.perf_counter() - start
        start = time.perf_counter()
        self.predictor.predict_proba(self.batch)
        first_batch_s = time.perf_counter() - start
        for face in self.faces[:5]:
            self.predictor.predict_proba(face)
        return {"backend": self.backend, "load_s": self.load_s,
                "first_call_s": first_call_s, "first_batch_s": first_batch_s}

    def handle(self, request: dict) -> dict:
        if request["op"] == "latency":
            wall, cpu = self._latencies(self.predictor.predict_proba, request["runs"])
            return {"ms": wall, "cpu_ms": cpu}
        if request["op"] == "model_predict":
            if self.model is None:
                return {"ms": []}
            if not self._predict_compiled:
                self._model_predict(self.faces[0])
                self._predict_compiled = True
            return {"ms": self._latencies(self._model_predict, request["runs"])[0]}
        if request["op"] == "batch":
            start = time.perf_counter()
            self.predictor.predict_proba(self.batch)
            return {"images_per_s": len(self.batch) / (time.perf_counter() - start)}
        raise ValueError(f"Unknown request. Received: {request!r}")

    def _model_predict(self, face):
        return self.model.predict(face[None, :, :, None], verbose=0)

    def _latencies(self, predict, runs):
        """Wall and CPU milliseconds of each call.

        CPU time (all threads of this process) depends far less on the load
        of other processes than wall time: with one thread it is close to
        the wall time the call would take on an idle machine.
        """
        wall, cpu = [], []
        for i in range(runs):
            face = self.faces[i % len(self.faces)]
            start, start_cpu = time.perf_counter(), time.process_time()
            predict(face)
            wall.append(1e3 * (time.perf_counter() - start))
            cpu.append(1e3 * (time.process_time() - start_cpu))
        return wall, cpu


def worker(config: dict) -> None:
    """Serves the driver's requests from one backend's process."""
    runner = _PredictRunner(config)
    harness.send(runner.warm_up())
    harness.serve(runner.handle)


class _InProcess:
    """The same interface as `WorkerProcess`, for the current backend in this process."""

    def __init__(self, config: dict):
        self.runner = _PredictRunner(config)
        self.ready = self.runner.warm_up()

    def receive(self) -> dict:
        return self.ready

    def request(self, message: dict) -> dict:
        return self.runner.handle(message)

    def close(self) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, linear between samples (as `numpy.percentile`)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def measure(args) -> list[dict]:
    """Loads each backend's predictor, then measures them in turn, round after round."""
    base = {"model": args.model, "model_path": args.model_path,
            "batch_size": args.batch_size, "batch_images": args.batch_images}
    rows = []
    with harness.started_workers() as handles:
        for backend in [*(args.backends or [None]), *(["litert"] if args.litert else [])]:
            harness.log(f"loading {args.model_path or args.model} under "
                        f"{backend or 'the current backend'} ...")
            if backend is None:
                handle = _InProcess(base)
            elif backend == "litert":
                handle = harness.WorkerProcess(Path(__file__), {**base, "litert": True},
                                       "tensorflow", "predict with LiteRT")
            else:
                handle = harness.WorkerProcess(Path(__file__), {**base, "backend": backend},
                                       backend, f"predict under {backend}")
            handles.append(handle)
            ready = handle.receive()
            rows.append({**ready, "latency_ms": [], "cpu_ms": [], "model_predict_ms": [],
                         "batch": []})
            harness.log(f"  first call {ready['first_call_s']:.1f} s, "
                        f"first batch {ready['first_batch_s']:.1f} s")
        runs = -(-args.runs // args.rounds)
        predict_runs = -(-args.model_predict_runs // args.rounds)
        for r, order in harness.in_turn(len(handles), args.rounds):
            for i in order:
                latency = handles[i].request({"op": "latency", "runs": runs})
                rows[i]["latency_ms"] += latency["ms"]
                rows[i]["cpu_ms"] += latency["cpu_ms"]
                if predict_runs:
                    rows[i]["model_predict_ms"] += handles[i].request(
                        {"op": "model_predict", "runs": predict_runs})["ms"]
                rows[i]["batch"].append(
                    handles[i].request({"op": "batch"})["images_per_s"])
            harness.log(f"  round {r + 1}/{args.rounds}: " + ", ".join(
                f"{row['backend']} p50={statistics.median(row['latency_ms']):.1f} ms"
                for row in rows))
    for row in rows:
        latency = row.pop("latency_ms")
        cpu = row.pop("cpu_ms")
        predict_ms = row.pop("model_predict_ms")
        batch = row.pop("batch")
        row.update({
            "p50_ms": percentile(latency, 50),
            "p90_ms": percentile(latency, 90),
            "p99_ms": percentile(latency, 99),
            "cpu_ms_p50": percentile(cpu, 50),
            "single_runs": len(latency),
            "batch_images_per_s": statistics.median(batch),
            "batch_spread_pct": 100.0 * (max(batch) - min(batch)) / statistics.median(batch),
            "model_predict_p50_ms": percentile(predict_ms, 50) if predict_ms else None,
        })
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| backend | p50 ms | p90 ms | p99 ms | CPU ms p50 | model.predict p50 ms | "
             "batch img/s | batch spread | first call s |",
             "|" + "---|" * 9]
    for r in rows:
        predict = r["model_predict_p50_ms"]
        lines.append(
            f"| {r['backend']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['cpu_ms_p50']:.1f} | "
            f"{'-' if predict is None else f'{predict:.1f}'} | "
            f"{r['batch_images_per_s']:.0f} | {r['batch_spread_pct']:.0f}% | "
            f"{r['first_call_s']:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    from fer_keras.models import MODELS

    parser = harness.argument_parser(__doc__)
    parser.add_argument("--model", choices=MODELS, default="cbam",
                        help="zoo model with random weights, when no --model-path (default cbam)")
    parser.add_argument("--model-path", help="a `.keras` file to measure instead")
    parser.add_argument("--backends", type=harness.listed(str, harness.BACKENDS),
                        help="comma-separated backends, each in its own process "
                             "(default: the current backend, in this process)")
    parser.add_argument("--litert", action="store_true",
                        help="also measure the model exported to LiteRT with int8 weights "
                             "(export.py --format tflite --quantize), in its own process")
    parser.add_argument("--runs", type=harness.at_least(1), default=300,
                        help="single-face predictions per backend, for p50 and p99 (default 300)")
    parser.add_argument("--model-predict-runs", type=harness.at_least(0), default=30,
                        help="single-face `model.predict` calls, for comparison "
                             "(default 30; 0 skips them)")
    parser.add_argument("--batch-images", type=harness.at_least(1), default=1024,
                        help="images per batch-throughput measurement (default 1024)")
    parser.add_argument("--batch-size", type=harness.at_least(1), default=256,
                        help="the predictor's batch size (default 256)")
    parser.add_argument("--rounds", type=harness.at_least(1), default=3,
                        help="rounds over the backends (default 3)")
    harness.add_output_arguments(parser)
    args = parser.parse_args(argv)
    if args.model_path and not Path(args.model_path).exists():
        parser.error(f"--model-path: no such file. Received: {args.model_path}")
    return args


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return None

    hardware = harness.hardware_info()
    load_before = os.getloadavg()
    rows = measure(args)
    report = {
        "benchmark": "predict",
        "model": args.model_path or args.model,
        **harness.report_context(args, argv, hardware, load_before),
        "rows": rows,
        "results": {row["backend"]: row for row in rows},
    }
    fastest = min(rows, key=lambda row: row["p50_ms"])
    report.update({"fastest_backend": fastest["backend"],
                   **{k: fastest[k] for k in ("p50_ms", "p99_ms", "batch_images_per_s")}})
    print(format_table(rows))
    print(f"\n{hardware['cpu']}, {hardware['cores']} cores; {args.model_path or args.model}; "
          f"one face: {rows[0]['single_runs']} calls of Predictor.predict_proba; batch: "
          f"{args.batch_images} images, batch_size {args.batch_size}, median of "
          f"{args.rounds}. {harness.load_note(report)}")
    harness.write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
