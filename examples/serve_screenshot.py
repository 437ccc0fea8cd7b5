"""Make docs/serve.png: the `derain serve` page after deraining the bundled example.

Needs the serve extra, selenium, and Debian's chromium + chromium-driver. Starts
`derain serve` (shipped danet weights) on a free loopback port, drops
examples/rocket_rain.png on the page, waits for the result and saves a screenshot.

    python examples/serve_screenshot.py [--out docs/serve.png]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def wait(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "derain", "serve", "--port", "0", "--device", "cpu"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            found: list[str] = []

            def started() -> bool:
                found[:] = re.findall(r"http://127\.0\.0\.1:\d+/", log.read_text())
                return bool(found)

            wait(started, "the server")
            url = found[0]
            wait(lambda: _health(url), "/health")
            options = webdriver.ChromeOptions()
            options.binary_location = shutil.which("chromium") or "chromium"
            for arg in ("--headless=new", "--no-sandbox", "--window-size=1280,760"):
                options.add_argument(arg)
            driver = webdriver.Chrome(
                service=Service(shutil.which("chromedriver") or "chromedriver"), options=options
            )
            try:
                driver.get(url)
                wait(lambda: driver.find_element(By.ID, "model").get_attribute("value"), "models")
                driver.find_element(By.ID, "pick").send_keys(str(ROOT / "examples/rocket_rain.png"))
                wait(
                    lambda: (
                        driver.find_element(By.CSS_SELECTOR, "#jobs li").get_attribute("data-state")
                        == "done"
                    ),
                    "the result",
                )
                time.sleep(0.5)  # let the result image paint
                args.out.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(args.out))
                print(f"wrote {args.out}")
            finally:
                driver.quit()
        finally:
            server.terminate()
            server.wait(timeout=30)


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
