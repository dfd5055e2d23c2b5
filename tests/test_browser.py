"""The feature inspector in a real JupyterLab, driven by headless Chromium.

The widget tests elsewhere drive the inspector as a Python object; this one checks what a person sees: JupyterLab
on a free local port with the ``rlgen`` kernel, notebook 03 opened from a copy of ``notebooks/`` (so nothing
tracked is written), params chosen by ``$RLGEN_PARAMS`` (the notebook's parameters cell says None), every cell
run from the Run menu, then the inspector's controls must exist, and choosing another latent must change the
contexts shown. A screenshot is saved under the run folder. Chromium is Debian's (``make test`` installs it
when it can); Playwright drives it through ``executable_path`` and never downloads a browser.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import smoke_params_file

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, smoke_twin):
    """A copy of the session's second smoke run (``smoke_twin``: notebooks 01–06, so nothing this test re-executes
    writes where the determinism test reads), then JupyterLab serving a copy of notebooks/ with ``RLGEN_PARAMS``
    pointing at that copy. Yields (url, token, params)."""
    if _chromium() is None:
        pytest.skip("no Chromium binary: `make test` installs Debian's chromium with apt when run as root; "
                    "here it is missing and could not be installed")
    pytest.importorskip("playwright.sync_api", reason="playwright is pinned in requirements.txt: run `make setup`")
    folder = tmp_path_factory.mktemp("browser")
    shutil.copytree(smoke_twin.run_dir, folder / "runs" / smoke_twin.name)
    params = smoke_params_file(folder)
    served = folder / "notebooks"
    shutil.copytree(ROOT / "notebooks", served, ignore=shutil.ignore_patterns("*.py"))
    port, token = _free_port(), "rlgen-browser-test"
    settings = folder / "lab-settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')  # no news toast over the screenshots
    env = {**os.environ, "RLGEN_PARAMS": str(params), "JUPYTER_CONFIG_DIR": str(folder / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(folder / "jupyter-runtime"), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / "lab-workspaces")}
    env.pop("RLGEN_PROGRESS", None)
    log = open(folder / "lab.log", "w")
    proc = subprocess.Popen([str(BIN / "jupyter"), "lab", "--no-browser", "--allow-root", f"--port={port}",
                             "--ip=127.0.0.1", f"--ServerApp.token={token}", f"--ServerApp.root_dir={served}",
                             "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=True"],
                            cwd=served, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start: " + (folder / "lab.log").read_text()[-2000:])
    try:
        yield url, token, params
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def _open_and_run_all(page, url: str, token: str, notebook: str, ready: str) -> None:
    """Open ``notebook`` in JupyterLab, run every cell from the Run menu, wait for ``ready`` (a selector)."""
    # A workspace of its own per notebook: JupyterLab restores the tabs of the default workspace, so a second
    # test would see the first notebook's (hidden) kernel indicator and wait on it forever.
    workspace = Path(notebook).stem.replace("_", "-")
    page.goto(f"{url}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={token}", timeout=120_000)
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']:visible", timeout=120_000)
    time.sleep(2)  # let the kernel settle before running
    started = ".jp-InputPrompt:text-matches('\\[(\\*|\\d+)\\]')"   # a cell queued, running or run
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    for _ in range(3):   # a menu click can land before the menu is ready and run nothing (seen once: no cell ran)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_selector(started, timeout=30_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")   # close a menu left open
    else:
        raise AssertionError(f"{notebook}: Run All Cells started no cell in three tries")
    page.wait_for_selector(ready, timeout=300_000)


def _view_text(page) -> str:
    """The inspector's HTML view: the widget output holding 'top contexts'."""
    return page.locator(".widget-html-content", has_text="top contexts").first.inner_text()


def test_inspector_renders_and_responds_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    url, token, params = lab
    run_dir = Path(yaml.safe_load(params.read_text())["run_root"]) / "smoke"
    shot = run_dir / "browser" / "03_inspector.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        _open_and_run_all(page, url, token, "03_crosscoder.ipynb", ".widget-html-content:has-text('top contexts')")

        out = page.locator(".jp-OutputArea-output", has_text="params:").first.text_content() or ""
        assert str(params) in out, f"the notebook did not open the params named by $RLGEN_PARAMS: {out}"
        sort_by = page.locator(".widget-dropdown", has_text="sort by")
        latent = page.locator(".widget-inline-hbox", has_text="latent").locator("input").last
        assert sort_by.count() >= 1 and latent.count() == 1, "the inspector's controls are missing"
        page.locator(".widget-html-content", has_text="top contexts").first.scroll_into_view_if_needed()
        before = _view_text(page)
        shown = int(latent.input_value())
        latent.fill(str(shown + 7))
        latent.press("Enter")
        page.wait_for_function(
            "(old) => { const v = [...document.querySelectorAll('.widget-html-content')]"
            ".find(e => e.innerText.includes('top contexts')); return v && v.innerText !== old; }",
            arg=before, timeout=60_000)
        after = _view_text(page)
        assert f"latent {shown + 7}" in after and after != before
        page.locator(".jp-OutputArea-output:has(.widget-html-content:has-text('top contexts'))").first.screenshot(
            path=str(shot))
        browser.close()
    assert shot.stat().st_size > 10_000, "the screenshot is (nearly) empty"
    assert not errors, f"JavaScript errors in the page: {errors}"


def test_intervention_explorer_renders_and_responds_in_jupyterlab(lab):
    """Notebook 06's explorer: switching the model to RL and pressing generate redraws the generations."""
    from playwright.sync_api import sync_playwright

    url, token, params = lab
    shot = Path(yaml.safe_load(params.read_text())["run_root"]) / "smoke" / "browser" / "06_explorer.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    view = ".widget-html-content:has-text('without')"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        _open_and_run_all(page, url, token, "06_interventions.ipynb", view)
        page.locator(view).first.scroll_into_view_if_needed()
        before = page.locator(view).first.inner_text()
        assert " in base" in before.splitlines()[0], before[:300]
        page.locator(".widget-toggle-button", has_text="rl").first.click()
        page.locator(".widget-button", has_text="generate").first.click()
        page.wait_for_function(
            "(old) => { const v = [...document.querySelectorAll('.widget-html-content')]"
            ".find(e => e.innerText.includes('without')); return v && v.innerText !== old; }",
            arg=before, timeout=120_000)
        after = page.locator(view).first.inner_text()
        assert " in base" not in after.splitlines()[0] and "with" in after, after[:300]
        page.locator(f".jp-OutputArea-output:has({view})").first.screenshot(path=str(shot))
        browser.close()
    assert shot.stat().st_size > 5_000, "the screenshot is (nearly) empty"
    assert not errors, f"JavaScript errors in the page: {errors}"
