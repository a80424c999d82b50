"""Probabilities smoothed over seconds, whatever the frame rate (fer_keras.smoothing)."""

import math

import numpy as np
import pytest

from fer_keras.smoothing import ExponentialSmoother

HAPPY, SAD = np.array([0.9, 0.1]), np.array([0.1, 0.9])


def step(fps, seconds=0.5, change_at=1.0, until=3.0):
    """The smoothed values of a step from HAPPY to SAD after `change_at`
    seconds, sampled at `fps`: {time rounded to 1 ms: values}."""
    smoother = ExponentialSmoother(seconds)
    out = {}
    for i in range(int(until * fps) + 1):
        t = i / fps
        out[round(t, 3)] = smoother.update("face", t, SAD if t > change_at + 1e-9 else HAPPY)
    return out


def test_the_window_is_in_seconds_not_frames():
    slow, fast = step(10), step(30)
    shared = sorted(set(slow) & set(fast))
    assert len(shared) == 31  # every tenth of a second
    for t in shared:
        np.testing.assert_allclose(slow[t], fast[t], atol=1e-9, err_msg=f"at {t} s")
    # 63% of the way from HAPPY to SAD one time constant after the change.
    expected = HAPPY + (SAD - HAPPY) * (1 - math.exp(-1))
    np.testing.assert_allclose(slow[1.5], expected, atol=1e-9)


def test_uneven_frames_give_the_average_of_even_ones():
    """A webcam drops frames: the average of those it kept is the same, as
    long as the change happens at a frame both kept (the 4th, at 0.15 s)."""
    even, uneven = ExponentialSmoother(0.4), ExponentialSmoother(0.4)
    for i in range(21):
        values = SAD if i > 3 else HAPPY
        smoothed = even.update(0, i * 0.05, values)
        if i % 3 != 1:  # every third frame dropped (not the last, the 21st)
            kept = uneven.update(0, i * 0.05, values)
    np.testing.assert_allclose(kept, smoothed, atol=1e-9)
    assert 0.8 < smoothed[1] < 0.9


def test_zero_seconds_turns_it_off():
    smoother = ExponentialSmoother(0)
    smoother.update("a", 0.0, HAPPY)
    np.testing.assert_array_equal(smoother.update("a", 0.04, SAD), SAD)


def test_each_key_is_its_own_average_and_forget_starts_it_again():
    smoother = ExponentialSmoother(1.0)
    smoother.update(1, 0.0, HAPPY)
    np.testing.assert_array_equal(smoother.update(2, 0.1, SAD), SAD)
    assert smoother.update(1, 0.1, SAD)[0] > 0.8
    smoother.forget(1)
    smoother.forget("never seen")
    np.testing.assert_array_equal(smoother.update(1, 0.2, SAD), SAD)


def test_a_time_before_the_last_one_is_refused():
    smoother = ExponentialSmoother(0.5)
    smoother.update("face", 2.0, HAPPY)
    with pytest.raises(ValueError, match="Times must not go back.*Received: time_s=1.5"):
        smoother.update("face", 1.5, SAD)


@pytest.mark.parametrize("seconds", [-0.1, math.nan, math.inf])
def test_a_bad_window_is_refused(seconds):
    with pytest.raises(ValueError, match=f"Received: seconds={seconds}"):
        ExponentialSmoother(seconds)
