"""Faces keep their identity across frames (fer_keras.tracking)."""

import numpy as np
import pytest

from fer_keras.tracking import FaceTracker, centre_distance, iou

FACE = (100.0, 100.0, 100.0, 100.0)


def moved(box, dx=0.0, dy=0.0, scale=1.0):
    x, y, w, h = box
    cx, cy = x + w / 2 + dx, y + h / 2 + dy
    return (cx - w * scale / 2, cy - h * scale / 2, w * scale, h * scale)


def test_iou_and_centre_distance():
    boxes = np.array([FACE, moved(FACE, dx=50), moved(FACE, dx=300)])
    np.testing.assert_allclose(iou([FACE], boxes), [[1.0, 50 / 150, 0.0]])
    np.testing.assert_allclose(centre_distance([FACE], boxes), [[0.0, 0.5, 3.0]])


def test_a_face_keeps_its_track_through_a_missed_frame():
    tracker = FaceTracker(max_missed=1)
    assert tracker.update([FACE]) == [1]
    assert tracker.update([]) == []
    assert [t.missed for t in tracker.tracks] == [1]
    assert tracker.update([moved(FACE, dx=10, dy=5)]) == [1]
    (track,) = tracker.tracks
    assert (track.missed, track.first_frame, track.last_frame) == (0, 0, 2)
    assert track.box == moved(FACE, dx=10, dy=5)


def test_a_new_face_starts_a_new_track_and_order_does_not_matter():
    tracker = FaceTracker()
    other = moved(FACE, dx=300)
    assert tracker.update([FACE]) == [1]
    assert tracker.update([FACE, other]) == [1, 2]
    # Listed the other way round by the detector: each keeps its own id.
    assert tracker.update([moved(other, dy=4), moved(FACE, dx=-4)]) == [2, 1]


def test_a_track_ends_after_max_missed_frames():
    tracker = FaceTracker(max_missed=2)
    tracker.update([FACE])
    tracker.update([])
    tracker.update([])
    assert [t.id for t in tracker.tracks] == [1] and not tracker.ended
    tracker.update([])  # the third frame in a row without it
    assert tracker.tracks == [] and [t.id for t in tracker.ended] == [1]
    assert tracker.update([FACE]) == [2]


def test_a_face_that_moved_past_the_overlap_is_matched_by_position():
    # Moved (35, 35) px: IoU 0.27, under min_iou, but its centre is 0.49
    # face widths away. (40, 40) px is 0.57 widths: another face.
    tracker = FaceTracker(min_iou=0.3, max_shift=0.5)
    tracker.update([FACE])
    assert iou([FACE], [moved(FACE, 35, 35)])[0, 0] < 0.3
    assert tracker.update([moved(FACE, 35, 35)]) == [1]
    assert tracker.update([moved(FACE, 35 + 40, 35 + 40)]) == [2]


def test_a_face_of_another_size_at_the_same_place_is_another_face():
    tracker = FaceTracker()
    tracker.update([FACE])
    assert tracker.update([moved(FACE, scale=3.0)]) == [2]


def test_the_best_overlap_wins_when_two_faces_could_continue_a_track():
    tracker = FaceTracker(max_shift=0.0)
    tracker.update([FACE])
    assert tracker.update([moved(FACE, dx=40), moved(FACE, dx=10)]) == [2, 1]


@pytest.mark.parametrize("kwargs, message", [
    ({"min_iou": 0}, r"`min_iou` must be in \(0, 1\]. Received: min_iou=0"),
    ({"max_shift": -1}, "`max_shift` must be at least 0. Received: max_shift=-1"),
    ({"max_missed": 1.5}, "`max_missed` must be a whole number of at least 0. Received"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FaceTracker(**kwargs)


def test_an_empty_box_is_refused_with_what_was_received():
    with pytest.raises(ValueError, match=r"positive width and height. Received: \[\[1"):
        FaceTracker().update([(1, 2, 0, 5)])
