"""Evaluate trained models on the FER2013 test split.

`python evaluate.py` evaluates the newest model under runs/ (or the shipped
pretrained model); several --model-path values give one comparison table,
or with --ensemble the one ensemble that averages their logits.
"""

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path

from fer_keras import cli


def main(argv: list[str] | None = None, prog: str = "evaluate.py") -> None:
    argv = sys.argv[1:] if argv is None else argv
    cli.select_backend(argv)

    with cli.native_log_filtered():
        from fer_keras import data, evaluation

    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.output_dir:
        cli.check_output_folder("--output-dir", args.output_dir)
    paths = _model_paths(args)
    models = _load_models(paths, args, parser)
    data_dir = data.locate_data(args.data_dir)
    split = None
    if args.split != "val":
        split = data.load_split(data_dir, args.split)
        print(f"Evaluating on {len(split[1])} {args.split} images from {data_dir}")
    if args.ensemble:
        _evaluate_ensemble(paths, models, data_dir, split, args, [*prog.split(), *argv])
        return
    results = {}
    for index, (path, model) in enumerate(zip(paths, models), start=1):
        out = _output_folder(args, path, index, len(paths))
        metrics = _evaluate(model, path, out, data_dir, split, args,
                            command=[*prog.split(), *argv])
        label = str(path) if str(path) not in results else f"{path} #{len(results) + 1}"
        results[label] = metrics
    if len(results) > 1:
        table = evaluation.comparison_table(results)
        print("\n" + table)
        if args.output_dir:
            _write_comparison(Path(args.output_dir), table, results)


def build_parser(prog: str = "evaluate.py") -> argparse.ArgumentParser:
    """evaluate.py's options."""
    from fer_keras import tta

    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    cli.add_backend_argument(parser)
    parser.add_argument("--model-path", nargs="+",
                        help=".keras file(s), or exports of one (.tflite, .onnx, a "
                        "SavedModel folder) (default: the newest "
                        "runs/**/model.keras of a run that did not fail, else the "
                        "pretrained model)")
    parser.add_argument("--data-dir", help="FER2013 folder or fer2013.csv "
                        "(default: $FER2013_DIR, else download with kagglehub)")
    parser.add_argument("--split", default="test",
                        help="split to evaluate (default: test); 'val': the training "
                        "images each model held out for validation, read from the "
                        "run.json beside it, to compare models and --tta without "
                        "touching the test split")
    parser.add_argument("--output-dir", help="where to write metrics and plots "
                        "(default: an eval/ folder beside each model, eval_SPLIT/ "
                        "for a split other than test, so ./eval for a model in the "
                        "current folder; runs/pretrained_NAME/eval for a pretrained one)")
    parser.add_argument("--ensemble", action="store_true",
                        help="evaluate the ensemble of the --model-path .keras files "
                        "(the mean of their logits) instead of each; with --split "
                        "val, they must have held out the same images")
    parser.add_argument("--runs-dir", default="runs", help="where to look for the newest model")
    cli.add_tta_argument(parser, tta.TTA_MODES, unit="image")
    parser.add_argument("--batch-size", type=cli.positive_int, default=256)
    parser.add_argument("--gradcam", type=cli.non_negative_int, metavar="N", default=0,
                        help="also draw a Grad-CAM grid of N test images per class")
    parser.add_argument("--gradcam-errors", type=cli.non_negative_int, metavar="N", default=0,
                        help="also draw a Grad-CAM grid of N images per class that the "
                        "evaluation (its --tta included) got wrong, with the map of the "
                        "class it chose (gradcam_errors.png)")
    return parser


def _model_paths(args: argparse.Namespace) -> list[Path]:
    """--model-path, or else the newest model under --runs-dir (else the
    pretrained one), saying which and which failed runs were passed over."""
    from fer_keras import evaluation, loading

    if args.model_path:
        return [Path(p) for p in args.model_path]
    newest, skipped = evaluation.newest_model(args.runs_dir)
    for path, status in skipped:
        print(f"Skipping {path}: its run.json says {status!r}.")
    if not loading.is_pretrained(newest):
        print(f"Using {newest}, the newest model under {args.runs_dir} "
              "(--model-path chooses another).")
    return [newest]


def _load_models(paths: list[Path], args: argparse.Namespace,
                 parser: argparse.ArgumentParser) -> list:
    """A `Predictor` for each export, a `keras.Model` for each .keras file;
    --gradcam of an export or without its packages is refused first."""
    from fer_keras import export, loading
    from fer_keras.inference import Predictor

    exports = [p for p in paths if export.format_of(p) is not None]
    if args.ensemble and (len(paths) < 2 or exports):
        parser.error("--ensemble averages two or more .keras models. Received: "
                     f"--model-path {' '.join(map(str, paths))}")
    option = ("--gradcam" if args.gradcam else "--gradcam-errors" if args.gradcam_errors
              else None)
    if option and exports:
        parser.error(f"{option} needs the gradients of a .keras model; an export "
                     f"has none. Received: --model-path {' '.join(map(str, paths))}")
    if option:
        from fer_keras import gradcam

        gradcam.check_installed()
    return [Predictor(p, batch_size=args.batch_size) if p in exports
            else loading.load_model(p) for p in paths]


def _folder_name(split: str) -> str:
    """The results folder of a split: eval/ for test, eval_SPLIT/ otherwise."""
    return "eval" if split == "test" else f"eval_{split}"


def _output_folder(args: argparse.Namespace, path: Path, index: int, count: int) -> Path:
    """Where the metrics and plots of the `index`-th of `count` models go."""
    from fer_keras import loading

    folder = _folder_name(args.split)
    if args.output_dir is None and loading.is_pretrained(path):
        # Not inside the installed package: beside the user's runs.
        return Path(args.runs_dir) / f"pretrained_{path.stem}" / folder
    if args.output_dir is None:
        return path.parent / folder
    if count == 1:
        return Path(args.output_dir)
    return Path(args.output_dir) / f"model{index}_{path.parent.name or path.stem}"


def _evaluate_ensemble(paths: list[Path], models: list, data_dir: Path,
                       split: tuple | None, args: argparse.Namespace,
                       command: list[str]) -> dict:
    """Evaluates the ensemble of `models`, on the validation images all of
    them held out for --split val."""
    from fer_keras import ensemble

    run = ensemble.ensemble_record(paths) if split is None else None
    model = ensemble.build_ensemble(models)
    label = f"the ensemble of {', '.join(map(str, paths))}"
    out = (Path(args.output_dir) if args.output_dir
           else Path(args.runs_dir) / "ensemble" / _folder_name(args.split))
    return _evaluate(model, paths, out, data_dir, split, args, command, label=label, run=run)


def _evaluate(model, path: Path | list[Path], out: Path, data_dir: Path,
              split: tuple | None, args: argparse.Namespace, command: list[str],
              label: str | None = None, run: dict | None = None) -> dict:
    """Evaluates one model on `split` (its own held-out images for --split
    val, or those of the record `run`), prints the report and writes it, with
    a Grad-CAM grid if asked."""
    from fer_keras import data, evaluation
    from fer_keras.inference import Predictor
    from fer_keras.runinfo import environment_info

    label = label or str(path)
    if split is None:
        images, labels = evaluation.validation_split(data_dir, label, run=run)
        held_out_by = "they all" if isinstance(path, list) else "it"
        print(f"Evaluating {label} on the {len(labels)} validation images "
              f"{held_out_by} held out")
    else:
        images, labels = split
    # LiteRT notes its CPU delegate on the first run of a .tflite model.
    with cli.native_log_filtered() if isinstance(model, Predictor) else nullcontext():
        probabilities = evaluation.predict_proba(model, images, batch_size=args.batch_size,
                                                 tta=args.tta)
        metrics = evaluation.evaluate(
            model, images, labels, output_dir=out, tta=args.tta,
            batch_size=args.batch_size, probabilities=probabilities,
            extra={
                "model_path": [str(p) for p in path] if isinstance(path, list) else str(path),
                "split": args.split,
                "data_dir": str(data_dir),
                "data_counts": data.class_counts(labels),
                "command": command,
                **environment_info(),
            },
        )
    print(f"\n{label}")
    print(evaluation.format_report(metrics))
    # An ensemble exists only here, in memory; a model file is handed on as it is.
    explained = model if isinstance(path, list) else path
    if args.gradcam:
        from fer_keras import gradcam

        grid = gradcam.gradcam_grid(explained, images, labels, per_class=args.gradcam,
                                    output_path=out / "gradcam.png", seed=0)
        print(f"Grad-CAM grid: {grid}")
    predicted = probabilities.argmax(axis=-1)
    if args.gradcam_errors and (predicted == labels).all():
        print("Grad-CAM grid of errors: none to draw, every image is predicted right.")
    elif args.gradcam_errors:
        from fer_keras import gradcam

        grid = gradcam.gradcam_grid(explained, images, labels, per_class=args.gradcam_errors,
                                    output_path=out / "gradcam_errors.png", seed=0,
                                    predicted=predicted, errors_only=True)
        print(f"Grad-CAM grid of errors: {grid}")
    print(f"Wrote {out / 'metrics.json'}, {out / 'confusion_matrix.png'}, "
          f"{out / 'per_class.png'}")
    return metrics


def _write_comparison(out: Path, table: str, results: dict) -> None:
    """The comparison of several models, as text and as their main metrics."""
    (out / "comparison.txt").write_text(table + "\n")
    (out / "comparison.json").write_text(json.dumps(
        {p: {k: m[k] for k in ("accuracy", "macro_f1", "per_class")}
         for p, m in results.items()}, indent=2))
