"""How often the labels of the demo clip flicker, and how often they are right.

`python tools/score_demo_clip.py predictions/predictions.csv /tmp/demo_clip_truth.csv`

Reads what `predict.py` wrote for the clip of `tools/make_demo_clip.py` and
the clip's schedule (NAME_truth.csv): for each person (the left face, whose
FER2013 photo changes class every few seconds, and the astronaut on the
right), the label switches per second, raw and shown (smoothed), against
the switches the schedule itself makes, and for the left face the share of
its frames whose label is the class of the photo shown, raw and shown.
"""

import argparse
import csv
from collections import defaultdict

FRAME_WIDTH = 640  # make_demo_clip.FRAME_SIZE; the left face stays in the left half


def person_of(row: dict) -> str:
    centre = float(row["x"]) + float(row["width"]) / 2
    return "left" if centre < FRAME_WIDTH / 2 else "astronaut"


def switches(labels: list[str]) -> int:
    return sum(a != b for a, b in zip(labels, labels[1:]))


def score(predictions: str, truth: str) -> dict:
    """Per person: frames, seconds, switches per second (true, raw, shown)
    and, where the class is known, the share of frames labelled right."""
    expected = defaultdict(dict)
    with open(truth, newline="") as f:
        for row in csv.DictReader(f):
            expected[row["person"]][int(row["frame"])] = (float(row["time_s"]), row["class"])
    seen = defaultdict(list)
    with open(predictions, newline="") as f:
        for row in csv.DictReader(f):
            if row["status"] == "ok":
                seen[person_of(row)].append(row)
    report = {}
    for person, schedule in expected.items():
        rows = sorted(seen[person], key=lambda r: int(r["frame"]))
        times = [t for t, _ in schedule.values()]
        seconds = max(times) - min(times) + (times[1] - times[0])
        truths = [schedule[int(r["frame"])][1] for r in rows if int(r["frame"]) in schedule]
        entry = {
            "frames": len(rows), "frames_expected": len(schedule),
            "true_switches_per_s": switches([c for _, c in schedule.values()]) / seconds,
            "raw_switches_per_s": switches([r["raw_label"] for r in rows]) / seconds,
            "shown_switches_per_s": switches([r["label"] for r in rows]) / seconds,
        }
        if "-" not in truths:
            entry["raw_right"] = sum(r["raw_label"] == c for r, c in zip(rows, truths)) / len(rows)
            entry["shown_right"] = sum(r["label"] == c for r, c in zip(rows, truths)) / len(rows)
        report[person] = entry
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", help="predictions.csv written by predict.py for the clip")
    parser.add_argument("truth", help="the clip's NAME_truth.csv")
    args = parser.parse_args(argv)
    for person, entry in score(args.predictions, args.truth).items():
        line = (f"{person:9s} {entry['frames']}/{entry['frames_expected']} frames; label "
                f"switches/s: {entry['true_switches_per_s']:.2f} true, "
                f"{entry['raw_switches_per_s']:.2f} raw, {entry['shown_switches_per_s']:.2f} shown")
        if "raw_right" in entry:
            line += (f"; labelled as the photo's class: {entry['raw_right']:.1%} raw, "
                     f"{entry['shown_right']:.1%} shown")
        print(line)


if __name__ == "__main__":
    main()
