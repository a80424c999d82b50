"""The record of a prediction run: predictions.csv, predictions.json and
where each input's annotated copy goes.

JSON keeps one record per input, with its faces nested; the CSV has one row
per face (one per input without a face, so that no input goes unlisted), for
spreadsheets. A video's faces also have their time, track and raw (not
smoothed) label and probabilities (`fer_keras.timeline.TrackedFace`); those
columns come after the ones photos fill, which keep their places.
"""

import csv
import json
from pathlib import Path

CSV_FIELDS = ("file", "frame", "status", "x", "y", "width", "height", "label", "score")
# After the class probabilities; then the raw ones, as raw_<class>.
VIDEO_FIELDS = ("time_s", "track", "raw_label", "raw_score")
# Annotated photos keep these formats; others (gif, tiff, ...) become .png.
KEEP_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class Results:
    """Collects one record per input and writes predictions.csv / .json."""

    def __init__(self, output_dir: Path, class_names: "list[str] | tuple[str, ...]"):
        self.output_dir = Path(output_dir)
        self.class_names = class_names
        self.records = []
        self._used_names = set()

    def annotated_path(self, name: Path, kind: str) -> Path:
        """A unique path under annotated/ for an input's annotated copy."""
        if kind != "image":
            suffix = ".mp4"
        elif name.suffix.lower() in KEEP_SUFFIXES:
            suffix = name.suffix.lower()
        else:
            suffix = ".png"
        return self._unique(self.output_dir / "annotated" / name.with_suffix(suffix))

    def beside(self, annotated: Path, tail: str) -> Path:
        """A unique path next to an annotated copy: `beside(clip.mp4,
        "_timeline.png")` is clip_timeline.png."""
        return self._unique(annotated.with_name(annotated.stem + tail))

    def _unique(self, base: Path) -> Path:
        path, n = base, 1
        while path in self._used_names:
            n += 1
            path = base.with_name(f"{base.stem}_{n}{base.suffix}")
        self._used_names.add(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add(self, file, kind: str, faces_by_frame=(), annotated=None, error: str | None = None,
            frames: int | None = None, details: dict | None = None) -> None:
        """Records an input: its faces as (frame index, faces) pairs, or its
        error; `details` (a video's tracks, ...) go into its JSON record."""
        found = [{"frame": i, **face.to_dict()}
                 for i, frame_faces in faces_by_frame for face in frame_faces]
        status = "error" if error else ("ok" if found else "no face")
        record = {"file": str(file), "kind": kind, "status": status}
        if error:
            record["error"] = error
        if annotated:
            record["annotated"] = str(annotated)
        if frames is not None:
            record["frames"] = frames
        record.update(details or {})
        record["faces"] = found
        self.records.append(record)

    def write(self, meta: dict) -> tuple[Path, Path]:
        """Writes predictions.csv and predictions.json (`meta` heads the JSON)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        json_path = self.output_dir / "predictions.json"
        json_path.write_text(json.dumps({**meta, "files": self.records}, indent=2))
        csv_path = self.output_dir / "predictions.csv"
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[
                *CSV_FIELDS, *self.class_names, *VIDEO_FIELDS,
                *(f"raw_{name}" for name in self.class_names), "error"])
            writer.writeheader()
            for record in self.records:
                writer.writerows(self._rows(record))
        return csv_path, json_path

    @staticmethod
    def _rows(record: dict) -> list[dict]:
        row = {"file": record["file"], "status": record["status"],
               "error": record.get("error", "")}
        if not record["faces"]:
            return [row]
        rows = []
        for face in record["faces"]:
            x, y, w, h = face["box"]
            rows.append({
                **row, "frame": face["frame"], "x": x, "y": y, "width": w,
                "height": h, "label": face["label"], "score": f"{face['score']:.6f}",
                **{k: f"{v:.6f}" for k, v in face["probabilities"].items()},
                **_video_columns(face),
            })
        return rows


def _video_columns(face: dict) -> dict:
    """A video face's time, track and raw label and probabilities; none for a photo's."""
    if "track" not in face:
        return {}
    return {"time_s": f"{face['time_s']:.4f}", "track": face["track"],
            "raw_label": face["raw_label"], "raw_score": f"{face['raw_score']:.6f}",
            **{f"raw_{k}": f"{v:.6f}" for k, v in face["raw_probabilities"].items()}}
