"""One real-browser run of the dashboard: streamlit on a free localhost port, driven by headless Chromium.

Needs Debian's `chromium` and `chromium-driver` (installed by `.ci/run`) and selenium; skips without them.
The screenshot lands in `test-output/dashboard.png` for a person to look at.
"""

from __future__ import annotations

import os
import re
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


@pytest.fixture(scope="module")
def server_log(tmp_path_factory):
    """Where the dashboard's server writes its output (stdout and stderr): a test can look for tracebacks."""
    return tmp_path_factory.mktemp("dashboard") / "server.log"


@pytest.fixture(scope="module")
def dashboard(models_dir, server_log):
    port = free_port()
    log = server_log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=paths.project_root(), env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)
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
        log.close()


def new_driver(profile):
    """Headless Chromium with its own profile folder (so several are separate browser sessions)."""
    webdriver = pytest.importorskip("selenium.webdriver")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1000", f"--user-data-dir={profile}",
                 # Chromium's fake webcam (a test pattern) and automatic permission: the camera snapshot test.
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture()
def driver(dashboard, tmp_path):
    driver = new_driver(tmp_path / "profile")
    try:
        driver.get(dashboard)
        yield driver
    finally:
        driver.quit()


def _button(driver, wait, text: str):
    from selenium.webdriver.common.by import By

    return wait.until(lambda d: next((b for b in d.find_elements(By.TAG_NAME, "button") if b.text.strip() == text),
                                     None))


def _take_camera_photo(driver, wait, attempts: int = 6):
    """Click "Take Photo" until the widget shows "Clear photo". A click can be lost: the button is there before
    the fake camera's stream is live, and a rerun of the page (the sidebar's int8 warm-up line) can re-render it
    between finding and clicking. One photo taken is what the test needs."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def button(d, text):
        return next((b for b in d.find_elements(By.TAG_NAME, "button") if b.text.strip() == text and b.is_enabled()),
                    None)

    for _ in range(attempts):
        found = wait.until(lambda d: button(d, "Clear photo") or button(d, "Take Photo"))
        try:
            if found.text.strip() == "Clear photo":
                return
            found.click()
            WebDriverWait(driver, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda d: button(d, "Clear photo"))
            return
        except (StaleElementReferenceException, TimeoutException):
            continue  # the click was lost: look again
    pytest.fail(f'the camera widget never showed "Clear photo" after {attempts} clicks on "Take Photo"')


def test_upload_a_photo_and_get_the_cartoon(driver, shared_images, tmp_path):
    from PIL import Image
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "portrait.jpg"
    Image.open(shared_images / "wb_actress2.jpg").convert("RGB").resize((300, 400)).save(photo)
    wait = WebDriverWait(driver, 90, ignored_exceptions=(StaleElementReferenceException,))  # elements re-render
    upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]"))
    upload.send_keys(str(photo))
    wait.until(lambda d: "portrait.jpg" in d.page_source)
    _button(driver, wait, "Cartoonize").click()
    wait.until(lambda d: any("Download" in b.text for b in d.find_elements(By.TAG_NAME, "button")))
    images = driver.find_elements(By.CSS_SELECTOR, "img")
    assert len(images) >= 2  # before and after
    OUTPUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUTPUT / "dashboard.png"))
    assert (OUTPUT / "dashboard.png").stat().st_size > 10_000

    # The before/after view: drag its divider with the keyboard and the cartoon's visible part follows.
    frame = wait.until(lambda d: next((f for f in d.find_elements(By.TAG_NAME, "iframe")
                                       if "before" in (f.get_attribute("srcdoc") or "")), None))
    driver.switch_to.frame(frame)
    try:
        divider = wait.until(lambda d: d.find_element(By.ID, "divider"))
        assert len(driver.find_elements(By.TAG_NAME, "img")) == 2
        for _ in range(20):
            divider.send_keys(Keys.ARROW_LEFT)
        clip = driver.find_element(By.ID, "after").value_of_css_property("clip-path")
        assert float(divider.get_attribute("value")) < 50 and "50%" not in clip, clip
    finally:
        driver.switch_to.default_content()


def test_landing_page_shows_a_before_after_and_the_camera_snapshot_is_cartoonized(driver):
    """The first screen shows what the tool does; a snapshot from (Chromium's fake) camera is cartoonized."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 120, ignored_exceptions=(StaleElementReferenceException,))
    wait.until(lambda d: "turns photos of people into cartoons" in d.page_source)
    wait.until(lambda d: any("sample photo" in (f.get_attribute("srcdoc") or "")
                             for f in d.find_elements(By.TAG_NAME, "iframe")))
    wait.until(lambda d: next((label for label in d.find_elements(By.TAG_NAME, "label")
                               if "Use the camera" in label.text), None)).click()
    _take_camera_photo(driver, wait)
    _button(driver, wait, "Cartoonize").click()
    download = wait.until(lambda d: next((b for b in d.find_elements(By.TAG_NAME, "button")
                                          if b.text.startswith("Download camera-")), None))
    assert download.text.endswith(".png")
    OUTPUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUTPUT / "dashboard-camera.png"))


def test_stop_mid_run_keeps_the_finished_photos(driver, shared_images):
    """The Stop click reruns the script while the run is busy (Streamlit's fast reruns): the new run must stop the
    old one after its current photo and show what was done, not an empty or frozen page."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from cartoonkit.samples import sample_photos

    total = len(sample_photos())
    if total < 3:
        pytest.skip("needs the shared sample portraits")
    wait = WebDriverWait(driver, 120, ignored_exceptions=(StaleElementReferenceException,))  # elements re-render
    wait.until(lambda d: next((label for label in d.find_elements(By.TAG_NAME, "label")
                               if "Use sample portraits" in label.text), None)).click()
    _button(driver, wait, "Cartoonize").click()  # at 1024 px: seconds per photo on a CPU
    wait.until(lambda d: f"1 of {total} photos" in d.page_source)
    _button(driver, wait, "Stop and keep results").click()
    message = wait.until(lambda d: next((e.text for e in d.find_elements(By.CSS_SELECTOR, "[data-testid=stAlert]")
                                         if "Stopped by you" in e.text), None))
    done = int(message.split(" photos done")[0].split()[-3])
    assert 1 <= done < total, message
    wait.until(lambda d: sum(b.text.startswith("Download") for b in d.find_elements(By.TAG_NAME, "button")) == done)


def test_three_sessions_at_once_each_get_every_photo(dashboard, server_log, tmp_path):
    """Three browser sessions press Cartoonize on the sample portraits at the same moment (512 px, to be quick): the
    shared engine takes their photos in turn, and every photo of every session arrives, none stopped or
    interrupted, with no exception on a page and no traceback in the server's log."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from cartoonkit.samples import sample_photos

    total = len(sample_photos())
    drivers = []
    try:
        for index in range(3):
            drivers.append(new_driver(tmp_path / f"profile-{index}"))
            drivers[-1].get(f"{dashboard}/?resolution=512")
        waits = [WebDriverWait(d, 180, ignored_exceptions=(StaleElementReferenceException,)) for d in drivers]
        for wait in waits:
            samples = wait.until(lambda d: next((label for label in d.find_elements(By.TAG_NAME, "label")
                                                 if "Use sample portraits" in label.text), None))
            samples.click()
            wait.until(lambda d, samples=samples: samples.find_element(By.TAG_NAME, "input").is_selected()
                       and not d.find_elements(By.CSS_SELECTOR, "[data-testid=stStatusWidget]"))
        buttons = [_button(driver, wait, "Cartoonize") for driver, wait in zip(drivers, waits, strict=True)]
        for button in buttons:   # as close together as three browsers allow
            button.click()
        for index, (driver, wait) in enumerate(zip(drivers, waits, strict=True)):
            wait.until(lambda d: sum(b.text.startswith("Download") for b in d.find_elements(By.TAG_NAME, "button"))
                       == total and not d.find_elements(By.CSS_SELECTOR, "[data-testid=stStatusWidget]"))
            alerts = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-testid=stAlert]")]
            assert not [a for a in alerts if a.startswith(("Stopped", "Interrupted"))], (index, alerts)
            assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=stException]"), index
            # One before/after view per photo, each at the resolution from the link (the long side 512 px).
            views = [set(re.findall(r"after \((\d+)x(\d+)\)", f.get_attribute("srcdoc") or ""))
                     for f in driver.find_elements(By.TAG_NAME, "iframe")]
            views = [found for found in views if found]
            assert len(views) == total and all(max(map(int, size)) == 512 for found in views for size in found)
    finally:
        for driver in drivers:
            driver.quit()
    assert "Traceback" not in server_log.read_text(errors="replace")


def test_video_page_plays_the_cartoon_clip(driver, dashboard):
    """The Video page in a real browser: the sample clip's first frames become a <video> the browser can load."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from cartoonkit.dashboard import video_page

    if video_page.sample_clip() is None:
        pytest.skip("../shared/videos/dct_input.mp4 is not beside the checkout")
    pytest.importorskip("av")
    driver.get(f"{dashboard}/video")
    wait = WebDriverWait(driver, 120, ignored_exceptions=(StaleElementReferenceException,))
    seconds = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='Seconds to process']"))
    seconds.send_keys(Keys.CONTROL, "a")
    seconds.send_keys("0.2", Keys.ENTER)  # five frames: seconds of CPU work at the sidebar's resolution
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='Seconds to process']")
               .get_attribute("value") == "0.20")
    wait.until(lambda d: next((label for label in d.find_elements(By.TAG_NAME, "label")
                               if "Use the sample clip" in label.text), None)).click()
    _button(driver, wait, "Cartoonize clip").click()
    video = wait.until(lambda d: next(iter(d.find_elements(By.TAG_NAME, "video")), None))
    assert video.get_attribute("src")
    # HAVE_METADATA or better: the browser fetched the clip and understood its container and duration.
    ready = wait.until(lambda d: d.execute_script("const v = document.querySelector('video');"
                                                  "return v && v.readyState >= 1 ? v.duration : null;"))
    assert ready == pytest.approx(0.2, abs=0.05)
    OUTPUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUTPUT / "dashboard-video.png"))


def test_live_page_cartoonizes_the_fake_camera_and_reports_a_frame_rate(driver, dashboard):
    """The Live page over real WebRTC: Chromium's fake camera in, processed frames back, a frame rate on the page."""
    pytest.importorskip("streamlit_webrtc")
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{dashboard}/live")
    wait = WebDriverWait(driver, 120, ignored_exceptions=(StaleElementReferenceException,))
    frame = wait.until(lambda d: next((f for f in d.find_elements(By.TAG_NAME, "iframe")
                                       if "webrtc" in (f.get_attribute("title") or "").lower()), None))
    driver.switch_to.frame(frame)
    try:
        _button(driver, wait, "START").click()
        # The processed stream plays in the component's <video>: frames came back over WebRTC.
        wait.until(lambda d: d.execute_script(
            "const v = document.querySelector('video'); return v && v.videoWidth > 0 && v.currentTime > 0"))
    finally:
        driver.switch_to.default_content()
    def stats_line(d):   # once a few frames are through, so that a rate can be measured
        line = next((e.text for e in d.find_elements(By.TAG_NAME, "p")
                     if "frames per second" in e.text and " processed" in e.text), None)
        return line if line and int(line.split(" processed")[0].split()[-1]) >= 3 else None

    line = wait.until(stats_line)
    fps = float(line.split("Live:")[-1].split("frames per second")[0])
    received = int(line.split(" received")[0].split()[-1])
    assert fps > 0 and received >= 3, line
    OUTPUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUTPUT / "dashboard-live.png"))


def test_every_page_opens_and_is_screenshotted(driver, dashboard):
    """Each page at its own URL renders its title without an exception box; a screenshot of each is kept."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from cartoonkit.dashboard import PAGES

    shots = OUTPUT / "pages"
    shots.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(driver, 90, ignored_exceptions=(StaleElementReferenceException,))
    for index, (title, slug) in enumerate(PAGES.items()):
        driver.get(f"{dashboard}/{'' if index == 0 else slug}")
        heading = "Compare settings" if title == "Compare" else title
        wait.until(lambda d, heading=heading: any(h.text.strip() == heading
                                                  for h in d.find_elements(By.TAG_NAME, "h1")))
        # Drawn to the end: the script no longer runs and the sidebar's widgets are there.
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-testid=stStatusWidget]")
                   and any("Model" in label.text for label in d.find_elements(By.TAG_NAME, "label")))
        time.sleep(1.0)   # charts and iframes paint after the script's last message
        assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=stException]"), title
        driver.save_screenshot(str(shots / f"{slug}.png"))
        assert (shots / f"{slug}.png").stat().st_size > 10_000
