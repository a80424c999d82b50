"""The training curves say which loss is which, and a video's timeline shows
each track's probabilities in the class colours (fer_keras.plots)."""

import numpy as np
import pytest

from fer_keras import CLASS_NAMES, plots
from fer_keras.classes import CLASS_COLORS


@pytest.fixture
def drawn(monkeypatch):
    """The figures `plots` saves, kept for a look at what they show."""
    import matplotlib.figure

    figures = []
    save = matplotlib.figure.Figure.savefig

    def keep(figure, *args, **kwargs):
        figures.append(figure)
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return figures


def _history(epochs):
    # As training logs them: the class-weighted training loss near 0.3, the
    # plain validation loss near 2.
    return [{"epoch": str(e), "loss": str(0.35 - 0.02 * e), "accuracy": str(0.3 + 0.05 * e),
             "val_loss": str(2.0 - 0.1 * e), "val_accuracy": str(0.25 + 0.05 * e)}
            for e in range(epochs)]


def _axes_of(figure, values):
    """The axes holding a line through `values`, with the line's label."""
    for ax in figure.axes:
        for line in ax.get_lines():
            if np.allclose(line.get_ydata(), values):
                return ax, line.get_label()
    raise AssertionError(f"no line through {values}")


def test_the_two_losses_are_on_separate_panels_and_say_what_they_are(drawn, tmp_path):
    history = _history(3)
    path = plots.plot_curves(history, tmp_path / "curves.png", title="cbam (strong)")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (figure,) = drawn
    train_ax, train_label = _axes_of(figure, [float(r["loss"]) for r in history])
    val_ax, val_label = _axes_of(figure, [float(r["val_loss"]) for r in history])
    assert train_ax is not val_ax, "one scale for two different losses misleads"
    assert "class weights" in train_label and "augmentation" in train_label
    assert "validation" in val_label and "unweighted" in val_label
    accuracy_ax, _ = _axes_of(figure, [float(r["accuracy"]) for r in history])
    assert accuracy_ax is _axes_of(figure, [float(r["val_accuracy"]) for r in history])[0]


@pytest.mark.parametrize("epochs", [1, 3, 34])
def test_epochs_are_whole_numbers_on_the_axis(drawn, tmp_path, epochs):
    # Drawn after every epoch, so after the first one too.
    plots.plot_curves(_history(epochs), tmp_path / "curves.png")
    (figure,) = drawn
    for ax in figure.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def _track(start, frames, label, fps=10.0, skip=()):
    """(times, smoothed, raw) of a track whose top class is `label`, with
    the frames in `skip` unseen."""
    times = np.array([start + i / fps for i in range(frames) if i not in skip])
    smoothed = np.full((len(times), 7), 0.05)
    smoothed[:, CLASS_NAMES.index(label)] = 0.7
    raw = np.roll(smoothed, 1, axis=1)  # the next class: the bands tell them apart
    return times, smoothed, raw


def test_the_timeline_draws_each_track_in_the_class_colours(drawn, tmp_path):
    tracks = {1: _track(0.0, 30, "happy", skip=range(10, 20)), 2: _track(1.0, 15, "sad")}
    path = plots.plot_timeline(tracks, tmp_path / "timeline.png", frame_interval=0.1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (figure,) = drawn
    panels = [ax for ax in figure.axes if ax.get_lines()]
    assert [ax.get_title(loc="left") for ax in panels] == [
        "track 1: 0.0-2.9 s, 20 frames", "track 2: 1.0-2.4 s, 15 frames"]
    for ax, (times, _, _) in zip(panels, tracks.values()):
        lines = ax.get_lines()
        assert [tuple(np.round(np.array(line.get_color()) * 255)) for line in lines] == [
            CLASS_COLORS[name] for name in CLASS_NAMES]
        happy = lines[CLASS_NAMES.index("happy")]
        # Broken where the track went unseen, not drawn across the gap.
        assert np.isnan(happy.get_ydata()).sum() == (1 if len(times) == 20 else 0)
    # Under track 1, its bands: raw label above, shown label below, each cut by the gap.
    bands = figure.axes[1]
    assert [t.get_text() for t in bands.get_yticklabels()] == ["shown", "raw"]
    colors = [tuple(np.round(c.get_facecolor()[0][:3] * 255)) for c in bands.collections]
    assert colors == [CLASS_COLORS["sad"]] * 2 + [CLASS_COLORS["happy"]] * 2


def test_the_timeline_draws_the_longest_tracks_and_says_how_many_it_left_out(drawn, tmp_path):
    tracks = {i: _track(0.0, 5 + i, "neutral") for i in range(1, 5)}
    plots.plot_timeline(tracks, tmp_path / "timeline.png", frame_interval=0.1,
                        title="clip.mp4", max_tracks=2)
    (figure,) = drawn
    titles = [ax.get_title(loc="left") for ax in figure.axes if ax.get_lines()]
    assert [t.split(":")[0] for t in titles] == ["track 3", "track 4"]
    assert figure._suptitle.get_text() == "clip.mp4 (2 tracks seen in fewer frames not drawn)"


def test_a_video_without_faces_still_gets_a_timeline(drawn, tmp_path):
    plots.plot_timeline({}, tmp_path / "timeline.png", frame_interval=0.04, title="clip.mp4")
    (figure,) = drawn
    assert figure._suptitle.get_text() == "clip.mp4: no face found"
