"""Turn a finished training run into the package's pretrained model and its card.

`python tools/make_pretrained.py runs/cbam_strong12_tf --data-dir ../shared/fer2013`

Stores the run's best model (chosen by validation accuracy during training)
with float16 weights and no optimizer state as
`fer_keras/pretrained/<model>.keras`, measures it again on the run's own
validation split and on the test split (with and without mirror test-time
augmentation), and writes `<model>.json` (every figure) and `<model>.md` (the
model card) beside it, and the confusion matrix, per-class plot, training
curves and history under `docs/pretrained_<model>/`.
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cli  # noqa: E402


def _row(metrics) -> str:
    return " | ".join(f"{metrics['per_class'][n]['accuracy']:.1%}" for n in metrics["per_class"])


def model_card(name: str, info: dict) -> str:
    run, val, test, test_tta = info["run"], info["val"], info["test"], info["test_tta"]
    recipe = run["recipe"]
    classes = list(test["per_class"])
    lines = [
        f"# Pretrained `{name}`",
        "",
        f"`fer_keras.load_pretrained(\"{name}\")` returns this model: raw 0-255 grey faces of "
        "shape (N, 48, 48, 1) in, 7 logits out, classes in FER2013 order "
        f"({', '.join(classes)}).",
        "",
        "## Numbers",
        "",
        "| split | images | accuracy | macro F1 |",
        "|---|---:|---:|---:|",
        f"| validation (held out of train, seed {run['seed']}) | {val['num_samples']:,} | "
        f"{val['accuracy']:.2%} | {val['macro_f1']:.4f} |",
        f"| test | {test['num_samples']:,} | {test['accuracy']:.2%} | {test['macro_f1']:.4f} |",
        f"| test, mirror TTA | {test_tta['num_samples']:,} | {test_tta['accuracy']:.2%} | "
        f"{test_tta['macro_f1']:.4f} |",
        "",
        "Per-class accuracy (recall):",
        "",
        "| split | " + " | ".join(classes) + " |",
        "|---|" + "---:|" * len(classes),
        "| validation | " + _row(val) + " |",
        "| test | " + _row(test) + " |",
        "",
        "The checkpoint is the epoch with the best validation accuracy; the test "
        "split played no part in any choice. The test split is the one found in "
        f"`{Path(info['data_dir']).name}` ({test['num_samples']:,} images).",
        "",
        f"![Confusion matrix](../../docs/pretrained_{name}/confusion_matrix.png)",
        "",
        f"![Training curves](../../docs/pretrained_{name}/curves.png)",
        "",
        "## How it was trained",
        "",
        "```bash",
        "python " + " ".join(run["command"]),
        "```",
        "",
        f"- recipe: {run['recipe_name']} with overrides -> "
        + ", ".join(f"{k}={v}" for k, v in recipe.items()),
        f"- data: {run['data']['train']['total']:,} training and "
        f"{run['data']['val']['total']:,} validation images "
        f"(FER2013 train folder, stratified split {run['val_split']})",
        f"- {run['epochs']} epochs, best at epoch {run['best_epoch']}; backend {run['backend']}, "
        f"keras {run['versions']['keras']}, on {run['device']}, "
        f"{info['seconds_per_epoch']:.0f} s per epoch",
        "",
        "## File",
        "",
        f"`{name}.keras`, {info['file_bytes'] / 2**20:.1f} MiB: weights stored as float16 "
        "(`fer_keras.compact.save_float16`), loaded and computed as float32 under "
        "jax, tensorflow and torch alike. The float32 checkpoint scored "
        f"{info['float32_test_accuracy']:.2%} on test; float16 storage changes "
        f"{info['changed_predictions']} of {test['num_samples']:,} test predictions.",
        "",
        f"Made by `python {' '.join(info['command'])}`.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    cli.select_backend(argv)

    import numpy as np

    from fer_keras import compact, data, evaluation, loading
    from fer_keras.runinfo import environment_info

    parser = argparse.ArgumentParser(description=__doc__)
    cli.add_backend_argument(parser)
    parser.add_argument("run_dir", type=Path, help="a finished train.py run folder")
    parser.add_argument("--data-dir", help="FER2013 folder (default: $FER2013_DIR)")
    parser.add_argument("--name", help="pretrained name (default: the run's model)")
    args = parser.parse_args(argv)

    run = json.loads((args.run_dir / "run.json").read_text())
    if run.get("status") != "completed":
        sys.exit(f"error: {args.run_dir} has status {run.get('status')!r}; finish the run first.")
    name = args.name or run["model"]
    target = loading.PRETRAINED_DIR / f"{name}.keras"
    # Loaded uncompiled and saved again: the checkpoint's optimizer state stays behind.
    full = loading.load_model(args.run_dir / "model.keras")
    with tempfile.TemporaryDirectory() as tmp:
        full.save(Path(tmp) / "model.keras")
        compact.save_float16(Path(tmp) / "model.keras", target)

    data_dir = data.locate_data(args.data_dir)
    train_images, train_labels = data.load_split(data_dir, "train")
    _, val_idx = data.train_val_split(train_labels, run["val_split"], seed=run["seed"])
    test_images, test_labels = data.load_split(data_dir, "test")

    model = loading.load_model(target)
    docs = ROOT / "docs"
    val = evaluation.evaluate(model, train_images[val_idx], train_labels[val_idx])
    test = evaluation.evaluate(model, test_images, test_labels, output_dir=docs / f"pretrained_{name}")
    for kept in ("curves.png", "history.csv"):
        shutil.copy(args.run_dir / kept, docs / f"pretrained_{name}" / kept)
    test_tta = evaluation.evaluate(model, test_images, test_labels, tta=True)
    half_pred = evaluation.predict_proba(model, test_images).argmax(-1)
    full_pred = evaluation.predict_proba(full, test_images).argmax(-1)
    info = {
        "name": name,
        "command": ["tools/make_pretrained.py", *argv],
        "data_dir": str(data_dir),
        "file_bytes": target.stat().st_size,
        "float32_test_accuracy": float((full_pred == test_labels).mean()),
        "changed_predictions": int((half_pred != full_pred).sum()),
        "seconds_per_epoch": float(np.median(run["epoch_time_s"])),
        "run": run,
        "val": val,
        "test": test,
        "test_tta": test_tta,
        "environment": environment_info(),
    }
    (loading.PRETRAINED_DIR / f"{name}.json").write_text(json.dumps(info, indent=2))
    (loading.PRETRAINED_DIR / f"{name}.md").write_text(model_card(name, info))
    print(f"Wrote {target} ({info['file_bytes'] / 2**20:.1f} MiB) and its card")
    print(f"validation {val['accuracy']:.4f}  test {test['accuracy']:.4f}  "
          f"test+TTA {test_tta['accuracy']:.4f}")


if __name__ == "__main__":
    cli.run(main)
