"""The training curves say which loss is which (fer_keras.plots)."""

import numpy as np
import pytest

from fer_keras import plots


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
