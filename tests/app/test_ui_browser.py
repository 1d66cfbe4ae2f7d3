"""End to end: a real two-job sweep, a real ``mlflow server`` and its UI in headless Chromium.

The sweep ``downsample=max,pnorm`` fills a private SQLite store; ``mlflow server`` serves it
on 127.0.0.1; Debian's Chromium (installed by the set-up when missing) opens the experiment
page, expands the sweep's parent run, ticks both children and clicks Compare, the way a person
would. Both pages must show the two runs, their ``downsample.name`` and their ``val_accuracy``
next to each other. The link the sweep printed (its parent run) must open that run in MLflow's
"Model training" workflow on a fresh browser profile, not the GenAI one MLflow 3 starts in.
Full-page screenshots are kept under ``tmp_path`` and ``runs/ui-screenshots``.

Deselect deliberately with ``-m "not browser"``; a Chromium that cannot be installed fails.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from kerascnn.app.tracking.links import UI_ADDRESS, experiment_url
from tests.helpers.browser import CHROMIUM, LAUNCH_ARGS, ensure_chromium
from tests.helpers.runs import REPO
from tests.helpers.servers import mlflow_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = REPO / "runs" / "ui-screenshots"
VIEWPORT = {"width": 1600, "height": 1000}
TIMEOUT_MS = 60_000  # one CPU-starved machine renders the React app slowly


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's ``/usr/bin/chromium``, installed with apt-get when missing (never skipped)."""
    try:
        seconds = ensure_chromium(timeout=600)
    except RuntimeError as err:
        pytest.fail(f"Chromium is needed by the browser test and could not be installed: {err}\n"
                    "Install it (`apt-get install chromium`) or deselect the test on purpose "
                    "with -m 'not browser'.", pytrace=False)
    if seconds:
        print(f"installed {CHROMIUM} with apt-get in {seconds:.0f} s")
    return CHROMIUM


@pytest.fixture(scope="module")
def sweep(tiny_sweep) -> SimpleNamespace:
    """The two-job sweep the app tests share (``tests/app/conftest.py``)."""
    return tiny_sweep


@pytest.fixture
def server(sweep, tmp_path) -> str:
    with mlflow_server(sweep.uri, sweep.runs_dir / "mlartifacts", tmp_path / "server.log",
                       timeout=90, proxy=False) as url:
        yield url


@pytest.fixture
def page(chromium):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), headless=True,
                                     args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def ui_metric(value: float) -> str:
    """How the compare page writes a metric (MLflow's ``Utils.formatMetric``): three decimals
    below 10 with the trailing zeros dropped, two below 100, one above."""
    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa}e{int(exponent):+d}"
    digits = 3 if abs(value) < 10 else 2 if abs(value) < 100 else 1
    rounded = math.floor(value * 10**digits + 0.5) / 10**digits  # JavaScript's Math.round
    return f"{rounded:.{digits}f}".rstrip("0").rstrip(".")


def test_ui_metric_follows_mlflow_rule():
    assert [ui_metric(v) for v in (0.0, 0.58333, 0.4166667, 0.25, 1.0, 0.0005, 12.3456)] == [
        "0", "0.583", "0.417", "0.25", "1", "5.000e-4", "12.35"]


def text_at(page, x: float, y: float) -> str:
    """The text a person sees at a point: the grid cell (or element) under it."""
    return page.evaluate(
        """([x, y]) => {
            const e = document.elementFromPoint(x, y);
            if (!e) return "";
            const cell = e.closest("[role=gridcell]") || e;
            return (cell.innerText ?? cell.textContent ?? "").trim();
        }""", [x, y])


def scroll_to_row(page, label) -> None:
    """Bring ``label``'s row on screen, with the cells beside it.

    The compare page shows metrics in two virtualized grids side by side (keys, values) that
    MLflow 3.17 does not keep in step when one of them scrolls: scroll the values, then the
    keys, to the same offset, which is what the page means to show.
    """
    label.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    grid = label.evaluate_handle("e => e.closest('.ReactVirtualized__Grid')")
    if grid.evaluate("g => g !== null"):
        offset = label.evaluate(
            """(label) => {
                const grid = label.closest(".ReactVirtualized__Grid");
                const row = label.getBoundingClientRect().top - grid.getBoundingClientRect().top;
                const wanted = row + grid.scrollTop - grid.clientHeight / 2;
                return Math.round(Math.max(0, Math.min(wanted,
                                                       grid.scrollHeight - grid.clientHeight)));
            }""")
        same_band = """(grid) => Array.from(document.querySelectorAll(".ReactVirtualized__Grid"))
            .filter(g => Math.abs(g.getBoundingClientRect().top
                                  - grid.getBoundingClientRect().top) < 1)"""
        page.evaluate(f"""([grid, offset]) => ({same_band})(grid)
            .forEach(g => {{ if (g !== grid) g.scrollTop = offset; }})""", [grid, offset])
        page.wait_for_timeout(300)
        grid.evaluate("(g, offset) => { g.scrollTop = offset; }", offset)
        page.wait_for_timeout(500)
        tops = page.evaluate(f"grid => ({same_band})(grid).map(g => g.scrollTop)", grid)
        assert len(tops) >= 2 and set(tops) == {offset}, f"grids did not scroll together: {tops}"
    assert_on_screen(label)


def assert_on_screen(label) -> None:
    """Fail unless the middle of ``label`` is what the window shows there (not covered, not
    clipped by a scrolling box)."""
    x, y = center(label)
    assert label.evaluate("(e, [x, y]) => e.contains(document.elementFromPoint(x, y))",
                          [x, y]), f"{label} is not on screen"


def row_text(page, label, x: float) -> str:
    """The text in ``label``'s row at abscissa ``x``."""
    assert_on_screen(label)
    _, y = center(label)
    return text_at(page, x, y)


def center(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def fit_viewport(page, anchor) -> None:
    """Grow the window down to ``anchor`` (plus a margin), so that what lies above it is on
    screen at once: the page scrolls inside a box, so a full-page shot alone would cut it."""
    box = anchor.bounding_box()
    height = int(min(max(box["y"] + box["height"] + 150, VIEWPORT["height"]), 6000))
    page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
    page.wait_for_timeout(1000)


def keep_screenshot(page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENSHOTS / path.name)
    return SCREENSHOTS / path.name


def open_experiment(page, url: str, sweep) -> None:
    """The experiment's runs table with the parent expanded and the param/metric columns on."""
    from playwright.sync_api import expect

    # The runs table's link, as `make ui` prints it: the model-training view, no click needed.
    page.goto(experiment_url(url, sweep.experiment_id))
    expect(page).to_have_url(re.compile(rf"#/experiments/{sweep.experiment_id}/runs\?"))
    expect_model_training(page)
    parent_name = sweep.parent.info.run_name
    parent_cell = page.get_by_role("gridcell").filter(
        has=page.get_by_text(parent_name, exact=True))
    expect(parent_cell).to_be_visible()
    first_child = page.get_by_text(sweep.children[0].info.run_name, exact=True)
    if not first_child.is_visible():  # children are nested under a collapsed parent
        parent_cell.get_by_role("button").click()
    close = page.get_by_role("button", name="Close")  # the assistant's side panel
    if close.count() and close.first.is_visible():
        close.first.click()
    page.get_by_role("button", name="Columns").click()
    for title in ("Dataset", "Source", "Models", "downsample.name", "val_accuracy"):
        page.get_by_title(title, exact=True).click()  # hide three, show two
    page.keyboard.press("Escape")
    # Widen columns by dragging their right edges, so that full names and numbers show.
    for column, extra in (("Run Name", 120), ("val_accuracy", 100), ("downsample.name", 50)):
        widen(page, page.get_by_role("columnheader", name=column).first, extra)


def expect_model_training(page) -> None:
    """The sidebar of MLflow's "Model training" workflow (Runs, Models, Model registry), not
    the GenAI one (Overview, Training runs, Sessions, Judges)."""
    from playwright.sync_api import expect

    expect(page.get_by_text("Model registry", exact=True).first).to_be_visible()
    for genai in ("Training runs", "Sessions", "Judges"):
        expect(page.get_by_text(genai, exact=True)).to_have_count(0)


def test_printed_link_opens_the_run_on_a_fresh_profile(page, server, sweep, tmp_path):
    """The link the sweep printed (its parent run), served by `mlflow server` on another port."""
    from playwright.sync_api import expect

    link = sweep.link.replace(UI_ADDRESS, server, 1)
    assert link != sweep.link
    page.goto(link)
    expect(page.get_by_text(sweep.parent.info.run_name, exact=True).first).to_be_visible()
    expect(page).to_have_url(re.compile(
        rf"#/experiments/{sweep.experiment_id}/runs/{sweep.parent.info.run_id}"
        r"(/\w+)?\?workflowType=machine_learning"))
    expect_model_training(page)
    # the parent's summary: its best child's val_accuracy, logged by the sweep callback
    expect(page.get_by_text("best_val_accuracy", exact=True).first).to_be_visible()
    page.wait_for_timeout(500)
    shot = keep_screenshot(page, tmp_path / "printed_link.png")
    print(f"screenshot: {shot}")

    # Without the view in the link a fresh profile opens MLflow's GenAI workflow: the check
    # above is what the link's parameter buys.
    page.context.clear_cookies()
    page.goto(f"{server}/#/experiments/{sweep.experiment_id}")
    page.evaluate("() => window.localStorage.clear()")
    page.reload()
    genai = page.get_by_text("Training runs", exact=True).or_(
        page.get_by_text("Detect Issues in Your Traces", exact=True))  # its first-visit tip
    expect(genai.first).to_be_visible()


def widen(page, header, extra: float) -> None:
    box = header.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] - 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] + extra, y, steps=10)
    page.mouse.up()

def test_sweep_on_experiment_and_compare_pages(page, server, sweep, tmp_path):
    from playwright.sync_api import expect

    names = [c.info.run_name for c in sweep.children]
    assert names == ["downsample=max", "downsample=pnorm"], names

    # -- the experiment page --------------------------------------------------------------
    open_experiment(page, server, sweep)
    for name in names:
        expect(page.get_by_text(name, exact=True)).to_be_visible()
    page.wait_for_timeout(500)
    shot = keep_screenshot(page, tmp_path / "experiment.png")
    param_x, _ = center(page.get_by_role("columnheader", name="downsample.name").first)
    metric_x, _ = center(page.get_by_role("columnheader", name="val_accuracy").first)
    for child in sweep.children:
        _, y = center(page.get_by_text(child.info.run_name, exact=True))
        shown_param = text_at(page, param_x, y)
        assert shown_param == child.data.params["downsample.name"], (
            f"{child.info.run_name}: downsample.name cell shows {shown_param!r}; see {shot}")
        shown_metric = text_at(page, metric_x, y)  # the table writes the stored number
        assert re.fullmatch(r"\d+(\.\d+)?", shown_metric) and math.isclose(
            float(shown_metric), child.data.metrics["val_accuracy"], rel_tol=1e-3), (
            f"{child.info.run_name}: val_accuracy cell shows {shown_metric!r}, store has "
            f"{child.data.metrics['val_accuracy']}; see {shot}")

    # -- tick both children and compare them ------------------------------------------------
    for name in names:
        row = page.get_by_role("row").filter(has=page.get_by_text(name, exact=True))
        row.get_by_role("checkbox").first.check()
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/compare-runs\?"))
    query = page.url.split("?", 1)[1].replace("%22", '"')
    params = dict(part.split("=", 1) for part in query.split("&"))
    assert sorted(json.loads(params["runs"])) == sorted(c.info.run_id for c in sweep.children)
    assert json.loads(params["experiments"]) == [sweep.experiment_id]

    expect(page.get_by_text("Comparing 2 Runs", exact=False)).to_be_visible()
    fit_viewport(page, page.get_by_text("Artifacts", exact=True).first)  # the section after
    for name in names:
        expect(page.get_by_text(name, exact=True)).to_be_visible()
    # The keys also label the plot's axes and pickers: take the tables' row labels.
    param_label = page.get_by_role("rowheader", name="downsample.name", exact=True)
    metric_label = page.get_by_title("Plot chart").filter(has_text=re.compile(r"^val_accuracy$"))
    expect(param_label).to_be_visible()
    expect(metric_label).to_be_visible()
    columns = {c.info.run_name: page.get_by_text(c.info.run_name, exact=True).bounding_box()["x"]
               for c in sweep.children}  # each run's column starts where its name does
    scroll_to_row(page, param_label)
    scroll_to_row(page, metric_label)
    shot = keep_screenshot(page, tmp_path / "compare.png")
    for child in sweep.children:
        x = columns[child.info.run_name] + 5
        shown_param = row_text(page, param_label, x)
        assert shown_param == child.data.params["downsample.name"], (
            f"{child.info.run_name}: parameter row shows {shown_param!r}; see {shot}")
        expected = ui_metric(child.data.metrics["val_accuracy"])
        shown_metric = row_text(page, metric_label, x)
        assert shown_metric == expected, (
            f"{child.info.run_name}: val_accuracy row shows {shown_metric!r}, expected "
            f"{expected!r} from {child.data.metrics['val_accuracy']}; see {shot}")
