"""Export a trained model for serving: `python export.py --model-path M --format onnx`.

Formats: saved_model (TF Serving), onnx (onnxruntime), tflite (LiteRT on
phones). Each takes raw 0-255 grey (N, 48, 48, 1) and returns logits; after
writing, the export is run once and checked against the Keras model.
The TensorFlow backend is used unless --backend or KERAS_BACKEND says
otherwise: it is the one backend that writes all three formats.
"""

import argparse
import os
import sys

from fer_keras import cli


def main(argv: list[str] | None = None, prog: str = "export.py") -> None:
    argv = sys.argv[1:] if argv is None else argv
    backend_given = "KERAS_BACKEND" in os.environ or any(
        a == "--backend" or a.startswith("--backend=") for a in argv
    )
    cli.select_backend(argv if backend_given else [*argv, "--backend", "tensorflow"])

    with cli.native_log_filtered():
        from fer_keras import export, loading

    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    cli.add_backend_argument(parser)
    parser.add_argument("--model-path", help=".keras file (default: the default pretrained model)")
    parser.add_argument("--format", choices=export.FORMATS, default="saved_model")
    parser.add_argument("--output", help="where to write (default: beside the model: "
                        "model.onnx, model.tflite or model_saved_model/)")
    parser.add_argument("--quantize", action="store_true",
                        help="tflite only: int8 weights, a quarter of the size and several "
                        "times faster on a CPU (fer_keras.Predictor runs the .tflite file)")
    parser.add_argument("--no-check", action="store_true",
                        help="skip running the export against the Keras model")
    args = parser.parse_args(argv)

    try:
        export.check_format(args.format)
        if args.quantize:
            export.check_quantize(args.format)
    except (ImportError, ValueError) as err:
        sys.exit(f"error: {err}")
    model_path = args.model_path or loading.pretrained_path()
    model = loading.load_model(model_path)
    # The pretrained model lives inside the installed package: export it here.
    folder = None if args.model_path else "."
    output = args.output or export.default_path(model_path, args.format, folder)
    path = export.export_model(model, output, args.format, quantize=args.quantize)
    print(f"Wrote {args.format}{' with int8 weights' if args.quantize else ''} to {path}")
    if args.no_check:
        return
    try:
        with cli.native_log_filtered():  # LiteRT's note on its CPU delegate
            diff = export.compare(model, path, args.format)
    except ImportError as err:
        print(f"Not checked: {err}")
        return
    tolerance = export.MAX_ABS_DIFF_QUANTIZED if args.quantize else export.MAX_ABS_DIFF
    if diff > tolerance:
        sys.exit(f"error: the {args.format} export differs from the Keras model by up to "
                 f"{diff:.2e} (tolerance {tolerance:.0e}).")
    print(f"Checked: max |{args.format} - keras| logit difference {diff:.1e} on 8 images")

