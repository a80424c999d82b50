"""The package as installed code sees it: `import fer_keras` chooses no backend,
its names load on use, no module imports TensorFlow or torch at its top, and
`python -m fer_keras` (the `fer-keras` command) dispatches to the commands."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import keras

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fer_keras"
BACKEND = keras.backend.backend()

# Modules whose whole content is one framework: the pure-PyTorch reference
# models (only the conversion tests and the benchmarks import them), and each
# backend's module, which `backends.get` imports under that backend only.
FRAMEWORK_BY_DESIGN = {"torch_reference.py", "backends/tensorflow.py", "backends/torch.py"}


def _python(code: str, *args: str, backend: str = BACKEND) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=600)


def _top_level_imports(path: Path) -> set[str]:
    """The top-level packages a module imports when it is imported (not those
    imported inside functions)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_imports_tensorflow_or_torch_at_its_top():
    offenders = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).as_posix() not in FRAMEWORK_BY_DESIGN
        and (found := _top_level_imports(path) & {"tensorflow", "torch", "tf_keras_vis"})
    }
    assert offenders == {}


def test_the_backend_module_imports_no_other_framework():
    code = """
import json, sys
import keras
frameworks = lambda: sorted(m for m in ("jax", "tensorflow", "torch") if m in sys.modules)
before = frameworks()
from fer_keras import backends
backends.get()
print(json.dumps([before, frameworks()]))
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    before, after = json.loads(result.stdout.strip().splitlines()[-1])
    assert BACKEND in after
    assert set(after) - set(before) <= {BACKEND}, (before, after)


def test_importing_the_package_imports_no_keras_and_no_backend():
    code = ("import sys, fer_keras, fer_keras.cli, fer_keras.__main__, fer_keras.commands.train;"
            "print(sorted(m for m in ('keras', 'jax', 'tensorflow', 'torch') if m in sys.modules))")
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_lazy_names_load_on_use_and_register_the_layers():
    code = """
import fer_keras, keras
model = fer_keras.load_pretrained()
print(model.output.shape[-1], fer_keras.CBAM.__name__, "MODELS" in dir(fer_keras))
print("cbam" in fer_keras.MODELS, fer_keras.CLASS_NAMES[3])
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["7", "CBAM", "True", "True", "happy"]
    result = _python("import fer_keras; fer_keras.build_modle")
    assert "has no attribute 'build_modle'" in result.stderr


@pytest.mark.parametrize("imports", [
    "import keras, fer_keras",  # Keras first: registered at import
    "import fer_keras, keras; fer_keras.CLASS_NAMES",  # at the first name used
    "import keras, fer_keras.layers",
])
def test_plain_keras_loads_a_model_once_the_layers_are_registered(tmp_path, imports):
    path = tmp_path / "model.keras"
    code = """
import sys, fer_keras
fer_keras.build_model("kernels").save(sys.argv[1])
"""
    assert _python(code, str(path)).returncode == 0
    result = _python(f"{imports}\nimport sys\nprint(keras.saving.load_model(sys.argv[1]).name)",
                     str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "kernels"


def test_without_keras_imported_first_the_layers_wait_for_a_name():
    code = ("import sys, fer_keras; print('fer_keras.layers' in sys.modules); "
            "fer_keras.MODELS; print('fer_keras.layers' in sys.modules)")
    result = _python(code)
    assert result.stdout.split() == ["False", "True"], result.stderr[-2000:]


def test_fer_keras_command_lists_and_dispatches_its_subcommands():
    result = _python("from fer_keras.__main__ import main; main(['--help'])")
    assert result.returncode == 0
    for name in ("train", "evaluate", "predict", "export", "demo"):
        assert f"\n  {name} " in result.stdout
    result = _python("from fer_keras.__main__ import main; main(['trian'])")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: unknown command 'trian'. Expected one of: train, evaluate, predict, export, "
        "demo. "
        "Run `fer-keras --help` for what each does.")
    result = subprocess.run([sys.executable, "-m", "fer_keras", "train", "--help"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "KERAS_BACKEND": BACKEND})
    assert result.returncode == 0
    assert result.stdout.startswith("usage: fer-keras train ")


@pytest.mark.only_backend("jax", reason="the command's bookkeeping is backend-independent")
def test_fer_keras_train_records_its_command(tmp_path):
    from tiny_data import write_kaggle_folders

    data = write_kaggle_folders(tmp_path / "data")
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "fer_keras", "train", "--model", "baseline", "--data-dir",
         str(data), "--output-dir", str(out), "--epochs", "1", "--steps-per-epoch", "1",
         "--batch-size", "8", "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env={**os.environ, "KERAS_BACKEND": BACKEND, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["command"][:3] == ["fer-keras", "train", "--model"]
