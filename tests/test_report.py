"""`gan-lab report`: the content of a run's and a sweep's report, mixed protocols flagged, bad paths, and the
page as a real headless browser (Debian's chromium) renders it."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from gan_lab.eval import evaluate
from gan_lab.metrics.protocol import of_key
from gan_lab.errors import ConfigError
from gan_lab.report import build, write
from gan_lab.report_render import render
from tests.conftest import TINY
from tests.test_classifier import compose_app
from tests.test_cli import gan_lab

pytest.importorskip("matplotlib", reason="gan-lab report's plots need matplotlib: pip install -e '.[report]'")

# Classifier features: offline, and a classifier that trains in a fraction of a second.
EVAL = ["eval.features=classifier", "eval.metrics=[fid,kid]", "eval.batch_size=20", "eval.available.kid.subset_size=10",
        "eval.classifier.steps=5", "eval.classifier.batch_size=16", "eval.classifier.width=8"]


def eval_run(run_dir: Path, cache: Path, *overrides: str) -> dict:
    return evaluate(compose_app("eval", [f"ckpt={run_dir}", *EVAL, f"eval.classifier.cache_dir={cache}", *overrides]))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A 2-job sweep (loss=minimax,nonsaturating), each job evaluated with the same protocol."""
    tmp = tmp_path_factory.mktemp("sweep")
    out = gan_lab("train", "-m", "loss=minimax,nonsaturating", *TINY, "dataset.count=64", cwd=tmp,
                  env={"OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    (path,) = (tmp / "outputs" / "multirun").glob("*/*")
    for job in ("0", "1"):
        eval_run(path / job, tmp / "classifiers", "eval.num_samples=40")
    return path


def test_sweep_report_content(sweep, tmp_path):
    report = build(sweep)
    assert report.kind == "sweep" and [run.name for run in report.runs] == ["0", "1"]
    # Config: only the keys that differ, the shared ones collapsed.
    assert report.config.columns == ["job", "loss._target_"]
    assert [row[1].rsplit(".", 1)[1] for row in report.config.rows] == ["Minimax", "NonSaturating"]
    assert "loss:" not in report.shared_config and "batch_size: 8" in report.shared_config
    # Environment: recorded at train time, shared by both jobs except when they started.
    env = report.shared_environment
    assert env["torch"] and env["python"] and env["device"] == "cpu" and env["cpu"] and "git_commit" in env
    # Metrics: one row per job, one column per metric (a single protocol), the differing config beside.
    table = report.metrics
    assert table.columns == ["job", "loss._target_", "step", "classifier-FID", "classifier-KID", "classifier-KID std"]
    assert [row[0] for row in table.rows] == ["0", "1"] and all(row[2] == 4 for row in table.rows)
    for job, row in zip(("0", "1"), table.rows):
        (newest,) = sorted((sweep / job / "eval").glob("*.json"))
        assert row[3] == json.loads(newest.read_text())["metrics"]["classifier-FID"]
    assert table.notes == []
    shared = report.shared_protocol  # shown under the table
    assert shared["features.extractor"] == "classifier" and shared["set.generated"] == shared["set.real"] == 40
    # Curves from the TensorBoard events, the newest grid of each name.
    for run in report.runs:
        assert [step for step, _ in run.scalars["loss/G"]] == [2, 4] and "loss/D" in run.scalars
        assert [(name, step) for name, step, _ in run.grids] == [("fixed", 4)]

    files = render(report, tmp_path)
    page = files["html"].read_text()
    assert page.count("<svg") == len(report.runs[0].scalars) and page.count("data:image/png;base64,") == 2
    assert re.findall(r'(?:src|href)="(?!data:|#)', page) == [] and "url(http" not in page  # self-contained
    md = files["md"].read_text()
    assert "](report_files/loss_G.svg)" in md and (tmp_path / "report_files" / "loss_G.svg").is_file()
    grid_link = md.split("![fixed (step 4)](", 1)[1].split(")", 1)[0]
    assert (tmp_path / grid_link).resolve() == (sweep / "0" / "samples" / "fixed_0000004.png").resolve()


def test_mixed_protocols_never_share_a_column(sweep, tmp_path):
    path = tmp_path / "sweep"
    shutil.copytree(sweep, path)
    eval_run(path / "1", tmp_path / "classifiers", "eval.num_samples=30")  # job 1's newest: 30 samples, not 40
    table = build(path).metrics
    assert table.columns[3:] == ["classifier-FID [A]", "classifier-FID [B]", "classifier-KID [A]",
                                 "classifier-KID [B]", "classifier-KID std [A]", "classifier-KID std [B]"]
    fid_a, fid_b = ([row[i] for row in table.rows] for i in (3, 4))
    assert fid_a[1] is None and fid_b[0] is None and None not in (fid_a[0], fid_b[1])
    (note,) = table.notes  # one note for the three metrics split the same way
    assert "set.generated" not in build(path).shared_protocol
    assert note.startswith("classifier-FID, classifier-KID, classifier-KID std: measured under 2 protocols")
    # What differs: the counts and so the real features compared with (hashes shortened).
    assert re.search(r"\[A\] 0: features.reference_sha256=[0-9a-f]{12}\.\.\.; set.generated=40; set.real=40 \| "
                     r"\[B\] 1: features.reference_sha256=[0-9a-f]{12}\.\.\.; set.generated=30; set.real=30$", note)

    # The protocol names the feature network's weights and the reference features by hash.
    newest = json.loads(sorted((path / "1" / "eval").glob("*.json"))[-1].read_text())
    flat = of_key(newest["protocol"], "classifier-FID")
    assert flat["features.extractor"] == "classifier" and len(flat["features.weights_sha256"]) == 64
    assert len(flat["features.reference_sha256"]) == 64 and flat["generator"] == "live"
    assert "features.weights" not in flat  # a path: compared by its hash
    assert of_key(None, "FID") == {"protocol": "not recorded"}  # reports written before provenance


def test_cli_run_report_and_bad_paths(sweep, tmp_path):
    out = gan_lab("report", f"path={sweep / '0'}", f"out={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    page = (tmp_path / "run" / "report.html").read_text()
    assert "config.yaml (resolved)" in page and "Minimax" in page and (tmp_path / "run" / "report.md").is_file()
    out = gan_lab("report", f"path={tmp_path / 'missing'}", cwd=tmp_path)
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 1 and "Traceback" not in text
    assert f"path={tmp_path / 'missing'} is neither a run directory" in text
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="is neither a run directory"):
        write(compose_app("report", [f"path={tmp_path / 'empty'}"]))
    with pytest.raises(ConfigError, match="path= is missing"):
        write(compose_app("report", []))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "run"] and not any((tmp_path / "empty").iterdir())


# -- the page in a real browser --

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class DevToolsError(Exception):
    """An error answer of the DevTools protocol."""


class Browser:
    """Headless chromium driven through the DevTools protocol on a pipe (``--remote-debugging-pipe``: it
    reads JSON commands on fd 3 and answers on fd 4, each message ending in NUL), so nothing beyond the
    standard library and the browser is needed."""

    def __init__(self, profile: Path):
        commands_r, self._w = os.pipe()
        self._r, answers_w = os.pipe()
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{commands_r} 4>&{answers_w}', CHROMIUM, *FLAGS,
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(commands_r, answers_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_r)
        os.close(answers_w)
        self._buffer, self._id, self.session = b"", 0, None

    def send(self, method: str, session: bool = True, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._r, 1 << 20)
                assert chunk, f"chromium closed the pipe (exit status {self.proc.poll()})"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise DevToolsError(answer["error"])
                return answer["result"]

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", session=False, url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", session=False, targetId=target, flatten=True)["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        self.send("Page.navigate", url=url)
        for _ in range(600):  # the page's load, checked every 0.05 s (at most 30 s)
            try:
                if self.js(f"document.URL === {json.dumps(url)} && document.readyState === 'complete'"):
                    return
                self.js("new Promise(r => setTimeout(r, 50))")
            except DevToolsError:  # asked while the blank page made way for the report
                pass
        raise AssertionError(f"{url} did not finish loading")

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed, released) at the middle of the element."""
        x, y = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView(); "
                       f"const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False)
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self._w)
            os.close(self._r)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not found (Debian: apt-get install chromium); the browser "
                                             "test of the report page needs it")
def test_page_renders_in_a_headless_browser(sweep, tmp_path):
    report = build(sweep)
    page = render(report, tmp_path / "out")["html"]
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        sizes = browser.js("[...document.querySelectorAll('.plots svg')].map(e => "
                           "[e.getBoundingClientRect().width, e.getBoundingClientRect().height])")
        assert len(sizes) == len(report.runs[0].scalars) and all(w > 100 and h > 100 for w, h in sizes)
        images = browser.js("[...document.querySelectorAll('.grids img')].map(e => [e.naturalWidth, e.width])")
        assert len(images) == 2 and all(natural > 0 and shown >= natural for natural, shown in images)

        fids = {row[0]: row[3] for row in report.metrics.rows}
        header = "table.sortable th:nth-child(4)"
        assert browser.js(f"document.querySelector('{header}').textContent") == "classifier-FID"
        jobs = "[...document.querySelectorAll('table.sortable')[0].tBodies[0].rows].map(r => r.cells[0].textContent)"
        browser.click(header)
        assert browser.js(jobs) == sorted(fids, key=fids.get)
        browser.click(header)
        assert browser.js(jobs) == sorted(fids, key=fids.get, reverse=True)

        shot = browser.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
    finally:
        browser.close()
    image = Image.open(io.BytesIO(base64.b64decode(shot))).convert("L")
    (tmp_path / "page.png").write_bytes(base64.b64decode(shot))
    assert image.height > 900 and ImageStat.Stat(image).stddev[0] > 10  # a long page, not blank
