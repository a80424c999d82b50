"""The web demo's server on a free local port: its HTTP API over urllib, and
its page in headless Chromium (skipped where chromium or chromedriver is not
installed), with scikit-image's astronaut (one frontal face) and cat (none).

The server runs in a thread of the test process with a random baseline
model: the tests check what the demo does with photos, not its accuracy."""

import base64
import http.client
import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image
from repo_scripts import load_script

from fer_keras import CLASS_NAMES, demo
from fer_keras.demo_analysis import MAP_SIZE, DemoAnalyzer, gradcam_unavailable

skimage_data = pytest.importorskip("skimage.data")

webdriver = load_script("tools/webdriver.py")

# Small enough to exceed in a test, large enough for the astronaut as PNG.
LIMIT = 2 * 2**20
# Where the astronaut's face is in the 512x512 picture: between the eyes.
FACE_CENTER = (225, 112)
needs_gradcam = pytest.mark.skipif(
    gradcam_unavailable("model.keras") is not None,
    reason=f"{gradcam_unavailable('model.keras')}")


@pytest.fixture(scope="module")
def server(baseline_path):
    server = demo.DemoServer(DemoAnalyzer(baseline_path), port=0, max_upload_bytes=LIMIT)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=60)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The astronaut as JPEG and PNG, the cat, and a text file named .jpg."""
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage_data.astronaut()).save(folder / "astronaut.jpg", quality=95)
    Image.fromarray(skimage_data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(skimage_data.chelsea()).save(folder / "cat.jpg")
    (folder / "notes.jpg").write_text("Shopping list: eggs, milk.")
    return folder


def call(server, path, body=None):
    """(status, decoded JSON answer) of one request; errors are answers too."""
    request = urllib.request.Request(server.url.rstrip("/") + path, data=body,
                                     method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def decode(data_url: str, mime: str) -> np.ndarray:
    prefix = f"data:{mime};base64,"
    assert data_url.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix):]))))


def assert_one_face_around_the_astronaut(answer):
    assert len(answer["faces"]) == 1, answer["faces"]
    face = answer["faces"][0]
    x, y, w, h = face["box"]
    assert x < FACE_CENTER[0] < x + w and y < FACE_CENTER[1] < y + h, face["box"]
    return face


def test_the_page_and_what_it_is_told_first(server):
    with urllib.request.urlopen(server.url, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.headers["Cache-Control"] == "no-store"
        page = response.read().decode()
    assert 'id="photo"' in page and "/api/predict" in page and "getUserMedia" in page
    status, info = call(server, "/api/info")
    assert status == 200
    assert info["classes"] == list(CLASS_NAMES)
    assert info["model"] == "baseline.keras" and info["max_upload_bytes"] == LIMIT
    assert info["gradcam"] == (info["gradcam_note"] is None)
    assert all(info["colors"][name].startswith("#") for name in CLASS_NAMES)


def test_a_photo_gives_each_face_seven_probabilities(server, photos):
    status, answer = call(server, "/api/predict", (photos / "astronaut.jpg").read_bytes())
    assert status == 200
    face = assert_one_face_around_the_astronaut(answer)
    probabilities = face["probabilities"]
    assert list(probabilities) == list(CLASS_NAMES)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert face["label"] == max(probabilities, key=probabilities.get)
    assert face["score"] == pytest.approx(max(probabilities.values()))
    assert (answer["width"], answer["height"]) == (512, 512)
    assert decode(answer["image"], "image/jpeg").shape == (512, 512, 3)
    assert answer["message"] is None


def test_a_photo_without_a_face_says_so(server, photos):
    status, answer = call(server, "/api/predict", (photos / "cat.jpg").read_bytes())
    assert status == 200
    assert answer["faces"] == []
    assert "No face found in this photo" in answer["message"]


def test_a_file_that_is_not_an_image_is_refused_and_the_server_goes_on(server, photos):
    status, answer = call(server, "/api/predict", (photos / "notes.jpg").read_bytes())
    assert status == 400
    assert "is not an image file Pillow can read" in answer["error"]
    status, answer = call(server, "/api/predict", b"")
    assert status == 400 and "The upload is empty" in answer["error"]
    status, answer = call(server, "/api/predict", (photos / "astronaut.png").read_bytes())
    assert status == 200
    assert_one_face_around_the_astronaut(answer)


def test_an_oversized_upload_is_refused_and_the_server_goes_on(server, photos):
    status, answer = call(server, "/api/predict", bytes(LIMIT + 1))
    assert status == 413
    assert "this demo takes photos up to 2 MB" in answer["error"]
    assert f"Received: {LIMIT + 1:,} bytes" in answer["error"]
    status, answer = call(server, "/api/predict", (photos / "astronaut.jpg").read_bytes())
    assert status == 200 and len(answer["faces"]) == 1


def test_an_upload_without_its_length_is_refused(server):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=60)
    connection.putrequest("POST", "/api/predict")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 411
    assert "Content-Length" in json.load(response)["error"]
    connection.close()


def test_unknown_addresses_are_refused(server, photos):
    status, answer = call(server, "/nowhere")
    assert status == 404 and "the demo is at /" in answer["error"]
    status, answer = call(server, "/api/elsewhere", (photos / "cat.jpg").read_bytes())
    assert status == 404 and "/api/predict" in answer["error"]


def test_a_failure_inside_answers_500_and_the_server_goes_on(server, photos, monkeypatch):
    def broken(data):
        raise RuntimeError("simulated fault")

    monkeypatch.setattr(server.analyzer, "predict", broken)
    status, answer = call(server, "/api/predict", (photos / "cat.jpg").read_bytes())
    assert status == 500
    assert "RuntimeError: simulated fault" in answer["error"]
    monkeypatch.undo()
    status, answer = call(server, "/api/predict", (photos / "cat.jpg").read_bytes())
    assert status == 200 and answer["faces"] == []


@needs_gradcam
def test_gradcam_maps_each_face_of_its_predicted_class(server, photos):
    data = (photos / "astronaut.jpg").read_bytes()
    _, prediction = call(server, "/api/predict", data)
    status, answer = call(server, "/api/gradcam", data)
    assert status == 200
    face = assert_one_face_around_the_astronaut(answer)
    assert face["label"] == prediction["faces"][0]["label"]
    assert face["box"] == prediction["faces"][0]["box"]
    crop = decode(face["face"], "image/png")
    heat = decode(face["gradcam"], "image/png")
    assert crop.shape == heat.shape == (MAP_SIZE, MAP_SIZE, 3)
    # The crop is grey; the map colours it.
    assert np.array_equal(crop[..., 0], crop[..., 2])
    assert not np.array_equal(heat[..., 0], heat[..., 2])


def test_gradcam_of_an_export_is_refused_with_the_reason(server, photos, monkeypatch):
    monkeypatch.setattr(server.analyzer, "gradcam_note", "Grad-CAM maps need a .keras model")
    status, answer = call(server, "/api/gradcam", (photos / "astronaut.jpg").read_bytes())
    assert status == 409 and answer["error"] == "Grad-CAM maps need a .keras model"


def test_public_hosts_are_told_apart_from_this_computer():
    assert not any(map(demo.is_public, ("127.0.0.1", "127.0.0.2", "::1", "localhost")))
    assert all(map(demo.is_public, ("0.0.0.0", "::", "192.168.1.20", "demo.example.org")))
    assert demo.megabytes(10 * 2**20) == "10 MB" and demo.megabytes(3 * 2**19) == "1.5 MB"


# --- The page in a real browser -------------------------------------------------------

CHROMIUM = webdriver.find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs chromium and chromedriver on the PATH "
    "(Debian: apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser():
    with webdriver.Chromium(*CHROMIUM, arguments=(
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")) as chromium:
        yield chromium


@needs_chromium
def test_the_page_labels_an_uploaded_photo(server, browser, photos):
    browser.open(server.url)
    assert "Model baseline.keras" in browser.text(browser.wait_for("#model-info")[0])
    browser.upload(browser.wait_for("#photo")[0], photos / "astronaut.png")
    cards = browser.wait_for(".face", timeout=300)
    assert len(cards) == 1
    heading = browser.text(browser.find(".face-label")[0])
    assert heading.startswith("Face 1: ") and heading.split()[2] in CLASS_NAMES
    bars = browser.find(".bar")
    assert [browser.text(bar).split()[0] for bar in bars] == list(CLASS_NAMES)
    assert all(browser.text(bar).split()[1].endswith("%") for bar in bars)
    assert browser.attribute(browser.find("#annotated")[0], "naturalWidth") == 512
    if gradcam_unavailable("model.keras") is None:
        gradcam = browser.wait_for(".gradcam img", timeout=600)[0]
        assert browser.attribute(gradcam, "naturalWidth") == MAP_SIZE
    assert not browser.find("#error:not([hidden])")


@needs_chromium
def test_the_page_says_what_is_wrong_with_a_photo(server, browser, photos, tmp_path):
    browser.open(server.url)
    photo_input = browser.wait_for("#photo")[0]
    browser.upload(photo_input, photos / "notes.jpg")
    browser.wait_for("#error", "notes.jpg: The upload is not an image file Pillow can read")
    assert not browser.find("#result:not([hidden])")
    browser.upload(photo_input, photos / "cat.jpg")
    browser.wait_for("#error", "No face found in this photo", timeout=300)
    assert browser.attribute(browser.wait_for("#annotated")[0], "naturalWidth") == 451
    big = tmp_path / "big.jpg"
    big.write_bytes(bytes(3 * 2**20))
    browser.upload(photo_input, big)
    browser.wait_for("#error", "big.jpg is 3 MB; this demo takes photos up to 2 MB")


@needs_chromium
def test_a_webcam_snapshot_goes_through_the_server(server, browser):
    # Chromium's fake camera: a 640x480 test pattern, without a face.
    browser.open(server.url)
    browser.click(browser.wait_for("#webcam-start")[0])
    browser.click(browser.wait_for("#snapshot:enabled")[0])
    annotated = browser.wait_for("#annotated", timeout=300)[0]
    assert browser.attribute(annotated, "naturalWidth") == 640
    assert browser.attribute(annotated, "naturalHeight") == 480
