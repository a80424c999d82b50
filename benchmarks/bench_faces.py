"""How fast are photos and video classified on this machine?

    python benchmarks/bench_faces.py --backend jax --json bench_faces.json

End to end (detection + crop + classification) on 640x480 frames holding one
face (scikit-image's astronaut pasted into a grey frame), one frame per call
as a webcam delivers them and a batch of frames per call as a video file
allows, both also with the faces tracked and their labels smoothed as
predict.py does for a video (`fer_keras.timeline.FaceTimeline`); then the
classifier alone on a batch of face crops. The speed does not
depend on the weights, so without --model-path (and no shipped pretrained
model) a randomly initialised cbam is timed.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from harness import write_json

from fer_keras import cli


def one_face_frames(count: int):
    """640x480 RGB frames with the astronaut's face (~72 px) at shifting places."""
    import cv2
    from skimage import data

    face = cv2.resize(data.astronaut(), (384, 384), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(count):
        frame = np.full((480, 640, 3), 90, np.uint8)
        x, y = 128 + (i % 5) * 20 - 40, 48 + (i % 3) * 20 - 20
        frame[y:y + 384, x:x + 384] = face
        frames.append(frame)
    return frames


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def cpu_timed(fn) -> float:
    """Seconds of CPU this process spent in `fn`: less swayed by other
    processes than the wall clock on a shared machine."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    backend = cli.select_backend(argv)

    import keras

    import fer_keras
    from fer_keras import detectors, faces, loading
    from fer_keras.timeline import FaceTimeline

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_backend_argument(parser)
    parser.add_argument("--model-path", help=".keras file, or a .tflite export (default: "
                        "pretrained cbam, else a random cbam)")
    parser.add_argument("--detector", choices=detectors.DETECTORS, default="haar")
    parser.add_argument("--detection-size", type=int, default=400)
    parser.add_argument("--scale-factor", type=float, help="Haar scale step")
    parser.add_argument("--min-neighbors", type=int, help="Haar neighbours")
    parser.add_argument("--frames", type=int, default=60, help="frames timed (default 60)")
    parser.add_argument("--video-batch", type=int, default=8,
                        help="frames per call in the batched run (default 8)")
    parser.add_argument("--crops", type=int, default=64, help="crops per call (default 64)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    if args.model_path and Path(args.model_path).suffix == ".tflite":
        model, model_name = args.model_path, args.model_path
    elif args.model_path:
        model, model_name = loading.load_model(args.model_path), args.model_path
    else:
        try:
            model, model_name = loading.load_pretrained("cbam"), "pretrained:cbam"
        except loading.ModelFileError:
            model, model_name = fer_keras.build_model("cbam"), "random:cbam"
    haar = {k: v for k, v in (("scale_factor", args.scale_factor),
                              ("min_neighbors", args.min_neighbors)) if v is not None}
    detector = detectors.HaarDetector(**haar) if args.detector == "haar" else args.detector
    recognizer = faces.EmotionRecognizer(model, detector=detector,
                                         detection_size=args.detection_size)
    frames = one_face_frames(args.frames)

    for frame in frames[:3]:
        recognizer.predict(frame)
    found = [len(recognizer.predict(frame)) for frame in frames]
    if found.count(1) != len(frames):
        print(f"warning: one face expected per frame; found {found}")

    per_frame = timed(lambda: [recognizer.predict(f) for f in frames], 3)
    fps = len(frames) / min(per_frame)
    cpu_ms = cpu_timed(lambda: [recognizer.predict(f) for f in frames]) / len(frames) * 1000
    batches = [frames[i:i + args.video_batch] for i in range(0, len(frames), args.video_batch)]
    recognizer.predict_batch(batches[0])
    batched = timed(lambda: [recognizer.predict_batch(b) for b in batches], 3)
    fps_batched = len(frames) / min(batched)

    def tracked(batch_size: int) -> None:
        """Frames `batch_size` at a time, tracked and smoothed, at 25 frames/s."""
        timeline, index = FaceTimeline(), 0
        for start in range(0, len(frames), batch_size):
            for found in recognizer.predict_batch(frames[start:start + batch_size]):
                timeline.add(index / 25, found)
                index += 1

    fps_tracked = len(frames) / min(timed(lambda: tracked(1), 3))
    cpu_ms_tracked = cpu_timed(lambda: tracked(1)) / len(frames) * 1000
    fps_batched_tracked = len(frames) / min(timed(lambda: tracked(args.video_batch), 3))
    found_faces = [recognizer.predict(f) for f in frames]

    def track_only() -> None:
        timeline = FaceTimeline()
        for index, found in enumerate(found_faces):
            timeline.add(index / 25, found)

    tracking_ms = min(timed(track_only, 5)) / len(frames) * 1000
    detect = timed(lambda: [recognizer.detect(f) for f in frames], 3)
    detect_ms = min(detect) / len(frames) * 1000

    crop = recognizer.crop(frames[0], recognizer.detect(frames[0])[0])
    crops = np.repeat(crop[None], args.crops, axis=0)
    recognizer.classify(crops)
    classify = timed(lambda: recognizer.classify(crops), 5)
    faces_per_s = args.crops / statistics.median(classify)
    one = timed(lambda: recognizer.classify(crops[:1]), 10)
    one_ms = statistics.median(one) * 1000

    results = {
        "backend": backend,
        "keras": keras.__version__,
        "detector": args.detector,
        "detection_size": args.detection_size,
        "haar": {"scale_factor": getattr(recognizer.detector, "scale_factor", None),
                 "min_neighbors": getattr(recognizer.detector, "min_neighbors", None),
                 "min_size": getattr(recognizer.detector, "min_size", None)},
        "model": model_name,
        "frame_size": [640, 480],
        "frames": len(frames),
        "faces_found_per_frame": sorted(set(found)),
        "frames_per_s": round(fps, 1),
        "frames_per_s_batched": round(fps_batched, 1),
        "cpu_ms_per_frame": round(cpu_ms, 1),
        "video_batch": args.video_batch,
        "frames_per_s_tracked": round(fps_tracked, 1),
        "frames_per_s_batched_tracked": round(fps_batched_tracked, 1),
        "cpu_ms_per_frame_tracked": round(cpu_ms_tracked, 1),
        "tracking_ms_per_frame": round(tracking_ms, 3),
        "detection_ms_per_frame": round(detect_ms, 1),
        "classify_ms_one_face": round(one_ms, 1),
        "faces_per_s": round(faces_per_s, 1),
        "crop_batch": args.crops,
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "machine": platform.processor() or platform.machine(),
    }
    print(f"backend {backend}, detector {args.detector} at {args.detection_size} px, "
          f"model {model_name}, {os.cpu_count()} CPUs, load {results['load_average']}")
    print(f"end to end, 1 frame per call:  {fps:6.1f} frames/s  "
          f"(detection {detect_ms:.1f} ms, one face classified {one_ms:.1f} ms; "
          f"{cpu_ms:.1f} ms of CPU a frame)")
    print(f"end to end, {args.video_batch} frames per call: {fps_batched:6.1f} frames/s")
    print(f"tracked and smoothed, 1 frame per call: {fps_tracked:6.1f} frames/s "
          f"({cpu_ms_tracked:.1f} ms of CPU a frame; tracking and smoothing alone "
          f"{tracking_ms:.2f} ms)")
    print(f"tracked and smoothed, {args.video_batch} frames per call: "
          f"{fps_batched_tracked:6.1f} frames/s")
    print(f"classifier, {args.crops} crops per call: {faces_per_s:6.1f} faces/s")
    if args.json:
        write_json(args.json, results)
        print(f"Wrote {args.json}")


if __name__ == "__main__":
    cli.run(main)
