"""demo.py: one subprocess serves the page until Ctrl+C; its options and
refusals are checked in this process, with a server that does not listen."""

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import keras

from fer_keras import cli, demo
from fer_keras.commands import demo as demo_command

ROOT = Path(__file__).resolve().parents[1]

BACKEND = keras.backend.backend()


@pytest.fixture
def script():
    return demo_command


def _ctrl_c_as_in_a_terminal():
    # A suite started in the background (`nohup ... &`) ignores SIGINT, and a
    # child inherits that: the demo would never see the Ctrl+C this test sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_demo_serves_the_page_until_interrupted(baseline_path, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "demo.py"), "--model", str(baseline_path), "--port", "0",
             "--max-upload-mb", "0.5", "--backend", BACKEND],
            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT, env=env,
            preexec_fn=_ctrl_c_as_in_a_terminal)
    try:
        line = process.stdout.readline()  # the server's address, once it listens
        assert line.startswith(f"Web demo of baseline.keras ({BACKEND} backend) at "
                               "http://127.0.0.1:"), (line, log.read_text())
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "api/info", timeout=60) as response:
            info = json.load(response)
        assert info["backend"] == BACKEND and info["max_upload_bytes"] == 2**19
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=120)
    assert process.returncode == 0, log.read_text()
    assert out.strip() == "Stopped."
    assert "warning" not in log.read_text()


class NotListening(demo.DemoServer):
    """A DemoServer that binds nothing and stops as at Ctrl+C when served."""

    def __init__(self, analyzer, host, port, max_upload_bytes):
        self.analyzer, self.server_address = analyzer, (host, port)
        self.max_upload_bytes = max_upload_bytes

    def serve_forever(self, poll_interval=0.5):
        raise KeyboardInterrupt

    def server_close(self):
        pass


def test_sharing_on_all_interfaces_warns(script, baseline_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "DemoServer", NotListening)
    script.main(["--model", str(baseline_path), "--host", "0.0.0.0", "--port", "8123"])
    out, err = capsys.readouterr()
    assert "warning: serving on 0.0.0.0: anyone who can reach this machine on port 8123" in err
    assert "at http://127.0.0.1:8123/" in out


def test_a_port_in_use_is_one_clear_line(script, baseline_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit, match=f"error: cannot listen on 127.0.0.1:{port}: "
                           r".*Choose another --port \(0: any free port\)"):
            script.main(["--model", str(baseline_path), "--port", str(port)])


def test_a_missing_model_is_one_clear_line(script, tmp_path):
    with pytest.raises(SystemExit, match=r"error: Model file not found: .*nope.keras"):
        cli.run(lambda: script.main(["--model", str(tmp_path / "nope.keras")]))


def test_an_export_without_its_runtime_is_one_clear_line(script, exports_without_runtime):
    onnx, _ = exports_without_runtime
    with pytest.raises(SystemExit, match=r"error: .*model.onnx .*pip install onnxruntime"):
        cli.run(lambda: script.main(["--model", str(onnx)]))


@pytest.mark.parametrize("option, value, expected", [
    ("--port", "70000", "expected a port number from 0 to 65535"),
    ("--port", "-1", "expected a port number from 0 to 65535"),
    ("--max-upload-mb", "0", "expected a number above 0"),
])
def test_bad_option_values_are_refused_naming_the_option(script, capsys, option, value,
                                                         expected):
    with pytest.raises(SystemExit):
        script.parse_args([option, value])
    err = capsys.readouterr().err
    assert f"argument {option}: {expected}" in err and f"Received: {value!r}" in err


def test_port_numbers_take_the_edges_they_allow():
    assert cli.port_number("0") == 0 and cli.port_number("65535") == 65535
