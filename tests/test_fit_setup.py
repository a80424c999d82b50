"""What a run is given before `fit`: its step count and its random streams."""

import pytest

from fer_keras import fit_setup, training


def test_a_run_resumed_later_draws_new_shuffles_and_augmentations():
    assert fit_setup.stream_seed(7, 0) == 7
    later = {fit_setup.stream_seed(7, epoch) for epoch in range(1, 6)}
    assert len(later) == 5 and 7 not in later
    assert all(0 <= s < 2**31 for s in later)
    # The same resume draws the same streams: a run stays reproducible.
    assert fit_setup.stream_seed(7, 3) == fit_setup.stream_seed(7, 3)
    assert fit_setup.stream_seed(8, 3) != fit_setup.stream_seed(7, 3)


@pytest.mark.parametrize("num_train, batch_size, steps", [
    (640, 64, 10), (650, 64, 10), (63, 64, 1), (25_838, 64, 403),
])
def test_an_epoch_is_the_full_batches_of_one_pass(num_train, batch_size, steps):
    assert fit_setup.full_epoch_steps(num_train, batch_size) == steps


def test_training_keeps_the_names_it_re_exports():
    for name in ("prepare_fit", "FitSetup", "stream_seed", "full_epoch_steps"):
        assert getattr(training, name) is getattr(fit_setup, name)
