"""A video's faces over time: tracked, smoothed, and summed up per track.

`FaceTimeline` takes the faces `EmotionRecognizer` finds in each frame, in
order, with the frame's time: `fer_keras.tracking.FaceTracker` gives each
face its track, `fer_keras.smoothing.ExponentialSmoother` smooths its class
probabilities along the track, and each face comes back as a `TrackedFace`
whose label is the smoothed one, the model's own kept in `raw`. Once
the video ends, `summary` gives each track's share of time in each emotion
and how often its label switched, raw and smoothed.
"""

import dataclasses
from typing import Sequence

import numpy as np

from fer_keras.classes import CLASS_NAMES
from fer_keras.faces import Face
from fer_keras.smoothing import ExponentialSmoother
from fer_keras.tracking import FaceTracker

# An average over about half a second. On the demo clip (README, "Video over
# time") the label of the face whose photo changes switches 0.52 times a
# second instead of 8.05 (its photo changes 0.29 times a second), and a clear
# change of expression shows within a third of a second (0.5 s x ln 2).
DEFAULT_SMOOTH_S = 0.5
# Frames a face may go undetected and keep its track (0.4 s at 25 frames/s).
DEFAULT_MAX_MISSED = 10


@dataclasses.dataclass(frozen=True, eq=False)
class TrackedFace(Face):
    """A face in a video frame: `probabilities` (and so `label` and `score`)
    are smoothed over its track; `raw` is the face as the model saw it in
    this frame alone."""

    track: int
    frame: int
    time_s: float
    raw: Face

    @property
    def caption(self) -> str:
        """"#2 happy 87%": the track, then the smoothed label."""
        return f"#{self.track} {super().caption}"

    def to_dict(self) -> dict:
        """Face's record with the time, track and raw label and probabilities
        (the frame index is the caller's to add, as for photos)."""
        raw = self.raw.to_dict()
        return {"time_s": round(self.time_s, 4), "track": self.track, **super().to_dict(),
                **{f"raw_{key}": raw[key] for key in ("label", "score", "probabilities")}}


class FaceTimeline:
    """Tracks and smooths the faces of one video, frame after frame.

    Args:
        smooth_s: the smoothing's time constant in seconds
            (`ExponentialSmoother`); 0 shows the model's raw labels.
        max_missed: frames a face may go undetected and keep its track.
        tracker: a `FaceTracker` to use instead of the default one.
    """

    def __init__(self, smooth_s: float = DEFAULT_SMOOTH_S,
                 max_missed: int = DEFAULT_MAX_MISSED, tracker: FaceTracker | None = None):
        self.tracker = tracker or FaceTracker(max_missed=max_missed)
        self.smoother = ExponentialSmoother(smooth_s)
        self.times: list[float] = []
        self.tracks: dict[int, list[TrackedFace]] = {}
        self._forgotten = 0

    @property
    def smooth_s(self) -> float:
        return self.smoother.seconds

    def add(self, time_s: float, found: Sequence[Face]) -> list[TrackedFace]:
        """The faces of the next frame, seen at `time_s` seconds, tracked and
        smoothed. Call it for every frame, those without a face too: a
        track's missed frames are counted here."""
        if self.times and time_s < self.times[-1]:
            raise ValueError(
                f"Frames must come in time order: the last one was at {self.times[-1]} s. "
                f"Received: time_s={time_s}")
        frame = len(self.times)
        self.times.append(float(time_s))
        ids = self.tracker.update([face.box for face in found])
        for track in self.tracker.ended[self._forgotten:]:
            self.smoother.forget(track.id)
        self._forgotten = len(self.tracker.ended)
        tracked = []
        for face, track in zip(found, ids):
            smoothed = self.smoother.update(track, time_s, face.probabilities)
            tracked.append(TrackedFace(face.box, smoothed.astype("float32"), face.detection,
                                       track=track, frame=frame, time_s=float(time_s), raw=face))
            self.tracks.setdefault(track, []).append(tracked[-1])
        return tracked

    def frame_durations(self) -> np.ndarray:
        """How long each frame was on screen: to the next frame, and the
        median of those for the last one (0 for a video of one frame)."""
        times = np.asarray(self.times, dtype="float64")
        gaps = np.diff(times)
        last = float(np.median(gaps)) if len(gaps) else 0.0
        return np.append(gaps, last) if len(times) else gaps

    def series(self, track: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A track's times (N,), smoothed (N, classes) and raw (N, classes)
        probabilities."""
        seen = self.tracks[track]
        return (np.array([f.time_s for f in seen]), np.stack([f.probabilities for f in seen]),
                np.stack([f.raw.probabilities for f in seen]))

    def summary(self) -> list[dict]:
        """Per track: when it was first and last seen, in how many frames,
        the seconds it spans (to the end of its last frame), its share of
        time under each (smoothed) label, the label it showed longest, and
        its label switches (smoothed and raw) in all and per second."""
        durations = self.frame_durations()
        rows = []
        for track, seen in self.tracks.items():
            weights = durations[[f.frame for f in seen]]
            if weights.sum() <= 0:
                weights = np.ones(len(seen))
            shown = [f.label for f in seen]
            share = {name: float(weights[[label == name for label in shown]].sum()
                                 / weights.sum()) for name in CLASS_NAMES}
            seconds = seen[-1].time_s - seen[0].time_s + float(durations[seen[-1].frame])
            switches = _switches(shown)
            raw_switches = _switches([f.raw.label for f in seen])
            rows.append({
                "track": track,
                "first_s": round(seen[0].time_s, 4),
                "last_s": round(seen[-1].time_s, 4),
                "frames": len(seen),
                "seconds": round(seconds, 4),
                "label": max(share, key=share.get),
                "share": {name: round(value, 4) for name, value in share.items()},
                "label_switches": switches,
                "raw_label_switches": raw_switches,
                "switches_per_s": _per_second(switches, seconds),
                "raw_switches_per_s": _per_second(raw_switches, seconds),
            })
        return rows

    def switch_rates(self) -> dict[str, float]:
        """Label switches per second of track time, over all tracks: "raw"
        (the model's labels frame by frame) and "shown" (smoothed)."""
        rows = self.summary()
        seconds = sum(r["seconds"] for r in rows)
        return {"raw": _per_second(sum(r["raw_label_switches"] for r in rows), seconds),
                "shown": _per_second(sum(r["label_switches"] for r in rows), seconds)}


def _switches(labels: Sequence[str]) -> int:
    return sum(a != b for a, b in zip(labels, labels[1:]))


def _per_second(count: int, seconds: float) -> float:
    return round(count / seconds, 4) if seconds > 0 else 0.0
