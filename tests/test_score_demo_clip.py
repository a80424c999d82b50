"""Flicker and agreement with the demo clip's schedule (tools/score_demo_clip.py)."""

import csv

import pytest


@pytest.fixture(scope="module")
def tool(load_script):
    return load_script("tools/score_demo_clip.py")


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_switches_and_right_labels_per_person(tool, tmp_path, capsys):
    classes = ["happy"] * 5 + ["sad"] * 5  # one true switch in 1 s at 10 frames/s
    truth = [{"frame": i, "time_s": i / 10, "person": person, "class": name}
             for i, name in enumerate(classes)
             for person, name in (("left", name), ("astronaut", "-"))]
    raw = ["happy", "sad", "happy", "happy", "happy", "sad", "happy", "sad", "sad", "sad"]
    shown = ["happy"] * 6 + ["sad"] * 4  # a frame late
    predictions = []
    for i in range(10):
        predictions.append({"frame": i, "status": "ok", "x": 50, "width": 100,
                            "label": shown[i], "raw_label": raw[i]})
        if i != 3:  # the astronaut, missed once
            predictions.append({"frame": i, "status": "ok", "x": 450, "width": 100,
                                "label": "happy", "raw_label": "happy"})
    report = tool.score(write_csv(tmp_path / "p.csv", predictions),
                        write_csv(tmp_path / "t.csv", truth))
    assert report["left"] == {
        "frames": 10, "frames_expected": 10, "true_switches_per_s": pytest.approx(1.0),
        "raw_switches_per_s": pytest.approx(5.0), "shown_switches_per_s": pytest.approx(1.0),
        "raw_right": pytest.approx(0.8), "shown_right": pytest.approx(0.9)}
    assert report["astronaut"]["frames"] == 9 and "raw_right" not in report["astronaut"]
    tool.main([str(tmp_path / "p.csv"), str(tmp_path / "t.csv")])
    assert "80.0% raw, 90.0% shown" in capsys.readouterr().out
