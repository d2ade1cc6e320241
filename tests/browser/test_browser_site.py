"""The course's website (``make docs``) in Chromium: every page opens without an error, no
internal link or picture is broken, the course table links every notebook's page, and the
widgets' galleries respond to their controls without a kernel.

The site is built once per test session by ``docs/build.py --reuse`` (into ``build/site``),
or taken from ``AOT_EDU_SITE=/path/to/site`` when that is set, and served on localhost.
"""

from __future__ import annotations

import posixpath
import re
import time
import urllib.parse
from pathlib import Path

import pytest

from .browserkit import PageWatch, artifact_dir, changed_fraction, screenshot_array

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK_PAGES = ("00_start_here", "01_attention", "02_identity", "03_lstt", "04_model",
                  "05_training", "06_evaluation", "07_ablations")
WIDGET_PAGES = ("02_identity", "03_lstt", "07_ablations")


def local_target(site, page_url: str, link: str) -> tuple[Path, str] | None:
    """The file (and fragment) a link of ``page_url`` points at inside the site, or ``None``
    for another site, a ``data:``/``mailto:``/``javascript:`` link."""
    url = urllib.parse.urljoin(page_url, link)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not url.startswith(site.url):
        return None
    path = urllib.parse.unquote(parts.path)
    path = posixpath.normpath(path).lstrip("/")
    target = site.root / path
    if target.is_dir():
        target = target / "index.html"
    return target, parts.fragment


def test_every_page_opens_and_no_link_is_broken(site, chromium):
    artifacts = artifact_dir("site")
    page = chromium.new_page(viewport={"width": 1280, "height": 1000})
    watch = PageWatch(page, site.url)
    queue, seen, broken, problems = [f"{site.url}/index.html"], set(), [], []
    anchors_to_check: list[tuple[str, str, str]] = []
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        response = page.goto(url)
        if response is None or response.status != 200:
            problems.append(f"{url}: HTTP {response.status if response else 'no response'}")
            continue
        page.wait_for_load_state("load")
        title = page.title()
        if not title:
            problems.append(f"{url}: no title")
        links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        sources = page.eval_on_selector_all("img[src], script[src], link[href][rel=stylesheet]",
                                            "els => els.map(e => e.getAttribute('src') || e.getAttribute('href'))")
        broken_images = page.eval_on_selector_all(
            "img", "els => els.filter(e => e.complete && e.naturalWidth === 0 && e.getAttribute('src')"
                   " && !e.getAttribute('src').startsWith('http')).map(e => e.getAttribute('src').slice(0, 80))")
        problems += [f"{url}: picture does not load: {src}" for src in broken_images]
        for link in links + sources:
            target = local_target(site, url, link)
            if target is None:
                continue
            path, fragment = target
            if not path.is_file():
                broken.append(f"{url} -> {link}")
            elif path.suffix == ".html":
                page_url = urllib.parse.urljoin(url, link).split("#")[0]
                if link in links and page_url not in seen:
                    queue.append(page_url)
                if fragment:
                    anchors_to_check.append((url, page_url, fragment))
        if url.endswith("/index.html") and url.count("/") == 3:
            page.screenshot(path=str(artifacts / "index.png"))
    for source, target_url, fragment in anchors_to_check:
        target = local_target(site, target_url, target_url)
        html = target[0].read_text(errors="replace")
        if f'id="{fragment}"' not in html and f"id={fragment}" not in html:
            broken.append(f"{source} -> {target_url}#{fragment} (no such anchor)")
    page.close()

    pages = {urllib.parse.urlsplit(u).path.lstrip("/") for u in seen}
    for name in NOTEBOOK_PAGES:
        assert f"notebooks/{name}.html" in pages, f"no page for notebook {name}: the pages are {sorted(pages)}"
    assert any(p.startswith("api/") for p in pages), f"no API reference page reached: {sorted(pages)}"
    assert not problems, "pages with problems:\n" + "\n".join(problems)
    assert not sorted(set(broken)), "broken internal links:\n" + "\n".join(sorted(set(broken)))
    assert not watch.errors(), f"browser errors on the site: {watch.errors()}"
    # The pages need no network, except MathJax (equations) from its CDN, the notebooks'
    # "Open in Colab" badge (a picture on colab.research.google.com; its alt text offline) and
    # the icons of matplotlib's animation player (Font Awesome, notebook 04's clip).
    allowed = ("mathjax", "colab.research.google.com/assets/colab-badge", "font-awesome")
    elsewhere = sorted({u for u in watch.external_requests if not any(a in u.lower() for a in allowed)})
    assert not elsewhere, f"the site loads from other hosts: {elsewhere}"


def test_course_table_links_every_notebook_page(site):
    html = (site.root / "index.html").read_text()
    for name in NOTEBOOK_PAGES:
        assert f'href="notebooks/{name}.html"' in html, f"the home page's course table does not link {name}"


def test_notebook_pages_hold_their_outputs(site):
    """The pages are the executed notebooks: pictures (figures) and printed results in place."""
    for name in NOTEBOOK_PAGES:
        html = (site.root / "notebooks" / f"{name}.html").read_text()
        figures = re.findall(r'<img[^>]*src="data:image/(?:png|gif|jpeg);base64', html)
        outputs = re.findall(r'<div class="[^"]*jp-OutputArea-output', html)
        assert figures, f"notebook page {name} shows no figure: was it executed?"
        assert len(outputs) >= 3, f"notebook page {name} shows {len(outputs)} outputs: was it executed?"
        assert "Traceback (most recent call last)" not in html, f"notebook page {name} shows an error"


@pytest.mark.parametrize("name", WIDGET_PAGES)
def test_widget_galleries_respond_without_a_kernel(site, chromium, name):
    artifacts = artifact_dir(f"site_{name}")
    page = chromium.new_page(viewport={"width": 1280, "height": 1000})
    watch = PageWatch(page, site.url)
    page.goto(f"{site.url}/notebooks/{name}.html")
    gallery = page.locator(".aot-gallery").first
    gallery.wait_for(state="visible", timeout=30_000)
    assert "without Python" in gallery.locator(".aot-gallery-note").inner_text()
    picture = gallery.locator("img.aot-gallery-image")
    controls = gallery.locator(".aot-gallery-control").all()
    assert controls, f"{name}: the gallery has no control"
    for control in controls:
        label = control.get_attribute("data-control")
        slider = control.locator("input[type=range]")
        readout = control.locator(".aot-gallery-readout")
        if slider.get_attribute("max") == "0":
            continue  # one value only (e.g. a single model): nothing to move
        # Back to the page's starting picture, then to the other end of this control's range.
        control.evaluate("el => { const i = el.querySelector('input'); i.value = i.dataset.start;"
                         " i.dispatchEvent(new Event('input')); }")
        assert picture.get_attribute("data-key") == "start"
        picture.scroll_into_view_if_needed()
        before = screenshot_array(picture, artifacts / f"{label}_before.png")
        start = readout.inner_text()
        slider.focus()
        slider.press("Home" if slider.input_value() != slider.get_attribute("min") else "End")
        deadline = time.monotonic() + 10
        while picture.get_attribute("data-key") == "start":
            assert time.monotonic() < deadline, f"{name}: moving '{label}' showed no other picture"
            time.sleep(0.1)
        after = screenshot_array(picture, artifacts / f"{label}_after.png")
        assert readout.inner_text() != start, f"{name}: the readout of '{label}' stayed at {start}"
        change = changed_fraction(before, after)
        assert change > 0.005, f"{name}: moving '{label}' changed {change:.2%} of the picture"
    assert not watch.errors(), f"{name}: browser errors: {watch.errors()}"
    page.close()
