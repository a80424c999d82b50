"""Headless Chromium driven through chromedriver, with the standard library.

chromedriver speaks the W3C WebDriver protocol: JSON over HTTP. A dozen
commands (open a page, find an element, type a file's path into a file
input, read text, take a screenshot) cover what the web demo's tests and its
screenshot need, so no client package (selenium) is installed for them.
Chromium and chromedriver come from the system's packages (Debian:
`apt-get install chromium chromium-driver`).
"""

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# The key under which WebDriver hands out element references.
_ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def find_chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) paths where both are installed, else None."""
    browser = next((path for path in map(shutil.which, _BROWSERS) if path), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


class WebDriverError(RuntimeError):
    """An error answered by chromedriver, with its message."""


class Chromium:
    """One headless Chromium window; a context manager that closes it.

    Args:
        browser: the Chromium binary.
        driver: the chromedriver binary (of the same version).
        size: the window's (width, height) in CSS pixels.
        arguments: more command-line switches for Chromium, such as
            "--use-fake-device-for-media-stream" for a fake webcam.
    """

    def __init__(self, browser: str, driver: str, size: tuple[int, int] = (1100, 800),
                 arguments: tuple[str, ...] = ()):
        port = _free_port()
        self._driver = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self._url = f"http://127.0.0.1:{port}"
        try:
            self._wait_for_driver()
            options = {"binary": browser, "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={size[0]},{size[1]}", *arguments]}
            session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": options}}})
        except BaseException:
            self._driver.kill()
            self._driver.wait()
            raise
        self._session = f"/session/{session['sessionId']}"

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Closes the browser and stops chromedriver."""
        try:
            self._call("DELETE", self._session)
        finally:
            self._driver.terminate()
            self._driver.wait(timeout=30)

    def open(self, url: str) -> None:
        self._call("POST", f"{self._session}/url", {"url": url})

    def find(self, css: str) -> list[str]:
        """The elements matching a CSS selector, as WebDriver references."""
        found = self._call("POST", f"{self._session}/elements",
                           {"using": "css selector", "value": css})
        return [element[_ELEMENT] for element in found]

    def wait_for(self, css: str, text: str = "", timeout: float = 120.0) -> list[str]:
        """The visible elements matching `css` (one of them showing `text`)
        once there are any; TimeoutError after `timeout` seconds, with what the
        page shows instead."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.find(css) if self.displayed(e)]
            if found and any(text in self.text(e) for e in found):
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"No visible {css!r}{f' showing {text!r}' if text else ''} after "
                    f"{timeout:g} s. The page shows: {self.text(self.find('body')[0])!r}")
            time.sleep(0.2)

    def text(self, element: str) -> str:
        return self._call("GET", f"{self._session}/element/{element}/text")

    def displayed(self, element: str) -> bool:
        return self._call("GET", f"{self._session}/element/{element}/displayed")

    def attribute(self, element: str, name: str) -> str | None:
        return self._call("GET", f"{self._session}/element/{element}/property/{name}")

    def click(self, element: str) -> None:
        self._call("POST", f"{self._session}/element/{element}/click", {})

    def upload(self, file_input: str, path: str | Path) -> None:
        """Chooses a file in an `<input type="file">`, as a user would."""
        self._call("POST", f"{self._session}/element/{file_input}/value",
                   {"text": str(Path(path).resolve())})

    def screenshot(self, path: str | Path) -> Path:
        """A PNG of the window's visible part."""
        path = Path(path)
        path.write_bytes(base64.b64decode(self._call("GET", f"{self._session}/screenshot")))
        return path

    def _wait_for_driver(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._call("GET", "/status").get("ready"):
                    return
            except (OSError, WebDriverError):
                pass
            if self._driver.poll() is not None or time.monotonic() > deadline:
                raise WebDriverError(f"chromedriver did not start (exit code "
                                     f"{self._driver.poll()}) within {timeout:g} s")
            time.sleep(0.1)

    def _call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(
            self._url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as err:
            value = json.load(err).get("value", {})
            raise WebDriverError(f"{method} {path}: {value.get('error')}: "
                                 f"{value.get('message', '')[:500]}") from None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
