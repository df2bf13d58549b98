"""One real-browser run of the dashboard: streamlit on a free localhost port, driven by headless Chromium.

Needs Debian's `chromium` and `chromium-driver` (installed by `.ci/run`) and selenium; skips without them.
The screenshot lands in `test-output/dashboard.png` for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from cartoonkit import paths

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
OUTPUT = paths.project_root() / "test-output"

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian chromium/chromium-driver missing")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def dashboard(models_dir):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=paths.project_root(), env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not come up within 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_upload_a_photo_and_get_the_cartoon(dashboard, shared_images, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "portrait.jpg"
    Image.open(shared_images / "wb_actress2.jpg").convert("RGB").resize((300, 400)).save(photo)

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.get(dashboard)
        wait = WebDriverWait(driver, 90)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]"))
        upload.send_keys(str(photo))
        wait.until(lambda d: "portrait.jpg" in d.page_source)
        button = wait.until(lambda d: next(b for b in d.find_elements(By.TAG_NAME, "button")
                                           if b.text.strip() == "Cartoonize"))
        button.click()
        wait.until(lambda d: any("Download" in b.text for b in d.find_elements(By.TAG_NAME, "button")))
        images = driver.find_elements(By.CSS_SELECTOR, "img")
        assert len(images) >= 2  # before and after
        OUTPUT.mkdir(exist_ok=True)
        driver.save_screenshot(str(OUTPUT / "dashboard.png"))
        assert (OUTPUT / "dashboard.png").stat().st_size > 10_000
    finally:
        driver.quit()
