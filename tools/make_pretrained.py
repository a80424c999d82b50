"""Turn a finished training run into the package's pretrained model and its card.

`python tools/make_pretrained.py runs/cbam_strong12_tf --data-dir ../shared/fer2013`
`python tools/make_pretrained.py RUN_A RUN_B --name cbam_resnet18 --data-dir ...` (an ensemble)

Stores the run's best model (chosen by validation accuracy during training)
with float16 weights and no optimizer state as
`fer_keras/pretrained/<model>.keras`, measures it again on the run's own
validation split and on the test split (with and without mirror and
ten-crop test-time augmentation, and as the int8 LiteRT export `export.py --quantize` writes),
and writes `<model>.json` (every figure) and `<model>.md` (the model card)
beside it, and the confusion matrix, per-class plot, training curves and
history under `docs/pretrained_<model>/`. A run started with `--init-from`
another run is described with that run: every command, one history.

Several run folders make one ensemble (`fer_keras.build_ensemble`, the mean
of their logits), stored and measured the same way; its card also gives each
member alone and how each was trained, with `member<i>_curves.png`. The runs
must have held out the same validation images.
"""

import argparse
import csv
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_keras import cli  # noqa: E402


def run_chain(run_dir: Path) -> list[tuple[Path | None, dict]]:
    """The run and the runs it started from (`--init-from`), oldest first.

    Each entry is (history.csv, run record). A run started from a shipped
    pretrained model continues the runs of that model's card, whose joined
    history lies under docs/; its earlier runs carry no history of their own.
    """
    from fer_keras import loading

    chain = [(run_dir / "history.csv", json.loads((run_dir / "run.json").read_text()))]
    while chain[0][1].get("init_from"):
        init_from = Path(chain[0][1]["init_from"])
        if loading.is_pretrained(init_from):
            card = init_from.with_suffix(".json")
            if not card.exists():
                break
            runs = json.loads(card.read_text()).get("runs", [])
            history = ROOT / "docs" / f"pretrained_{init_from.stem}" / "history.csv"
            if runs and runs[-1].get("model_path") == chain[0][1].get("model_path"):
                # Shipped again (by a newer tool): its card holds it and its history.
                return [(None, r) for r in runs[:-1]] + [(history, runs[-1])]
            chain[:0] = [(None, r) for r in runs[:-1]] + [(history, runs[-1])] if runs else []
            break
        source = init_from.parent
        if not (source / "run.json").exists() or any(
            source / "history.csv" == h for h, _ in chain
        ):
            break
        chain.insert(0, (source / "history.csv", json.loads((source / "run.json").read_text())))
    return chain


# What the card takes from each run's record, as `run_record.completed_record`
# writes it at the end of a run.
COMPLETED_KEYS = ("model", "recipe_name", "recipe", "epochs", "best_epoch", "epoch_time_s")


def joined_history(chain) -> list[dict]:
    """The histories of a chain of runs as one, epochs numbered on.

    Every run before the last ends at its best epoch: the next run started
    from that checkpoint, so the epochs after it are not in the model.
    """
    from fer_keras.history import read_history

    rows, offset = [], 0
    for position, (history_path, record) in enumerate(chain):
        if history_path is None:
            continue
        history = read_history(history_path)
        if position < len(chain) - 1 and record.get("best_epoch"):
            history = history[: len(history) - (record["epochs"] - record["best_epoch"])]
        rows += [{**r, "epoch": str(int(r["epoch"]) + offset)} for r in history]
        offset += len(history)
    return rows


def chain_title(runs: list[dict]) -> str:
    """What the joined history of `runs` shows: each run's recipe and epochs,
    the earlier ones up to the best epoch the next run started from."""
    return " then ".join(
        f"{r['recipe_name']} {r['epochs']} epochs" if i == len(runs) - 1 or not r.get("best_epoch")
        else f"{r['recipe_name']} {r['best_epoch']} of {r['epochs']} epochs"
        for i, r in enumerate(runs))


def training_hours(runs: list[dict]) -> float:
    """Hours the runs trained, from the epoch times their records keep."""
    return sum(t for r in runs for t in r.get("epoch_time_s") or []) / 3600


def _row(metrics) -> str:
    return " | ".join(f"{metrics['per_class'][n]['accuracy']:.1%}" for n in metrics["per_class"])


def _numbers(name: str, info: dict) -> list[str]:
    run, val, test, test_tta = info["run"], info["val"], info["test"], info["test_tta"]
    classes = list(test["per_class"])
    return [
        "## Numbers",
        "",
        "| split | images | accuracy | macro F1 |",
        "|---|---:|---:|---:|",
        f"| validation (held out of train, seed {run['seed']}) | {val['num_samples']:,} | "
        f"{val['accuracy']:.2%} | {val['macro_f1']:.4f} |",
        f"| test | {test['num_samples']:,} | {test['accuracy']:.2%} | {test['macro_f1']:.4f} |",
        f"| test, mirror TTA | {test_tta['num_samples']:,} | {test_tta['accuracy']:.2%} | "
        f"{test_tta['macro_f1']:.4f} |",
        *(f"| {label} | {info[key]['num_samples']:,} | {info[key]['accuracy']:.2%} | "
          f"{info[key]['macro_f1']:.4f} |"
          for key, label in (("val_tta", "validation, mirror TTA"),
                             ("val_ten_crop", "validation, ten-crop TTA"),
                             ("test_ten_crop", "test, ten-crop TTA")) if key in info),
        *([f"| test, int8 LiteRT export | {info['litert_int8']['test']['num_samples']:,} | "
           f"{info['litert_int8']['test']['accuracy']:.2%} | "
           f"{info['litert_int8']['test']['macro_f1']:.4f} |"] if "litert_int8" in info else []),
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
    ]


def _members(name: str, info: dict) -> list[str]:
    """The ensemble's members alone, beside the ensemble, and how each was trained."""
    keys = ("val", "val_ten_crop", "test", "test_ten_crop")
    lines = [
        "## Members",
        "",
        "Each member alone, measured as part of this file (float16 weights):",
        "",
        "| member | model | validation | validation, ten-crop | test | test, ten-crop |",
        "|---|---|---:|---:|---:|---:|",
        *(f"| {i} | `{m['run']['model']}` | "
          + " | ".join(f"{m[k]['accuracy']:.2%}" for k in keys) + " |"
          for i, m in enumerate(info["members"], start=1)),
        "| ensemble | | " + " | ".join(f"{info[k]['accuracy']:.2%}" for k in keys) + " |",
        "",
    ]
    for i, member in enumerate(info["members"], start=1):
        lines += [f"### Member {i}: `{member['run']['model']}`", "",
                  f"![Training curves](../../docs/pretrained_{name}/member{i}_curves.png)", "",
                  *_training(member)]
    return lines


def _training(facts: dict) -> list[str]:
    """How one model was trained: the commands of its chain of runs and their figures."""
    run = facts["run"]
    chain = facts.get("runs", [run])
    return [
        *([f"{len(chain)} runs: each after the first started from the best "
           "checkpoint of the one before (`--init-from`) with a fresh optimizer and "
           "a new learning-rate cycle, on the same validation split.", ""]
          if len(chain) > 1 else []),
        "```bash",
        *("python " + " ".join(r["command"]) for r in chain),
        "```",
        "",
        *(f"- {'run ' + str(i) + ': ' if len(chain) > 1 else ''}recipe {r['recipe_name']} "
          "with overrides -> " + ", ".join(f"{k}={v}" for k, v in r["recipe"].items())
          + f"; {r['epochs']} epochs under {r['backend']}, best at epoch {r['best_epoch']} "
          f"(validation {r['best_val_accuracy']:.2%})"
          for i, r in enumerate(chain, start=1)),
        f"- data: {run['data']['train']['total']:,} training and "
        f"{run['data']['val']['total']:,} validation images "
        f"(FER2013 train folder, stratified split {run['val_split']}, seed {run['seed']})",
        f"- {sum(r['epochs'] for r in chain)} epochs in all; "
        f"backend {', '.join(dict.fromkeys(r['backend'] for r in chain))}, "
        f"keras {run['versions']['keras']}, on {run['device']}, "
        f"{facts['seconds_per_epoch']:.0f} s per epoch (median); "
        f"{training_hours(chain):.1f} hours of training in all (wall time of the "
        "training processes, validation included)",
        "",
    ]


def _zoom_choice(choice: dict | None) -> str:
    """How the inference zoom of runs that trained without it was chosen."""
    if not choice:
        return ""
    return (f" Chosen on validation: {choice['with']:.2%} with the zoom, "
            f"{choice['without']:.2%} without.")


def model_card(name: str, info: dict) -> str:
    """The card of a pretrained model, or of an ensemble (`info["members"]`)."""
    test = info["test"]
    classes = ", ".join(test["per_class"])
    members = info.get("members")
    if members:
        intro = (
            f"`fer_keras.load_pretrained(\"{name}\")` returns this ensemble: raw 0-255 "
            "grey faces of shape (N, 48, 48, 1) in, the mean of the logits of its "
            f"{len(members)} members ({', '.join(m['run']['model'] for m in members)}) out, "
            f"7 classes in FER2013 order ({classes}). One face costs a forward pass "
            "of every member (per test-time view). `fer_keras.build_ensemble` made it; "
            "the members trained apart, on the same training images, and hold out "
            "the same validation images."
        )
        body = _members(name, info)
        hours = (f"Training of all members: {info['cpu_hours']:.1f} hours (wall time of "
                 "the training processes).")
    else:
        intro = (
            f"`fer_keras.load_pretrained(\"{name}\")` returns this model: raw 0-255 grey "
            "faces of shape (N, 48, 48, 1) in, 7 logits out, classes in FER2013 order "
            f"({classes})."
        )
        body = [f"![Training curves](../../docs/pretrained_{name}/curves.png)", "",
                "## How it was trained", "", *_training(info)]
        hours = None
    lines = [
        f"# Pretrained `{name}`",
        "",
        intro,
        "",
        *_numbers(name, info),
        *body,
        *([hours, ""] if hours else []),
        "## File",
        "",
        f"`{name}.keras`, {info['file_bytes'] / 2**20:.1f} MiB: weights stored as float16 "
        "(`fer_keras.compact.save_float16`), loaded and computed as float32 under "
        "jax, tensorflow and torch alike. The float32 checkpoint scored "
        f"{info['float32_test_accuracy']:.2%} on test; float16 storage changes "
        f"{info['changed_predictions']} of {test['num_samples']:,} test predictions.",
        "",
        *([f"At inference the model looks at the centre {info['inference_zoom']:.1%} of "
           "each face, resized back to the input size (its first layer, "
           "`fer_keras.layers.InferenceZoom`): the scale its training crops showed it. "
           "Its ten-crop views are shifted images whose centre shows each crop."
           + _zoom_choice(info.get("zoom_choice")), ""]
          if info.get("inference_zoom") else []),
        *([f"It sees the whole face: its training crops suggested a zoom at inference, "
           f"which validation did not keep.{_zoom_choice(info['zoom_choice'])}", ""]
          if info.get("zoom_choice") and not info.get("inference_zoom") else []),
        *([f"`python export.py --format tflite --quantize` writes it as LiteRT with int8 "
           f"weights ({info['litert_int8']['file_bytes'] / 2**20:.1f} MiB; "
           f"`fer_keras.inference.Predictor` runs it): validation "
           f"{info['litert_int8']['val']['accuracy']:.2%}, test "
           f"{info['litert_int8']['test']['accuracy']:.2%}.", ""]
          if "litert_int8" in info else []),
        f"Made by `python {' '.join(info['command'])}`.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    cli.select_backend(argv)

    import keras

    from fer_keras import augment, compact, data, ensemble, evaluation, export, loading, models
    from fer_keras.inference import Predictor
    from fer_keras.plots import plot_curves
    from fer_keras.runinfo import environment_info

    parser = argparse.ArgumentParser(description=__doc__)
    cli.add_backend_argument(parser)
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="run_dir",
                        help="a finished train.py run folder; two or more make an ensemble "
                             "of their models (the mean of their logits)")
    parser.add_argument("--data-dir", help="FER2013 folder (default: $FER2013_DIR)")
    parser.add_argument("--name", help="pretrained name (default: the run's model; for an "
                                       "ensemble, the members' models joined by '_')")
    args = parser.parse_args(argv)

    chains = [run_chain(run_dir) for run_dir in args.run_dirs]
    for chain in chains:
        for _, record in chain:
            if record.get("status") != "completed":
                sys.exit(f"error: the run of {record.get('model_path')} has status "
                         f"{record.get('status')!r}; finish the run first.")
            missing = [key for key in COMPLETED_KEYS if key not in record]
            if missing:
                # Checked here, not after the evaluations that come first.
                sys.exit(f"error: the run.json of {record.get('model_path')} says "
                         f"'completed' but lacks {', '.join(missing)}, which train.py "
                         "writes when a run ends. Finish the run with train.py (its "
                         "command again) rather than editing its run.json.")
    runs = [chain[-1][1] for chain in chains]
    paths = [run_dir / "model.keras" for run_dir in args.run_dirs]
    is_ensemble = len(paths) > 1
    name = args.name or "_".join(r["model"] for r in runs)
    # An ensemble is validated on the images all its members held out, or refused.
    run = ensemble.ensemble_record(paths) if is_ensemble else runs[0]
    target = loading.PRETRAINED_DIR / f"{name}.keras"
    data_dir = data.locate_data(args.data_dir)
    val_images, val_labels = evaluation.validation_split(data_dir, paths[0], run=run)
    # Loaded uncompiled and saved again: the checkpoints' optimizer state stays behind.
    # In float32 whatever precision trained them (the LiteRT export needs it too).
    fulls = [models.float32_copy(loading.load_model(path)) for path in paths]
    # Runs of a cropping recipe that trained without the inference zoom get it
    # if the model scores higher with it on validation; members that trained
    # with it keep it. An ensemble takes it only if all its members crop alike
    # (its ten-crop views must suit every member).
    zooms = [augment.INFERENCE_ZOOM.get(r["recipe"].get("augment")) for r in runs]
    addable = [zoom is not None and models.inference_zoom(m) is None
               for m, zoom in zip(fulls, zooms)]
    zoom_choice = None
    if any(addable) and len(set(zooms)) == 1:
        zoomed = [models.with_inference_zoom(m, zoom) if add else m
                  for m, zoom, add in zip(fulls, zooms, addable)]
        with_zoom, without = (
            evaluation.evaluate(ensemble.build_ensemble(ms, name=name) if is_ensemble
                                else ms[0], val_images, val_labels)["accuracy"]
            for ms in (zoomed, fulls))
        already = any(models.inference_zoom(m) is not None for m in fulls)
        zoom_choice = {"zoom": zooms[0], "with": with_zoom,
                       "without": without, "chosen": already or with_zoom > without}
        if zoom_choice["chosen"]:
            fulls = zoomed
    full = ensemble.build_ensemble(fulls, name=name) if is_ensemble else fulls[0]
    models.inference_zoom(full)  # members that zoom differently are refused here
    with tempfile.TemporaryDirectory() as tmp:
        full.save(Path(tmp) / "model.keras")
        compact.save_float16(Path(tmp) / "model.keras", target)

    test_images, test_labels = data.load_split(data_dir, "test")

    model = loading.load_model(target)
    out = ROOT / "docs" / f"pretrained_{name}"
    val = evaluation.evaluate(model, val_images, val_labels)
    val_tta = evaluation.evaluate(model, val_images, val_labels, tta="mirror")
    val_ten_crop = evaluation.evaluate(model, val_images, val_labels, tta="ten_crop")
    test = evaluation.evaluate(model, test_images, test_labels, output_dir=out)
    test_tta = evaluation.evaluate(model, test_images, test_labels, tta="mirror")
    test_ten_crop = evaluation.evaluate(model, test_images, test_labels, tta="ten_crop")
    trained = []
    for index, chain in enumerate(chains, start=1):
        prefix = f"member{index}_" if is_ensemble else ""
        history = joined_history(chain)
        with open(out / f"{prefix}history.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
        records = [r for _, r in chain]
        title = f"{name} member {index}, {records[-1]['model']}" if is_ensemble else name
        plot_curves(history, out / f"{prefix}curves.png",
                    title=f"pretrained {title}: {chain_title(records)}")
        trained.append({
            "run": records[-1],
            "runs": records,
            "seconds_per_epoch": statistics.median(t for r in records for t in r["epoch_time_s"]),
            "cpu_hours": training_hours(records),
        })
    if is_ensemble:
        for facts, member in zip(trained, ensemble.members(model)):
            facts.update({
                "val": evaluation.evaluate(member, val_images, val_labels),
                "val_ten_crop": evaluation.evaluate(member, val_images, val_labels,
                                                    tta="ten_crop"),
                "test": evaluation.evaluate(member, test_images, test_labels),
                "test_ten_crop": evaluation.evaluate(member, test_images, test_labels,
                                                     tta="ten_crop"),
            })
        described = {"run": run, "members": trained,
                     "cpu_hours": sum(m["cpu_hours"] for m in trained)}
    else:
        described = trained[0]
    litert = {}
    if keras.backend.backend() == "tensorflow":
        with tempfile.TemporaryDirectory() as tmp:
            tflite = export.export_model(model, Path(tmp) / f"{name}.tflite", "tflite",
                                         quantize=True)
            predictor = Predictor(tflite)
            litert["litert_int8"] = {
                "file_bytes": tflite.stat().st_size,
                "val": evaluation.evaluate(predictor, val_images, val_labels),
                "test": evaluation.evaluate(predictor, test_images, test_labels),
            }
    else:
        print("Not measured: the int8 LiteRT export (it needs --backend tensorflow)")
    half_pred = evaluation.predict_proba(model, test_images).argmax(-1)
    full_pred = evaluation.predict_proba(full, test_images).argmax(-1)
    info = {
        "name": name,
        "command": ["tools/make_pretrained.py", *argv],
        "data_dir": str(data_dir),
        "file_bytes": target.stat().st_size,
        "float32_test_accuracy": float((full_pred == test_labels).mean()),
        "changed_predictions": int((half_pred != full_pred).sum()),
        # Lets a test check the file under each backend on a sample, not the whole split.
        "test_predictions": half_pred.tolist(),
        "inference_zoom": models.inference_zoom(model),
        "zoom_choice": zoom_choice,
        **described,
        **litert,
        "val": val,
        "test": test,
        "test_tta": test_tta,
        "val_tta": val_tta,
        "val_ten_crop": val_ten_crop,
        "test_ten_crop": test_ten_crop,
        "environment": environment_info(),
    }
    (loading.PRETRAINED_DIR / f"{name}.json").write_text(json.dumps(info, indent=2))
    (loading.PRETRAINED_DIR / f"{name}.md").write_text(model_card(name, info))
    print(f"Wrote {target} ({info['file_bytes'] / 2**20:.1f} MiB) and its card")
    print(f"validation {val['accuracy']:.4f}  test {test['accuracy']:.4f}  "
          f"test+TTA {test_tta['accuracy']:.4f}  validation ten-crop "
          f"{val_ten_crop['accuracy']:.4f}  test ten-crop {test_ten_crop['accuracy']:.4f}")


if __name__ == "__main__":
    cli.run(main)
