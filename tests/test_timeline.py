"""A video's faces tracked, smoothed and summed up per track (fer_keras.timeline)."""

import numpy as np
import pytest

from fer_keras import CLASS_NAMES
from fer_keras.faces import Detection, Face
from fer_keras.smoothing import ExponentialSmoother
from fer_keras.timeline import FaceTimeline, TrackedFace

LEFT, RIGHT = (10, 10, 100, 100), (400, 10, 100, 100)


def probabilities(**named):
    """Seven probabilities: the named ones, the rest shared evenly."""
    values = np.full(len(CLASS_NAMES), (1 - sum(named.values())) / (7 - len(named)))
    for name, p in named.items():
        values[CLASS_NAMES.index(name)] = p
    return values.astype("float32")


def face(box, **named):
    return Face(box, probabilities(**named), Detection(tuple(map(float, box))))


def test_raw_labels_that_flicker_are_shown_steady():
    """Happy in three frames of four, sad in the fourth: the raw label
    switches twice every four frames, the one shown never."""
    timeline = FaceTimeline(smooth_s=0.5)
    shown, raw = [], []
    for i in range(40):
        seen = face(LEFT, happy=0.6, sad=0.3) if i % 4 else face(LEFT, happy=0.3, sad=0.6)
        if i == 0:
            seen = face(LEFT, happy=0.6, sad=0.3)
        (tracked,) = timeline.add(i / 25, [seen])
        shown.append(tracked.label)
        raw.append(tracked.raw.label)
    assert set(shown) == {"happy"} and raw.count("sad") == 9
    (summary,) = timeline.summary()
    assert summary["label_switches"] == 0 and summary["raw_label_switches"] == 18
    assert summary["raw_switches_per_s"] == pytest.approx(18 / 1.6)
    assert timeline.switch_rates() == {"raw": pytest.approx(18 / 1.6), "shown": 0.0}


def test_tracked_faces_carry_track_time_and_both_probabilities():
    timeline = FaceTimeline(smooth_s=0.2)
    timeline.add(0.0, [face(LEFT, happy=0.9)])
    right, left = timeline.add(0.1, [face(RIGHT, sad=0.8), face(LEFT, angry=0.9)])
    assert isinstance(left, TrackedFace) and (left.track, right.track) == (1, 2)
    assert (left.frame, left.time_s) == (1, 0.1)
    # Smoothed along its own track only: the new face starts from its raw values.
    np.testing.assert_array_equal(right.probabilities, right.raw.probabilities)
    keep = np.exp(-0.1 / 0.2)
    expected = keep * probabilities(happy=0.9) + (1 - keep) * probabilities(angry=0.9)
    np.testing.assert_allclose(left.probabilities, expected, atol=1e-6)
    assert (left.label, left.raw.label) == ("happy", "angry")
    assert left.score == pytest.approx(expected.max()) and left.raw.score == pytest.approx(0.9)
    assert left.raw.box == left.box == LEFT
    assert left.caption == f"#1 happy {expected.max():.0%}"
    record = left.to_dict()
    assert list(record) == ["time_s", "track", "box", "label", "score", "probabilities",
                            "raw_label", "raw_score", "raw_probabilities"]
    assert (record["track"], record["label"], record["raw_label"]) == (1, "happy", "angry")
    assert record["raw_probabilities"] == left.raw.to_dict()["probabilities"]


def test_the_summary_weighs_each_frame_by_its_time_on_screen():
    """Frames 0.1 s apart, then 0.3 s: the last label held three times as long."""
    timeline = FaceTimeline(smooth_s=0)
    for t, seen in ((0.0, face(LEFT, happy=0.9)), (0.1, face(LEFT, happy=0.9)),
                    (0.2, face(LEFT, sad=0.9)), (0.5, face(LEFT, sad=0.9)), (0.8, None)):
        timeline.add(t, [seen] if seen else [])
    # The last frame lasts the median of the others.
    np.testing.assert_allclose(timeline.frame_durations(), [0.1, 0.1, 0.3, 0.3, 0.2])
    (summary,) = timeline.summary()
    assert summary["share"]["happy"] == pytest.approx(0.2 / 0.8)
    assert summary["share"]["sad"] == pytest.approx(0.6 / 0.8)
    assert sum(summary["share"].values()) == pytest.approx(1.0)
    assert summary["label"] == "sad"
    assert (summary["first_s"], summary["last_s"], summary["frames"]) == (0.0, 0.5, 4)
    assert summary["seconds"] == pytest.approx(0.8)
    assert summary["label_switches"] == summary["raw_label_switches"] == 1


def test_a_face_lost_for_longer_than_max_missed_is_a_new_track():
    timeline = FaceTimeline(max_missed=1)
    timeline.add(0.0, [face(LEFT, happy=0.9)])
    timeline.add(0.1, [])
    timeline.add(0.2, [])
    (back,) = timeline.add(0.3, [face(LEFT, sad=0.9)])
    assert back.track == 2 and back.label == "sad"
    assert [row["track"] for row in timeline.summary()] == [1, 2]
    times, smoothed, raw = timeline.series(2)
    assert times.tolist() == [0.3] and smoothed.shape == raw.shape == (1, 7)


def test_the_smoothing_is_the_smoothers():
    """The timeline adds tracks to ExponentialSmoother, nothing else."""
    rng = np.random.default_rng(0)
    raw = rng.dirichlet(np.ones(7), size=12).astype("float32")
    times = np.cumsum(rng.uniform(0.02, 0.2, size=12))
    timeline, smoother = FaceTimeline(smooth_s=0.3), ExponentialSmoother(0.3)
    for t, p in zip(times, raw):
        (tracked,) = timeline.add(t, [Face(LEFT, p, Detection(LEFT))])
        np.testing.assert_allclose(tracked.probabilities, smoother.update(1, t, p), atol=1e-6)


def test_frames_out_of_time_order_are_refused():
    timeline = FaceTimeline()
    timeline.add(1.0, [])
    with pytest.raises(ValueError, match="in time order.*Received: time_s=0.5"):
        timeline.add(0.5, [])
