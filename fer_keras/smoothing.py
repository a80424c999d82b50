"""Class probabilities smoothed over time, in seconds whatever the frame rate.

A model classifies each video frame on its own, and on a face that moves,
blinks or catches the light its top class flickers from frame to frame.
`ExponentialSmoother` averages each face's probabilities over about the
last `seconds`: an exponential average whose weights decay with the time
between frames, not their count, so 0.5 s means the same at 10, 30 or a
webcam's uneven frames per second, and a face unseen for a while has its
old probabilities forgotten at the same rate.

Each new value is taken to hold since the frame before it: a change that
happens between two frames reaches the average as if at the earlier one.
A step change from one class to another is then smoothed to the same curve
at any frame rate, at the times the frames share.
"""

import math
from typing import Hashable

import numpy as np


class ExponentialSmoother:
    """Exponential averages over time, one per key (a face's track id).

    Args:
        seconds: the time constant: after a step change the average has
            gone 63% of the way after `seconds`, 95% after three times it.
            0 turns smoothing off (each value is returned as it is).
    """

    def __init__(self, seconds: float = 0.5):
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(
                f"`seconds` must be a number of at least 0 (0 turns smoothing off). "
                f"Received: seconds={seconds}")
        self.seconds = float(seconds)
        self._state: dict[Hashable, tuple[float, np.ndarray]] = {}

    def update(self, key: Hashable, time_s: float, values) -> np.ndarray:
        """The average for `key` after `values` seen at `time_s` (seconds,
        not before the key's previous time)."""
        values = np.asarray(values, dtype="float64")
        previous = self._state.get(key)
        if previous is None or self.seconds == 0:
            smoothed = values
        else:
            last_time, average = previous
            if time_s < last_time:
                raise ValueError(
                    f"Times must not go back: {key!r} was last updated at {last_time} s. "
                    f"Received: time_s={time_s}")
            keep = math.exp(-(time_s - last_time) / self.seconds)
            smoothed = keep * average + (1.0 - keep) * values
        self._state[key] = (float(time_s), smoothed)
        return smoothed

    def forget(self, key: Hashable) -> None:
        """Drops a key's average (its face is gone); unknown keys are ignored."""
        self._state.pop(key, None)
