"""Faces keep one identity across the frames of a video.

`FaceTracker` matches each frame's face boxes to the tracks of the frames
before: first by overlap (IoU), then, for a face that moved further than
its width between two frames, by the distance between box centres. A track
no face matched stays alive for `max_missed` frames (a detector misses a
face now and then: a blink, a turned head), then ends; a face matched to no
track starts a new one. Matching is greedy, best pair first: with the few
faces of a video frame it gives what an optimal assignment gives, in pure
NumPy.
"""

import dataclasses
import itertools
from typing import Sequence

import numpy as np

Box = tuple[float, float, float, float]


@dataclasses.dataclass
class Track:
    """One face over time: its id (1, 2, ...), its latest box (x, y, width,
    height), the frames it was first and last seen in, and how many frames
    in a row it has now gone unseen."""

    id: int
    box: Box
    first_frame: int
    last_frame: int
    missed: int = 0


def iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of `boxes_a` (N, 4) with every
    box of `boxes_b` (M, 4), boxes as (x, y, width, height): (N, M)."""
    a = np.asarray(boxes_a, dtype="float64").reshape(-1, 1, 4)
    b = np.asarray(boxes_b, dtype="float64").reshape(1, -1, 4)
    width = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(
        a[..., 0], b[..., 0])
    height = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(
        a[..., 1], b[..., 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def centre_distance(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Distance between the centres of every box of `boxes_a` and of
    `boxes_b`, in widths of the `boxes_a` box (its side for a square): (N, M)."""
    a = np.asarray(boxes_a, dtype="float64").reshape(-1, 1, 4)
    b = np.asarray(boxes_b, dtype="float64").reshape(1, -1, 4)
    dx = (a[..., 0] + a[..., 2] / 2) - (b[..., 0] + b[..., 2] / 2)
    dy = (a[..., 1] + a[..., 3] / 2) - (b[..., 1] + b[..., 3] / 2)
    size = np.sqrt(np.maximum(a[..., 2] * a[..., 3], 1e-9))
    return np.hypot(dx, dy) / size


def _as_box(row) -> Box:
    return tuple(float(v) for v in row)


def _greedy_pairs(score: np.ndarray, allowed: np.ndarray) -> list[tuple[int, int]]:
    """(row, column) pairs, best score first, each row and column used once."""
    pairs, rows, cols = [], set(), set()
    for flat in np.argsort(-score, axis=None, kind="stable"):
        r, c = np.unravel_index(flat, score.shape)
        if allowed[r, c] and r not in rows and c not in cols:
            pairs.append((int(r), int(c)))
            rows.add(r)
            cols.add(c)
    return pairs


class FaceTracker:
    """Gives each face box of a frame the id of the track it continues.

    Args:
        min_iou: the least overlap for a box to continue a track by overlap.
        max_shift: a box that overlaps no track too little still continues
            the nearest one whose centre is within this many face widths of
            its own, and whose size is within a factor of 2.
        max_missed: how many frames in a row a track may go unseen before
            it ends; a face seen after that starts a new track.
    """

    def __init__(self, min_iou: float = 0.3, max_shift: float = 0.5, max_missed: int = 10):
        if not 0 < min_iou <= 1:
            raise ValueError(f"`min_iou` must be in (0, 1]. Received: min_iou={min_iou}")
        if max_shift < 0:
            raise ValueError(f"`max_shift` must be at least 0. Received: max_shift={max_shift}")
        if max_missed < 0 or int(max_missed) != max_missed:
            raise ValueError(
                f"`max_missed` must be a whole number of at least 0. Received: "
                f"max_missed={max_missed}")
        self.min_iou = float(min_iou)
        self.max_shift = float(max_shift)
        self.max_missed = int(max_missed)
        self.tracks: list[Track] = []  # the live ones
        self.ended: list[Track] = []
        self._frame = -1
        self._ids = itertools.count(1)

    def update(self, boxes: Sequence[Box]) -> list[int]:
        """The track id of each box of the next frame, in the order given."""
        self._frame += 1
        boxes = np.asarray(boxes, dtype="float64").reshape(-1, 4)
        if (boxes[:, 2:] <= 0).any():
            raise ValueError(
                "Face boxes must be (x, y, width, height) with a positive width and "
                f"height. Received: {boxes.tolist()}")
        ids = [0] * len(boxes)
        free_tracks, free_boxes = list(range(len(self.tracks))), list(range(len(boxes)))
        for match in (self._by_overlap, self._by_position):
            if not free_tracks or not free_boxes:
                break
            known = np.array([self.tracks[t].box for t in free_tracks])
            for r, c in match(known, boxes[free_boxes]):
                track, box = self.tracks[free_tracks[r]], free_boxes[c]
                track.box, track.last_frame, track.missed = _as_box(boxes[box]), self._frame, 0
                ids[box] = track.id
            free_tracks = [t for t in free_tracks if self.tracks[t].last_frame != self._frame]
            free_boxes = [b for b in free_boxes if not ids[b]]
        for t in free_tracks:
            self.tracks[t].missed += 1
        self.ended.extend(t for t in self.tracks if t.missed > self.max_missed)
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for box in free_boxes:
            track = Track(next(self._ids), _as_box(boxes[box]), self._frame, self._frame)
            self.tracks.append(track)
            ids[box] = track.id
        return ids

    def _by_overlap(self, known, boxes):
        overlap = iou(known, boxes)
        return _greedy_pairs(overlap, overlap >= self.min_iou)

    def _by_position(self, known, boxes):
        distance = centre_distance(known, boxes)
        ratio = np.sqrt((boxes[None, :, 2] * boxes[None, :, 3])
                        / (known[:, None, 2] * known[:, None, 3]))
        return _greedy_pairs(-distance, (distance <= self.max_shift) & (ratio >= 0.5)
                             & (ratio <= 2.0))
