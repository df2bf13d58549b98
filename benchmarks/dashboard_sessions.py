"""Several people on the dashboard at once: N headless Chromium sessions press Cartoonize together (issue 25).

Starts the Streamlit server (``streamlit_app.py``) on a free localhost port with an empty compiled cache (so the
first round is as cold as a fresh install: model not loaded, the background int8 warm-up not done), then runs
rounds of N concurrent sessions. In each session the browser ticks "Use sample portraits" and presses Cartoonize
with the default settings (1024 px, PNG); every session's clicks happen together. Recorded per session: seconds
from the click to the first result and to the last, results received, the page's messages (errors, warnings,
queue lines); for the server: its RSS before, during (sampled every 0.25 s) and after each round's sessions
closed, and whether its log has a traceback. The load average goes in too: the machine may be shared.

    .venv/bin/python benchmarks/dashboard_sessions.py --sessions 4 --json benchmarks/dashboard-sessions-epyc.json

Needs Debian's ``chromium`` and ``chromedriver`` and selenium (the browser test's set-up).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict, log_path: Path) -> subprocess.Popen:
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok":
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("streamlit did not come up within 120 s")


class RssSampler:
    """The server's resident memory every ``period`` seconds, in a thread, with the time of each sample."""

    def __init__(self, pid: int, period: float = 0.25):
        self.process, self.period = psutil.Process(pid), period
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self.now()))
            except psutil.Error:
                return
            self._stop.wait(self.period)

    def peak(self, since: float, until: float) -> int:
        return max((rss for t, rss in self.samples if since <= t <= until), default=0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def new_driver(profile: Path):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")),
                            options=options)


PAGE_STATE_JS = """
const buttons = [...document.querySelectorAll('button')];
return {
  downloads: buttons.filter(b => b.innerText.trim().startsWith('Download')).length,
  alerts: [...document.querySelectorAll('[data-testid=stAlert]')].map(e => e.innerText.trim()),
  running: document.querySelectorAll('[data-testid=stStatusWidget]').length > 0,
  progress: [...document.querySelectorAll('[data-testid=stProgress]')].map(e => e.innerText.trim()),
  exceptions: document.querySelectorAll('[data-testid=stException]').length,
  work: [...document.querySelectorAll('[data-testid=stCaptionContainer]')].map(e => e.innerText.trim())
        .filter(t => t.includes(' s of work')),
  warmup: [...document.querySelectorAll('[data-testid=stSidebar] [data-testid=stCaptionContainer]')]
        .map(e => e.innerText.trim()).filter(t => t.includes('int8')),
};
"""


def open_session(url: str, profile: Path, wait_s: float):
    """A browser on the Cartoonize page with "Use sample portraits" ticked."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = new_driver(profile)
    driver.get(url)
    wait = WebDriverWait(driver, wait_s, ignored_exceptions=(StaleElementReferenceException,))
    samples = wait.until(lambda d: next((label for label in d.find_elements(By.TAG_NAME, "label")
                                         if "Use sample portraits" in label.text), None))
    samples.click()
    wait.until(lambda d: samples.find_element(By.TAG_NAME, "input").is_selected())
    # The checkbox's rerun has finished: the Cartoonize button is there and nothing runs.
    wait.until(lambda d: not d.execute_script(PAGE_STATE_JS)["running"])
    return driver


def drive_session(driver, total: int, start: threading.Barrier, timeout_s: float, record: dict) -> None:
    """Click Cartoonize (all sessions pass ``start`` together) and watch the page until the run has ended."""
    from selenium.webdriver.common.by import By

    button = next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Cartoonize")
    start.wait()
    clicked = time.monotonic()
    button.click()
    record.update(clicked=clicked, first_result_s=None, finished_s=None, queue_lines=[], results=0)
    seen_running = False
    while time.monotonic() - clicked < timeout_s:
        time.sleep(0.5)
        try:
            state = driver.execute_script(PAGE_STATE_JS)
        except Exception:  # noqa: BLE001 (a page mid-render; try again)
            continue
        now = time.monotonic() - clicked
        record["results"] = state["downloads"]
        for line in state["alerts"] + state["progress"]:
            if "queue" in line.lower() and line not in record["queue_lines"]:
                record["queue_lines"].append(line)
        if state["downloads"] and record["first_result_s"] is None:
            record["first_result_s"] = round(now, 2)
        seen_running = seen_running or state["running"] or bool(state["progress"])
        ended = any(text.startswith(("Stopped", "Interrupted")) for text in state["alerts"])
        if (state["downloads"] >= total or ended or (seen_running and now > 5)) and not state["running"] \
                and not state["progress"]:
            record["finished_s"] = round(now, 2)
            break
    lines = record["queue_lines"]   # the first three and the last, with how many different ones were shown
    record["queue_lines"] = {"shown": len(lines), "first": lines[:3], "last": lines[-1:]}
    record["messages"] = [text for text in state["alerts"] if "queue" not in text.lower()]
    record["work_line"] = state.get("work", [])
    record["warmup_line"] = state.get("warmup", [])   # the background int8 warm-up, as the sidebar says it
    record["exceptions_on_page"] = state["exceptions"]


def run_round(url: str, sessions: int, total: int, sampler: RssSampler, workdir: Path, name: str,
              timeout_s: float, settle_s: float) -> dict:
    drivers = [open_session(url, workdir / f"{name}-{i}", 180.0) for i in range(sessions)]
    rss_before = sampler.now()
    barrier = threading.Barrier(sessions)
    records = [{} for _ in range(sessions)]
    threads = [threading.Thread(target=drive_session, args=(driver, total, barrier, timeout_s, record))
               for driver, record in zip(drivers, records, strict=True)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = time.monotonic()
    first = min((r["clicked"] + r["first_result_s"] for r in records if r["first_result_s"] is not None),
                default=None)
    rss_first = next((rss for t, rss in sampler.samples if first is not None and t >= first), None)
    for driver in drivers:
        driver.quit()
    closed = time.monotonic()
    time.sleep(settle_s)
    after = [(round(t - closed, 1), rss) for t, rss in sampler.samples if t >= closed]
    for record in records:
        record.pop("clicked", None)
    return {
        "round": name,
        "sessions": records,
        "results_per_session": [r["results"] for r in records],
        "all_results": all(r["results"] == total for r in records),
        "rss_before_round_bytes": rss_before,
        "rss_at_first_result_bytes": rss_first,
        "rss_peak_bytes": sampler.peak(began, ended),
        "rss_after_close_bytes": sampler.now(),
        "rss_after_close_series": after[:: max(1, len(after) // 20)],
        "settle_s": settle_s,
        "loadavg_after": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rounds", nargs="+", default=["cold", "warm"])
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a session may take")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to wait after closing before 'after'")
    parser.add_argument("--json", type=Path, help="where to write the result")
    parser.add_argument("--keep-cache", action="store_true",
                        help="use the usual compiled cache instead of an empty one (then int8 may be ready)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from cartoonkit.hardware import cpu_model_name
    from cartoonkit.samples import sample_photos

    total = len(sample_photos())
    workdir = Path(tempfile.mkdtemp(prefix="cartoonkit-sessions-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not args.keep_cache:
        env["CARTOONKIT_CACHE"] = str(workdir / "cache")
    port = free_port()
    log_path = workdir / "server.log"
    load_before = os.getloadavg()
    server = start_server(port, env, log_path)
    sampler = RssSampler(server.pid)
    result: dict = {"machine": cpu_model_name(), "cpus": os.cpu_count(), "sessions": args.sessions, "photos": total,
                    "settings": "defaults (1024 px, PNG, precision auto)", "loadavg_before": load_before,
                    "rss_server_started_bytes": sampler.now(), "rounds": []}
    try:
        for name in args.rounds:
            outcome = run_round(f"http://127.0.0.1:{port}", args.sessions, total, sampler, workdir, name,
                                args.timeout, args.settle)
            result["rounds"].append(outcome)
            print(json.dumps({k: v for k, v in outcome.items() if k != "rss_after_close_series"}, indent=1),
                  flush=True)
    finally:
        sampler.stop()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    log = log_path.read_text(errors="replace")
    result["server_log_tracebacks"] = log.count("Traceback")
    result["server_log_tail"] = log[-3000:]
    result["loadavg_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("machine", "loadavg_before", "loadavg_after", "server_log_tracebacks")}))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
