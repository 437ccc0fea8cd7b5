"""Headless Debian Chromium for the tests that look at a page: the serve page, the eval report."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest


def chromium(downloads: Path) -> Any:
    """Headless Debian Chromium through Selenium, cut off from every host but 127.0.0.1."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium and chromium-driver (see .ci/run)")
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install them")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        # Offline: any name but the loopback fails to resolve, so a CDN would break the page.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)
