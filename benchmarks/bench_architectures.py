"""Accuracy per CPU-hour of zoo architectures: which one to train for long.

Each candidate trains with the same recipe, split and seed for the same
number of steps (`run`), then `report` draws validation accuracy against
CPU-hours for all of them in one table and one PNG.

Why it is built this way:

- The budget is a number of training steps (images seen), the same for
  every candidate, so the comparison is not skewed by what else the machine
  ran meanwhile. CPU-hours are the images seen divided by each model's
  training throughput measured side by side in one `bench_train.py` run
  (`--throughput`), the fair way to compare speeds on a shared machine; the
  wall time each run really took is reported beside it.
- Short epochs (`--steps-per-epoch`) give a curve of several validation
  points within a short budget. The cosine schedule spans the budget, so
  each candidate ends its budget annealed, as a long run would.
- FLOPs are counted from the built model (convolutions and dense layers,
  a multiply-add counted as 2), a speed measure independent of the CPU.

Example:

    python benchmarks/bench_architectures.py run --models vgg,resnet18,cbam \
        --steps-per-epoch 150 --epochs 8 --output-dir /work/runs/compare
    python benchmarks/bench_architectures.py report --output-dir /work/runs/compare \
        --throughput vgg=159,resnet18=171,cbam=155
"""

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from harness import ROOT


def forward_flops(model) -> int:
    """Forward FLOPs of one image in the model's convolutions and dense layers."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            out = layer.output.shape
            spatial = out[1] * out[2] if layer.data_format == "channels_last" else out[2] * out[3]
            kernel = layer.kernel.shape
            total += 2 * spatial * kernel[0] * kernel[1] * kernel[2] * kernel[3]
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return int(total)


def _read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def curve(run_dir: Path, throughput: float | None) -> dict:
    """The run's validation accuracy against CPU-hours and images seen."""
    run = json.loads((run_dir / "run.json").read_text())
    rows = _read_rows(run_dir / "history.csv")
    images_per_epoch = run["steps_per_epoch"] * run["recipe"]["batch_size"]
    train_count = run["data"]["train"]["total"]
    seen, wall, points = 0, 0.0, []
    for row in rows:
        seen += images_per_epoch
        wall += float(row["epoch_time_s"])
        points.append(
            {
                "data_epochs": seen / train_count,
                "cpu_hours": seen / throughput / 3600 if throughput else wall / 3600,
                "wall_hours": wall / 3600,
                "val_accuracy": float(row["val_accuracy"]),
            }
        )
    return {"model": run["model"], "params": run["params"], "points": points,
            "backend": run.get("backend"), "cpu": run.get("cpu")}


def run_candidates(args) -> None:
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        command = [
            sys.executable, str(ROOT / "train.py"), "--backend", args.backend,
            "--model", model, "--recipe", args.recipe, "--seed", str(args.seed),
            "--steps-per-epoch", str(args.steps_per_epoch), "--epochs", str(args.epochs),
            "--mixed-precision", "auto", "--output-dir", str(out / model), "--quiet",
        ]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        print(" ".join(command), flush=True)
        with open(out / f"{model}.log", "w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)


def report(args) -> None:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import fer_keras
    from fer_keras.plots import pyplot

    out = Path(args.output_dir)
    curves = []
    for run_dir in sorted(p.parent for p in out.glob("*/history.csv")):
        model = run_dir.name
        result = curve(run_dir, args.throughput.get(model))
        result["gflops"] = forward_flops(fer_keras.build_model(result["model"])) / 1e9
        result["throughput"] = args.throughput.get(model)
        curves.append(result)
    if not curves:
        raise SystemExit(f"No runs under {out}: expected MODEL/history.csv folders from `run`.")

    lines = [
        "| model | params | GFLOP / image (forward) | img/s (side by side) | "
        "data epochs | CPU-hours | wall hours | best val | final val |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in curves:
        last = c["points"][-1]
        best = max(p["val_accuracy"] for p in c["points"])
        lines.append(
            f"| `{c['model']}` | {c['params']:,} | {c['gflops']:.2f} | "
            f"{c['throughput'] or '-'} | {last['data_epochs']:.2f} | {last['cpu_hours']:.3f} | "
            f"{last['wall_hours']:.3f} | {best:.2%} | {last['val_accuracy']:.2%} |"
        )
    table = "\n".join(lines)
    print(table)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for c in curves:
        ax.plot([p["cpu_hours"] for p in c["points"]],
                [100 * p["val_accuracy"] for p in c["points"]], marker="o", label=c["model"])
    ax.set_xlabel("CPU-hours (2 cores)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Accuracy per CPU-hour, same recipe and budget")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "architectures.png", dpi=120)
    plt.close(fig)
    (out / "architectures.json").write_text(json.dumps(
        {"command": sys.argv, "throughput": args.throughput, "curves": curves}, indent=1))
    (out / "architectures.md").write_text(table + "\n")
    print(f"Wrote {out / 'architectures.png'}, architectures.json and architectures.md")


def _throughputs(text: str) -> dict:
    pairs = [item.split("=") for item in text.split(",") if item]
    try:
        return {name: float(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"Expected MODEL=IMG_PER_S pairs separated by commas. Received: {text!r}"
        ) from None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train each candidate for the same budget")
    run.add_argument("--models", type=lambda s: s.split(","), default=["vgg", "resnet18", "cbam"])
    run.add_argument("--recipe", default="crop44")
    run.add_argument("--backend", default="tensorflow")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--steps-per-epoch", type=int, default=150)
    run.add_argument("--epochs", type=int, default=8)
    run.add_argument("--data-dir")
    run.add_argument("--output-dir", required=True)
    rep = commands.add_parser("report", help="table and PNG of the runs' curves")
    rep.add_argument("--output-dir", required=True)
    rep.add_argument("--throughput", type=_throughputs, default={},
                     help="MODEL=IMG_PER_S,... from one bench_train.py run (else wall time)")
    args = parser.parse_args(argv)
    run_candidates(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
