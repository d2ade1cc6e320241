"""The course's widgets in JupyterLab, in Chromium, as a learner uses them.

Notebooks 02 (identity-bank similarity, Fig. 4) and 03 (per-layer attention maps, Fig. 6-7) are
run in quick mode from the Run menu; then each widget's controls are moved with the mouse (as a
learner would) and the picture the widget shows must change (pixel difference of
screenshots), with no error output in the notebook, no error in the browser's console, and the
kernel alive. At window widths of 1280 and 1920 px with the file browser open (the default
``make lab`` layout) every slider track must be wider than 100 px and no control may be cut
off. The screenshots stay in ``build/browser-artifacts/<notebook>/``.
"""

from __future__ import annotations

import time

import pytest

from .browserkit import PageWatch, artifact_dir, changed_fraction, screenshot_array

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_TIMEOUT_S = 600  # the whole notebook, quick mode, 2-core CPU (about 20-60 s measured)
REDRAW_TIMEOUT_S = 60
WIDTHS = (1280, 1920)
MIN_TRACK_PX = 100


class LabNotebook:
    """One notebook open in JupyterLab in its own page."""

    def __init__(self, lab, chromium, name: str, width: int = WIDTHS[0]) -> None:
        self.lab, self.name = lab, name
        self.page = chromium.new_page(viewport={"width": width, "height": 1000})
        self.watch = PageWatch(self.page, lab.url)
        self.artifacts = artifact_dir(name.removesuffix(".ipynb"))
        # A workspace of its own: the page shows this notebook alone, as a fresh `make lab` does.
        workspace = name.removesuffix(".ipynb").replace("_", "-")
        self.page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{name}?token={lab.token}")
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        deadline = time.monotonic() + 120
        while not self.sessions():
            assert time.monotonic() < deadline, f"no kernel started for {name}"
            time.sleep(0.5)
        self.wait_idle(120)
        self.kernel_id = self.kernel()["id"]

    def sessions(self) -> list[dict]:
        return [s for s in self.lab.api("sessions") if s["path"].endswith(self.name)]

    def kernel(self) -> dict:
        sessions = self.sessions()
        assert len(sessions) == 1, f"expected one kernel session for {self.name}, got {sessions}"
        return sessions[0]["kernel"]

    def close(self) -> None:
        self.page.close()
        for session in self.sessions():  # free the kernel's memory for the next notebook
            self.lab.api(f"sessions/{session['id']}", method="DELETE")

    def wait_idle(self, timeout_s: float) -> None:
        self.page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')", timeout=timeout_s * 1000)

    def prompts(self) -> list[str]:
        return self.page.eval_on_selector_all(
            ".jp-CodeCell .jp-InputPrompt", "els => els.map(e => e.textContent.trim())")

    def run_all(self) -> None:
        self.page.click("div.lm-MenuBar-itemLabel:text-is('Run')")
        self.page.click("li.lm-Menu-item:has-text('Run All Cells')")
        deadline = time.monotonic() + RUN_TIMEOUT_S
        # Cells queued or running show [*]; the run is over when every code cell has a number
        # (an error stops the run and leaves the later cells at [ ]).
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
            ".some(e => e.textContent.includes('*'))", timeout=30_000)
        while any("*" in p for p in self.prompts()):
            assert time.monotonic() < deadline, f"{self.name} still running after {RUN_TIMEOUT_S} s"
            time.sleep(1)
        self.wait_idle(60)

    def error_outputs(self) -> list[str]:
        """Tracebacks in the notebook's outputs (the widgets' own output areas included) and
        widgets that failed to render."""
        texts = self.page.eval_on_selector_all(
            ".jp-OutputArea-output", "els => els.map(e => e.textContent)")
        errors = [t.strip()[:300] for t in texts if "Traceback (most recent call last)" in t]
        errors += [t.strip()[:300] for t in texts if "Error displaying widget" in t]
        return errors

    def check_healthy(self) -> None:
        """No error output, no browser error, the same kernel still alive and idle."""
        assert not self.error_outputs(), f"{self.name}: error output: {self.error_outputs()}"
        assert not self.watch.errors(), f"{self.name}: browser errors: {self.watch.errors()}"
        kernel = self.kernel()
        assert kernel["id"] == self.kernel_id, f"{self.name}: the kernel was restarted"
        assert kernel["execution_state"] == "idle", f"{self.name}: kernel is {kernel['execution_state']}"

    def widget(self, marker: str):
        """The course widget (``viz.InteractiveFigure``) displayed by the cell whose code holds
        ``marker``: its controls and its figure."""
        cell = self.page.locator(".jp-CodeCell", has_text=marker).last
        cell.scroll_into_view_if_needed()
        widget = cell.locator(".jp-OutputArea-output .widget-vbox").first
        widget.wait_for(state="visible", timeout=30_000)
        widget.locator(".widget-output img").wait_for(state="visible", timeout=30_000)
        return widget


def control(widget, label: str):
    """The control whose description is ``label`` (a checkbox shows it beside its box)."""
    described = widget.page.locator(f"label.widget-label:text-is('{label}'), "
                                    f".widget-label-basic > span:text-is('{label}')")
    return widget.locator(".widget-inline-hbox", has=described)


def image_src(widget) -> str:
    return widget.locator(".widget-output img").first.get_attribute("src") or ""


def redrawn(notebook: LabNotebook, widget, action, step: str, skip_top: float = 0.0) -> float:
    """Do ``action`` and wait for the widget's picture to be replaced and the kernel to settle;
    returns the fraction of the picture's pixels that changed. Screenshots: ``<step>_*.png``."""
    image = widget.locator(".widget-output img").first
    image.scroll_into_view_if_needed()
    before_src = image_src(widget)
    before = screenshot_array(image, notebook.artifacts / f"{step}_before.png")
    action()
    deadline = time.monotonic() + REDRAW_TIMEOUT_S
    while image_src(widget) in ("", before_src):
        assert time.monotonic() < deadline, f"{notebook.name}: {step}: the picture was not redrawn"
        time.sleep(0.2)
    notebook.wait_idle(REDRAW_TIMEOUT_S)
    time.sleep(0.5)  # a last redraw queued by a drag lands after the kernel reports idle
    notebook.wait_idle(REDRAW_TIMEOUT_S)
    image = widget.locator(".widget-output img").first
    after = screenshot_array(image, notebook.artifacts / f"{step}_after.png")
    return changed_fraction(before, after, skip_top)


def drag_slider(widget, label: str, fraction: float) -> None:
    """Drag the slider's handle with the mouse to ``fraction`` (0..1) of its track."""
    box = control(widget, label)
    track = box.locator(".noUi-target").bounding_box()
    handle = box.locator(".noUi-handle").bounding_box()
    page = widget.page
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + fraction * track["width"], handle["y"] + handle["height"] / 2, steps=4)
    page.mouse.up()


def readout(widget, label: str) -> str:
    box = control(widget, label)
    return box.locator(".widget-readout").inner_text().strip()


def check_layout(notebook: LabNotebook, widget, width: int) -> None:
    """The file browser is open, every slider track is wider than MIN_TRACK_PX and every
    control lies inside the notebook panel and inside the widget's output area."""
    page = notebook.page
    page.set_viewport_size({"width": width, "height": 1000})
    time.sleep(1.0)  # Lumino lays the panels out on resize
    widget.scroll_into_view_if_needed()
    page.screenshot(path=str(notebook.artifacts / f"layout_{width}px.png"))
    sidebar = page.locator("#filebrowser").bounding_box()
    assert sidebar and sidebar["width"] > 150, f"the file browser is not open at {width} px: {sidebar}"
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer").first.bounding_box()
    area = widget.bounding_box()
    tracks = [t.bounding_box()["width"] for t in widget.locator(".noUi-target").all()]
    assert tracks, "the widget has no slider"
    assert min(tracks) > MIN_TRACK_PX, \
        f"{notebook.name} at {width} px: slider tracks {tracks} px, each must be > {MIN_TRACK_PX} px"
    parts = widget.locator(".widget-inline-hbox, .widget-readout, select, input, label").all()
    for part in parts:
        box = part.bounding_box()
        if box is None or box["width"] == 0:
            continue
        name = (part.text_content() or part.get_attribute("class") or "").strip()[:30]
        for outer, what in ((panel, "notebook panel"), (area, "widget")):
            assert box["x"] >= outer["x"] - 0.5 and box["x"] + box["width"] <= outer["x"] + outer["width"] + 0.5, \
                f"{notebook.name} at {width} px: control '{name}' {box} is cut off by the {what} {outer}"


@pytest.fixture
def open_notebook(lab, chromium):
    opened = []

    def open_(name: str) -> LabNotebook:
        notebook = LabNotebook(lab, chromium, name)
        opened.append(notebook)
        return notebook

    yield open_
    for notebook in opened:
        notebook.close()


def run_and_find_widget(open_notebook, name: str, widget_name: str):
    """Run notebook ``name`` top to bottom, check every cell ran and nothing failed, find the
    widget held by ``widget_name``, check its layout at every width of ``WIDTHS`` and leave the
    page at the narrowest: ``(notebook, widget)``."""
    notebook = open_notebook(name)
    notebook.run_all()
    assert all(p[1:-2].isdigit() for p in notebook.prompts() if p), \
        f"not every cell ran: {notebook.prompts()}"
    notebook.check_healthy()
    widget = notebook.widget(widget_name)
    for width in WIDTHS:
        check_layout(notebook, widget, width)
    notebook.page.set_viewport_size({"width": WIDTHS[0], "height": 1000})
    return notebook, widget


def test_identity_widget_in_jupyterlab(open_notebook):
    notebook, widget = run_and_find_widget(open_notebook, "02_identity.ipynb", "identity_similarity_widget")

    assert readout(widget, "M") == "10"
    change = redrawn(notebook, widget, lambda: drag_slider(widget, "M", 0.0), "M_to_2")
    assert readout(widget, "M") == "2", f"dragging M to the left end gave M = {readout(widget, 'M')}"
    assert change > 0.05, f"moving M from 10 to 2 changed {change:.1%} of the picture"

    checkbox = control(widget, "background").locator("input[type=checkbox]")
    change = redrawn(notebook, widget, lambda: checkbox.click(), "background_on")
    assert checkbox.is_checked()
    assert change > 0.05, f"showing the background identity changed {change:.1%} of the picture"

    select = control(widget, "bank").locator("select")
    options = select.locator("option").all_text_contents()
    assert len(options) >= 2, f"the bank menu offers {options}"
    change = redrawn(notebook, widget, lambda: select.select_option(label=options[1]), "bank_trained",
                     skip_top=0.1)
    assert change > 0.02, f"choosing bank '{options[1]}' changed {change:.1%} of the matrix"
    notebook.check_healthy()


def test_attention_widget_in_jupyterlab(open_notebook):
    notebook, widget = run_and_find_widget(open_notebook, "03_lstt.ipynb", "attention_widget")

    # The course model has three LSTT blocks: the layer slider starts at the last (2) and every
    # block's maps differ. The title strip is ignored, so a changed title alone does not count.
    assert readout(widget, "layer") == "2", f"layer slider starts at {readout(widget, 'layer')}"
    change = redrawn(notebook, widget, lambda: drag_slider(widget, "layer", 0.0), "layer_to_0", skip_top=0.1)
    assert readout(widget, "layer") == "0"
    assert change > 0.01, f"moving from block 2 to block 0 changed {change:.1%} of the maps"

    for label, fraction in (("query row", 0.1), ("query col", 0.9)):
        start = readout(widget, label)
        change = redrawn(notebook, widget, lambda label=label, f=fraction: drag_slider(widget, label, f),
                         label.replace(" ", "_"), skip_top=0.1)
        assert readout(widget, label) != start, f"dragging '{label}' left it at {start}"
        assert change > 0.01, f"moving '{label}' from {start} changed {change:.1%} of the maps"

    # The frame slider picks frame t, hence the memories it reads: short-term frame t - 1 (and
    # the long-term memory frames of t).
    start = readout(widget, "frame")
    change = redrawn(notebook, widget, lambda: drag_slider(widget, "frame", 0.0), "frame_memory",
                     skip_top=0.1)
    assert readout(widget, "frame") == "1", f"dragging 'frame' to the left end left it at {readout(widget, 'frame')}"
    assert change > 0.05, f"moving frame {start} -> 1 changed {change:.1%} of the picture"

    head = control(widget, "head").locator("select")
    change = redrawn(notebook, widget, lambda: head.select_option(label="0"), "head_0", skip_top=0.1)
    assert change > 0.005, f"choosing head 0 instead of the mean changed {change:.1%} of the maps"

    models = control(widget, "model").locator("select")
    names = models.locator("option").all_text_contents()
    if len(names) > 1:
        change = redrawn(notebook, widget, lambda: models.select_option(label=names[1]), "model_2",
                         skip_top=0.1)
        assert change > 0.05, f"choosing model '{names[1]}' changed {change:.1%} of the picture"
    notebook.check_healthy()
