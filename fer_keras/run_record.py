"""`run.json`: what a run was asked to do, on what, and how it ended.

Written while the run trains ("running"), then with its results
("completed") or its failure; always to a temporary name, then renamed.
"""

import json
import sys
from pathlib import Path

import numpy as np

from fer_keras import data as fer_data
from fer_keras.history import read_history
from fer_keras.runinfo import environment_info


def run_record(config, setup, start, data_dir, labels, train_idx, val_idx, fold) -> dict:
    """What run.json says while the run trains."""

    def split_counts(idx):
        return {"total": int(len(idx)), **fer_data.class_counts(labels[idx])}

    return {
        "status": "running",
        "model": config.model,
        "recipe_name": config.recipe_name,
        "recipe": config.recipe.to_dict(),
        "command": list(config.command or sys.argv),
        "seed": config.seed,
        "init_from": setup.init_path and str(setup.init_path),
        "checkpoint": config.checkpoint and str(config.checkpoint),
        "continued_from_checkpoint_after_epoch": start.epoch if start.from_checkpoint else None,
        "dtype_policy": setup.dtype_policy,
        "data_dir": str(data_dir),
        "data": {"train": split_counts(train_idx), "val": split_counts(val_idx)},
        "val_split": config.val_split,
        # Which images were held out: fold `fold` of `folds`, else `val_split`.
        "folds": config.folds if fold else 1,
        "fold": fold,
        "steps_per_epoch": setup.steps_per_epoch,
        "pipeline": config.pipeline,
        "data_format": setup.data_format,
        "inference_zoom": setup.inference_zoom,
        "class_weight": setup.class_weight,
        "params": int(setup.model.count_params()),
        "distribution": setup.placement.to_dict() if setup.placement else None,
        **environment_info(),
    }


def write_json(path: Path, record: dict) -> None:
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(json.dumps(record, indent=2))
    partial.replace(path)


def completed_record(info: dict, out: Path) -> dict:
    """run.json of a completed run: the record plus what the epochs gave."""
    history = read_history(out / "history.csv")
    best_row = max(history, key=lambda r: float(r["val_accuracy"]))
    times = [float(r["epoch_time_s"]) for r in history if r.get("epoch_time_s")]
    return {
        **info,
        "status": "completed",
        "epochs": len(history),
        "best_epoch": int(best_row["epoch"]) + 1,
        "best_val_accuracy": float(best_row["val_accuracy"]),
        "final": {k: float(v) for k, v in history[-1].items() if k != "epoch"},
        "epoch_time_s": times,
        "mean_epoch_time_s": float(np.mean(times[1:] or times)) if times else None,
        "model_path": str(out / "model.keras"),
    }
