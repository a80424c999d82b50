"""Cross-backend parity, shared by the tests: the logits that `.keras` files
give when a fresh process under another backend loads them, with nothing
but `import fer_keras` (no custom_objects)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

BACKENDS = ("jax", "tensorflow", "torch")
ROOT = Path(__file__).resolve().parents[1]

_LOAD_EVERYWHERE = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np

    import keras
    import fer_keras

    folder = Path(sys.argv[1])
    x = np.load(folder / "inputs.npz")["x"]
    logits = {}
    for path in sorted(folder.glob("*.keras")):
        model = keras.saving.load_model(path)
        logits[path.stem] = keras.ops.convert_to_numpy(model(x, training=False))
    np.savez(folder / f"logits_{keras.backend.backend()}.npz", **logits)
    """
)


def _start_python(code: str, backend: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "KERAS_BACKEND": backend},
    )


def _finish(processes: list[subprocess.Popen]) -> None:
    """Waits for `processes`; fails the test on an error of any."""
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def logits_under_each(backends: list[str], folder: Path,
                      x: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """The logits of `x` from every `*.keras` file in `folder`, loaded in a
    fresh process under each of `backends` (side by side): by backend, then
    by file name without `.keras`."""
    np.savez(folder / "inputs.npz", x=x)
    _finish([_start_python(_LOAD_EVERYWHERE, backend, str(folder)) for backend in backends])
    logits = {}
    for backend in backends:
        with np.load(folder / f"logits_{backend}.npz") as got:
            logits[backend] = dict(got)
    return logits


def logits_under(backend: str, folder: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """`logits_under_each` for one backend."""
    return logits_under_each([backend], folder, x)[backend]
