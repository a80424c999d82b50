"""The one class order used everywhere, the FER2013 label order, and one
colour per class for every picture that tells classes apart."""

CLASS_NAMES: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)

# One colour per class (RGB, 0-255), so labels read at a glance in annotated
# frames and timelines alike.
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (230, 57, 70),
    "disgust": (106, 153, 78),
    "fear": (155, 93, 229),
    "happy": (255, 190, 11),
    "sad": (58, 134, 255),
    "surprise": (255, 0, 110),
    "neutral": (200, 200, 200),
}
