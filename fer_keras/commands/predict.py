"""Tell the emotion of each face in photos, folders, videos or a webcam.

    python predict.py photo.jpg holidays/ clip.mp4 --output-dir predictions
    python predict.py --webcam 0 --max-frames 300
    python predict.py photo.jpg --tta ten_crop
    python predict.py clip.mp4 --smooth 1

Writes an annotated copy of each input (box and "label 87%" on each face; an
.mp4 for a video) under OUTPUT_DIR/annotated/, and every face's box and class
probabilities to OUTPUT_DIR/predictions.csv and predictions.json. In a video
(or the webcam) each face keeps a track ("#2 happy 87%") and its label is
smoothed over time; each video also gets NAME_timeline.png (every track's
probabilities over time) and NAME_tracks.json (each track's share of time in
each emotion) beside its annotated copy. A file that
cannot be read is reported and skipped; a photo without a face is reported,
not an error. Exits with status 1 if any input could not be read, and for a
folder with no image or video in it.
"""

import argparse
import sys
from pathlib import Path

from fer_keras import cli


def parse_args(argv: list[str], prog: str = "predict.py") -> argparse.Namespace:
    from fer_keras import detectors, prediction, timeline, tta

    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_backend_argument(parser)
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="image, folder (searched recursively) or video file")
    parser.add_argument("--webcam", type=int, metavar="N", help="read webcam number N")
    parser.add_argument("--model-path", action="append",
                        help=".keras file, or an export of one from "
                        "export.py: .tflite, .onnx (needs onnxruntime) or a SavedModel "
                        "folder (needs tensorflow) (default: the default pretrained "
                        "model); given more than once, the ensemble of those .keras "
                        "files, which averages their logits")
    parser.add_argument("--detector", choices=detectors.DETECTORS, default="haar")
    parser.add_argument("--output-dir", default="predictions")
    cli.add_tta_argument(parser, tta.TTA_MODES, unit="face")
    parser.add_argument("--margin", type=float, default=0.1,
                        help="fraction of the face box added on each side (default 0.1)")
    parser.add_argument("--detection-size", type=int,
                        help="detect on a copy downscaled to this longest side; raise "
                        f"it for small faces (default {prediction.IMAGE_DETECTION_SIZE} for "
                        f"images, {prediction.VIDEO_DETECTION_SIZE} for video, which must "
                        "keep up)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=8,
                        help="images or video frames per model call (default 8; "
                        "a webcam's frames go one by one)")
    parser.add_argument("--max-frames", type=int, help="stop each video after N frames")
    parser.add_argument("--smooth", type=cli.non_negative_float, metavar="SECONDS",
                        default=timeline.DEFAULT_SMOOTH_S,
                        help="average each video face's probabilities over about the last "
                        "SECONDS (an exponential average, the same at any frame rate); "
                        "the label shown is the smoothed one, 0 shows the raw one "
                        f"(default {timeline.DEFAULT_SMOOTH_S:g})")
    parser.add_argument("--max-missed", type=cli.non_negative_int, metavar="N",
                        default=timeline.DEFAULT_MAX_MISSED,
                        help="frames a video face may go undetected and keep its track "
                        f"(default {timeline.DEFAULT_MAX_MISSED})")
    parser.add_argument("--show", action="store_true",
                        help="show video frames in a window (needs opencv-python)")
    args = parser.parse_args(prediction.bare_tta_means_mirror(argv, tta.TTA_MODES))
    if not args.paths and args.webcam is None:
        parser.error("give at least one PATH or --webcam N")
    return args


def main(argv: list[str] | None = None, prog: str = "predict.py") -> None:
    argv = sys.argv[1:] if argv is None else argv
    backend = cli.select_backend(argv)

    with cli.native_log_filtered():
        from fer_keras import CLASS_NAMES, faces, inference, loading, media, prediction
        from fer_keras.results import Results

    args = parse_args(argv, prog)
    model_paths = args.model_path or []
    # One path is that model, several their ensemble, none the default pretrained.
    model = model_paths if len(model_paths) > 1 else next(iter(model_paths), None)
    try:
        for path in model_paths:
            inference.check_model_path(path, runner="predict.py")
        cli.check_output_folder("--output-dir", args.output_dir)
        recognizer = faces.EmotionRecognizer(
            model, detector=args.detector, margin=args.margin, tta=args.tta,
            detection_size=args.detection_size or prediction.IMAGE_DETECTION_SIZE,
        )
        if args.show:
            prediction.check_display()
    except ImportError as err:
        sys.exit(f"error: {err}")
    inputs, missing = media.collect_inputs(args.paths)
    results = Results(Path(args.output_dir), CLASS_NAMES)
    for path, error in missing:
        results.add(path, "folder" if path.is_dir() else "unknown", error=error)
    prediction.predict_all(recognizer, inputs, results, args.batch_size, args.webcam,
                           args.max_frames, args.show, args.detection_size, args.smooth,
                           args.max_missed)
    csv_path, json_path = results.write({
        "model": model or f"pretrained:{loading.DEFAULT_PRETRAINED}",
        "detector": args.detector,
        "backend": backend, "tta": args.tta, "classes": list(CLASS_NAMES),
        "smooth_s": args.smooth, "max_missed": args.max_missed,
    })
    error = prediction.report(results, csv_path, json_path)
    if error:
        sys.exit(error)

