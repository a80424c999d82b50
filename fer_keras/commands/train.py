"""Train a FER2013 model: `python train.py --model cbam --backend jax`.

Run it again with the same --output-dir to resume an interrupted run.
"""

import argparse
import sys
from pathlib import Path

from fer_keras import cli
from fer_keras.errors import install_extra

# keras.distribution (jax) and tf.distribute (tensorflow); torch has no
# engine that Keras drives.
DISTRIBUTED_BACKENDS = ("jax", "tensorflow")


def main(argv: list[str] | None = None, prog: str = "train.py") -> None:
    argv = sys.argv[1:] if argv is None else argv
    backend = cli.select_backend(argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    _check_args(args, backend, parser)
    output_dir = args.output_dir or f"runs/{args.model}_{args.recipe}_{backend}"
    cli.check_output_folder("--output-dir", output_dir)
    if args.checkpoint:
        cli.check_output_folder("--checkpoint", Path(args.checkpoint).parent)
    if args.init_from:
        check_init_from(args.init_from, args.model)

    from fer_keras import training

    training.train(_train_config(args, output_dir, command=[*prog.split(), *argv]))


def build_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    """train.py's options. Imports Keras (the models and recipes give the
    choices), so the backend must be chosen first."""
    with cli.native_log_filtered():
        from fer_keras import MODELS, models, recipes, training

    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    cli.add_backend_argument(parser)
    parser.add_argument("--model", choices=MODELS, default="cbam")
    parser.add_argument("--recipe", choices=list(recipes.RECIPES), default="seed",
                        help="preset; the options below override its fields")
    parser.add_argument("--data-dir", help="FER2013 folder or fer2013.csv "
                        "(default: $FER2013_DIR, else download with kagglehub)")
    parser.add_argument("--output-dir", help="run folder (default: runs/MODEL_RECIPE_BACKEND)")
    _add_recipe_options(parser)
    parser.add_argument("--val-split", type=cli.open_fraction, default=0.1,
                        help="fraction of train held out for validation, between 0 "
                        "and 1 (default 0.1)")
    parser.add_argument("--folds", type=cli.positive_int, default=1,
                        help="K > 1 runs K-fold cross-validation on train (at most the "
                        "number of images of the rarest class)")
    parser.add_argument("--steps-per-epoch", type=cli.positive_int, help="for quick runs")
    parser.add_argument("--pipeline", choices=training.PIPELINES,
                        help="tfdata (default where TensorFlow is installed): augment in a "
                        "tf.data pipeline beside the training step, the fastest on CPUs; "
                        "device (the default without TensorFlow): feed the arrays and "
                        "augment inside the training step on the GPU or TPU (no TensorFlow "
                        "needed under jax and torch)")
    parser.add_argument("--data-format", choices=models.DATA_FORMAT_CHOICES,
                        default="auto",
                        help="layout of the feature maps while training (auto: channels_first "
                        "under torch, which trains it faster, else channels_last); saved "
                        "models are channels_last either way")
    parser.add_argument("--mixed-precision", nargs="?", const="auto",
                        choices=("auto", "bfloat16", "float16", "off"),
                        help="mixed precision (auto: float16 on GPU, bfloat16 on TPU and on "
                        "CPUs with native bfloat16, else float32)")
    parser.add_argument("--distribute", action="store_true",
                        help="data-parallel over all devices (jax, tensorflow; TPU too)")
    parser.add_argument("--multi-host", action="store_true",
                        help="one process per host, data-parallel over the devices of all "
                        "(jax only; implies --distribute). Run the same command on every "
                        "host; process 0 writes --output-dir, which every host must read "
                        "(README, 'Several hosts')")
    parser.add_argument("--backup-every", type=cli.positive_int,
                        help="also back up every N steps, not only every epoch")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="also keep the latest weights (float16) and the run's state in "
                        "this one small .keras file, e.g. outside the run folder or under "
                        "version control: when the run folder is lost, the same command "
                        "continues from it")
    parser.add_argument("--checkpoint-every", type=cli.positive_int, default=1, metavar="N",
                        help="write --checkpoint every N epochs (default 1)")
    parser.add_argument("--init-from", metavar="PATH",
                        help="start from this model.keras of the same --model (fine-tuning, "
                        "a second learning-rate cycle), or 'pretrained' for the shipped one; "
                        "give the --seed it was trained with, which draws the validation split")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0)
    parser.add_argument("--quiet", action="store_true", help="one line per epoch")
    return parser


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """The options that override the fields of the --recipe."""
    from fer_keras import augment, recipes

    defaults = recipes.RECIPES["seed"]
    parser.add_argument("--epochs", type=cli.positive_int, help=f"(seed: {defaults.epochs})")
    parser.add_argument("--batch-size", type=cli.positive_int,
                        help=f"(seed: {defaults.batch_size})")
    parser.add_argument("--lr", type=cli.positive_float, help=f"(seed: {defaults.lr})")
    parser.add_argument("--weight-decay", type=cli.non_negative_float,
                        help=f"L2 as in torch.optim (seed: {defaults.weight_decay})")
    parser.add_argument("--optimizer", choices=recipes.OPTIMIZERS)
    parser.add_argument("--schedule", choices=recipes.SCHEDULES)
    parser.add_argument("--warmup-epochs", type=cli.non_negative_int,
                        help="linear warm-up before the cosine decay")
    parser.add_argument("--momentum", type=cli.unit_fraction,
                        help="SGD momentum (Nesterov), from 0 up to 1")
    parser.add_argument("--class-weights", choices=("seed", "balanced", "none"))
    parser.add_argument("--augment", choices=list(augment.AUGMENTATIONS))
    parser.add_argument("--label-smoothing", type=cli.unit_fraction,
                        help="from 0 (none) up to 1")
    zooms = ", ".join(f"{name} {zoom:.4g}" for name, zoom in augment.INFERENCE_ZOOM.items())
    parser.add_argument("--inference-zoom", type=cli.zoom_choice, default="recipe",
                        metavar="{recipe,none,FRACTION}",
                        help="centre share of the image the model sees at inference, the "
                        "scale its training crops showed (recipe, the default: the "
                        f"augmentation's: {zooms}; none for the others); none: the whole "
                        "image. A resumed run keeps the zoom it started with")


def _check_args(args: argparse.Namespace, backend: str, parser: argparse.ArgumentParser) -> None:
    """Refuses options the backend cannot run, and settles --pipeline."""
    if args.multi_host and backend != "jax":
        parser.error(
            f"--multi-host runs under the jax backend. Received: --backend {backend}. "
            "Use --backend jax, or drop --multi-host."
        )
    if args.distribute and backend not in DISTRIBUTED_BACKENDS:
        parser.error(
            f"--distribute runs under the {' and '.join(DISTRIBUTED_BACKENDS)} backends. "
            f"Received: --backend {backend}. Use --backend jax or --backend tensorflow, "
            "or drop --distribute."
        )
    args.pipeline = choose_pipeline(args.pipeline, parser)


def _train_config(args: argparse.Namespace, output_dir: str, command: list[str]):
    """The `training.TrainConfig` of parsed options: the recipe, with the
    options given overriding its fields."""
    from fer_keras import recipes, training

    recipe = recipes.get_recipe(args.recipe).replace(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, optimizer=args.optimizer, schedule=args.schedule,
        class_weights=args.class_weights, augment=args.augment,
        label_smoothing=args.label_smoothing, warmup_epochs=args.warmup_epochs,
        momentum=args.momentum,
    )
    return training.TrainConfig(
        model=args.model, recipe=recipe, recipe_name=args.recipe,
        data_dir=args.data_dir, output_dir=output_dir, val_split=args.val_split,
        folds=args.folds, steps_per_epoch=args.steps_per_epoch,
        mixed_precision=args.mixed_precision, seed=args.seed,
        distribute=args.distribute, multi_host=args.multi_host,
        backup_every=args.backup_every,
        checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
        init_from=args.init_from, pipeline=args.pipeline, data_format=args.data_format,
        inference_zoom=args.inference_zoom, verbose=2 if args.quiet else "auto", command=command,
    )


def choose_pipeline(requested: str | None, parser: argparse.ArgumentParser) -> str:
    """--pipeline, or its default: tf.data where TensorFlow is installed, else
    the array feed, said once. Asking for tf.data without TensorFlow is refused
    here, before the data loads."""
    if requested == "device":
        return requested
    has_tensorflow = _tensorflow_imports()
    if requested == "tfdata" and not has_tensorflow:
        parser.error("--pipeline tfdata needs TensorFlow, which is not installed: "
                     f"{install_extra('tensorflow')}, or use --pipeline device.")
    if requested is None and not has_tensorflow:
        print("TensorFlow is not installed: training with --pipeline device (augmentation "
              f"inside the training step). {install_extra('tensorflow')} for the tf.data "
              "pipeline, the faster one on CPUs.", file=sys.stderr)
        return "device"
    return requested or "tfdata"


def _tensorflow_imports() -> bool:
    # An import, not find_spec: a broken or hidden install must count as absent.
    try:
        with cli.native_log_filtered():
            import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def check_init_from(init_from: str, model: str) -> None:
    """Refuses a missing --init-from file in one line, before the run folder is made."""
    from fer_keras import loading

    if init_from == "pretrained":
        try:
            loading.pretrained_path(model)
        except loading.ModelFileError as err:
            sys.exit(f"error: --init-from pretrained: {err}")
    elif not Path(init_from).is_file():
        what = "is a folder, not a file" if Path(init_from).is_dir() else "No such file"
        sys.exit(f"error: {init_from}: {what}. --init-from expects a model.keras written "
                 "by train.py, or 'pretrained' for the shipped model.")

