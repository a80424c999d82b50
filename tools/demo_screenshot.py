"""Take the README's picture of the web demo: `docs/demo.png`.

`python tools/demo_screenshot.py [--output docs/demo.png] [--backend tensorflow]`

Serves the demo with the pretrained model on a free port, opens it in
headless Chromium (`tools/webdriver.py`), uploads scikit-image's astronaut
photo, waits for the labels and the Grad-CAM map, and saves the window as a
256-colour PNG (a third of the size of a full-colour one). The tensorflow
backend is the default here: it draws the Grad-CAM map in process, without
starting a second TensorFlow process.
"""

import argparse
import os
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_keras import cli  # noqa: E402


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_backend_argument(parser)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "demo.png")
    parser.add_argument("--size", default="1000x760", help="window WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    if args.backend is None and "KERAS_BACKEND" not in os.environ:
        argv = [*argv, "--backend", "tensorflow"]
    cli.select_backend(argv)

    from PIL import Image
    from skimage import data
    from webdriver import Chromium, find_chromium

    from fer_keras.demo import DemoServer
    from fer_keras.demo_analysis import DemoAnalyzer

    found = find_chromium()
    if found is None:
        sys.exit("error: needs chromium and chromedriver (Debian: "
                 "apt-get install chromium chromium-driver)")
    width, height = (int(v) for v in args.size.split("x"))
    server = DemoServer(DemoAnalyzer(), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                Chromium(*found, size=(width, height)) as browser:
            photo = Path(tmp) / "astronaut.png"
            Image.fromarray(data.astronaut()).save(photo)
            browser.open(server.url)
            browser.upload(browser.wait_for("#photo")[0], photo)
            browser.wait_for(".gradcam img", timeout=300)
            shot = browser.screenshot(Path(tmp) / "shot.png")
            Image.open(shot).convert("RGB").quantize(256).save(args.output, optimize=True)
    finally:
        server.shutdown()
        server.server_close()
    print(f"Wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
