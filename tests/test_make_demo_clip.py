"""The demo clip of real faces (tools/make_demo_clip.py): its schedule, and a
short clip whose faces the detector finds."""

import csv

import pytest
from data_files import REAL_DATA

cv2 = pytest.importorskip("cv2")
pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def tool(load_script):
    return load_script("tools/make_demo_clip.py")


def test_the_left_face_shows_each_class_in_turn_and_the_astronaut_leaves_once(tool):
    rows = tool.schedule(hold=1.0, fps=4)
    left = [(frame, name) for frame, _, person, name in rows if person == "left"]
    assert [name for _, name in left] == [n for n in tool.FOLDERS for _ in range(4)]
    astronaut = [frame for frame, _, person, _ in rows if person == "astronaut"]
    assert sorted(set(range(28)) - set(astronaut)) == [14]  # a quarter second at 4 frames/s


@pytest.mark.real_data
def test_a_short_clip_has_both_faces_where_the_detector_finds_them(tool, tmp_path, capsys):
    if not (REAL_DATA / "test").is_dir():
        pytest.skip(f"FER2013 not found at {REAL_DATA}")
    from fer_keras import faces, media

    clip = tmp_path / "clip.mp4"
    tool.main([str(clip), "--data-dir", str(REAL_DATA), "--hold", "0.4", "--fps", "5"])
    assert "left: angry" in capsys.readouterr().out
    frames = list(media.read_video(clip))
    assert len(frames) == 14 and frames[0].shape == (480, 640, 3)
    with open(tmp_path / "clip_truth.csv", newline="") as f:
        truth = list(csv.DictReader(f))
    assert len(truth) == 2 * 14 - 1  # the astronaut is gone for one frame
    detector = faces.HaarDetector()
    found = [sorted(box[0] for box in map(lambda d: d.box, detector.detect(frame)))
             for frame in frames[:2]]
    for boxes in found:
        assert len(boxes) == 2 and boxes[0] < 320 < boxes[1]
