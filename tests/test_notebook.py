"""The Colab notebook: well formed, and run top to bottom on tiny data so it cannot rot."""

import json
import os
from pathlib import Path

import nbformat
import pytest

import keras

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "fer_keras_colab.ipynb"
BACKEND = keras.backend.backend()
COLAB_URL = ("https://colab.research.google.com/github/fer-keras/fer-keras/blob/main/"
             "notebooks/fer_keras_colab.ipynb")


def parameters_index(notebook) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells)
              if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged `parameters`"
    return tagged[0]


def test_notebook_is_valid_and_parameterised():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    source = notebook.cells[parameters_index(notebook)].source
    for name in ("BACKEND", "MODEL", "EPOCHS", "PIPELINE", "DATA_DIR", "TINY", "REPO_URL"):
        assert f"\n{name} = " in f"\n{source}", name
    assert 'MODEL = "cbam"' in source and "TINY = False" in source
    assert COLAB_URL in notebook.cells[0].source
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "commit the notebook without outputs"
    )


@pytest.mark.slow
def test_notebook_runs_on_tiny_data(tmp_path, monkeypatch):
    if BACKEND != "jax" and not os.environ.get("FER_KERAS_NOTEBOOK_ALL_BACKENDS"):
        pytest.skip("the notebook runs in CI under jax only, to save time; set "
                    "FER_KERAS_NOTEBOOK_ALL_BACKENDS=1 to run it under this backend too")
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    index = parameters_index(notebook)
    injected = nbformat.v4.new_code_cell(f"BACKEND = {BACKEND!r}\nTINY = True",
                                         metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(index + 1, injected)
    monkeypatch.setenv("FER_KERAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    finally:
        nbformat.write(notebook, tmp_path / "executed.ipynb")

    run_dir = tmp_path / "runs" / f"cbam_seed_{BACKEND}_tiny"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed" and run["backend"] == BACKEND and run["epochs"] == 2
    for name in ("curves.png", "eval/confusion_matrix.png", "eval/gradcam.png"):
        assert (run_dir / name).read_bytes()[:4] == b"\x89PNG", name
    assert json.loads((run_dir / "eval" / "metrics.json").read_text())["num_samples"] == 7 * 6
    assert (run_dir / "cbam.keras").exists()

    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # samples, curves, confusion matrix, per-class, Grad-CAM
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert f"backend {BACKEND}" in text
    other = "jax" if BACKEND == "torch" else "torch"
    assert f"same predictions under {other}" in text
    assert "pretrained cbam" in text
    assert not [o for o in outputs if o.get("output_type") == "error"]
