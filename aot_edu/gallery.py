"""A course widget as a kernel-free picture gallery, for the course's website (``make docs``).

The widgets of :mod:`aot_edu.viz` redraw their figure in Python when a control moves; a static
web page has no Python, and ipywidgets' embedded state would only replay the one picture
shown when the page was built. So the website shows, in place of each widget, the same
controls over pictures drawn at build time: every value of each control (at most
``max_values`` of them, evenly spread) with the other controls at their first values, one
control at a time. Plain HTML, a few lines of inline JavaScript and the pictures in the page
(PNG; JPEG for large ones): no ipywidgets front end, no CDN, no kernel.

``AOT_EDU_WIDGETS=static`` (set by ``make docs``) makes a displayed
:class:`~aot_edu.viz.InteractiveFigure` show :func:`gallery_html` instead of its live controls.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import uuid

import numpy as np

NOTE = ("On this page the widget runs without Python: each control shows pictures drawn when "
        "the page was built, one control at a time (the others at their first values). Run the "
        "notebook (JupyterLab or Colab) to combine them freely.")


def static_widgets() -> bool:
    """Whether displayed widgets should be galleries (``AOT_EDU_WIDGETS=static``)."""
    return os.environ.get("AOT_EDU_WIDGETS", "").strip().lower() == "static"


def _thin(count: int, keep: int, max_values: int) -> list[int]:
    """Up to ``max_values`` indices of ``range(count)`` evenly spread, ends and ``keep`` kept."""
    steps = np.linspace(0, count - 1, min(max_values, count))
    return sorted({int(round(i)) for i in steps} | {keep})


def control_values(control, max_values: int = 5) -> list[tuple[str, object]]:
    """``(label, value)`` pairs a gallery shows for one ipywidgets control: a slider's range or
    a menu's options (evenly thinned to ``max_values``, the ends and the current value kept),
    a checkbox's two states."""
    if hasattr(control, "options") and hasattr(control, "index"):  # Dropdown and friends
        labels, values = list(control._options_labels), list(control._options_values)
        return [(labels[i], values[i]) for i in _thin(len(values), control.index, max_values)]
    if isinstance(control.value, bool):
        return [("off", False), ("on", True)]
    if hasattr(control, "min") and hasattr(control, "max"):
        indices = _thin(control.max - control.min + 1, control.value - control.min, max_values)
        return [(str(control.min + i), control.min + i) for i in indices]
    raise TypeError(f"cannot list the values of a {type(control).__name__} control")


def _image(figure, dpi: float, max_png_bytes: int = 120_000) -> str:
    """The figure as a data URL: PNG, or JPEG when the PNG is large (pictures of video frames
    compress badly as PNG: a page with twenty of them would weigh over 10 MB)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    kind = "png"
    if buffer.tell() > max_png_bytes:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="jpeg", dpi=dpi, pil_kwargs={"quality": 85})
        kind = "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def gallery_html(interactive, max_values: int = 5, dpi: float = 80) -> str:
    """The HTML of ``interactive`` (an :class:`~aot_edu.viz.InteractiveFigure`) as a gallery.

    Draws ``1 + sum(len(values) - 1)`` figures: the widget's starting state, then each control's
    other values with the rest at their starting values."""
    start = interactive.values()
    names = list(interactive.controls)
    options = {name: control_values(interactive.controls[name], max_values) for name in names}
    first = {name: next(i for i, (_, v) in enumerate(options[name]) if v == start[name]) for name in names}
    images: dict[str, str] = {}
    for name in names:
        for index, (_, value) in enumerate(options[name]):
            key = "start" if index == first[name] else f"{name}={index}"
            if key not in images:
                images[key] = _image(interactive.draw(**{**start, name: value}), dpi)
    uid = "aot-gallery-" + uuid.uuid4().hex[:8]
    rows = []
    for name in names:
        control = interactive.controls[name]
        label = html.escape(getattr(control, "description", "") or name)
        labels = [label_ for label_, _ in options[name]]
        rows.append(
            f'<label class="aot-gallery-control" data-control="{html.escape(name)}">'
            f'<span class="aot-gallery-label">{label}</span>'
            f'<input type="range" min="0" max="{len(labels) - 1}" step="1" value="{first[name]}" '
            f'data-start="{first[name]}" data-labels="{html.escape(json.dumps(labels))}" '
            f'style="width: 160px; vertical-align: middle">'
            f'<span class="aot-gallery-readout">{html.escape(labels[first[name]])}</span></label>')
    script = f"""<script>
(function () {{
  const root = document.getElementById("{uid}");
  const images = JSON.parse(root.querySelector("script.aot-gallery-images").textContent);
  const picture = root.querySelector("img.aot-gallery-image");
  const inputs = root.querySelectorAll("input[type=range]");
  inputs.forEach(function (input) {{
    input.addEventListener("input", function () {{
      inputs.forEach(function (other) {{  // one control at a time: the others go back
        if (other !== input) other.value = other.dataset.start;
        const labels = JSON.parse(other.dataset.labels);
        other.nextElementSibling.textContent = labels[Number(other.value)];
      }});
      const name = input.parentElement.dataset.control;
      const key = input.value === input.dataset.start ? "start" : name + "=" + input.value;
      picture.src = images[key];
      picture.dataset.key = key;
    }});
  }});
}})();
</script>"""
    return (f'<div class="aot-gallery" id="{uid}">'
            f'<p class="aot-gallery-note"><em>{html.escape(NOTE)}</em></p>'
            f'<div class="aot-gallery-controls" style="display: flex; flex-wrap: wrap; gap: 4px 24px">'
            + "".join(rows) + "</div>"
            f'<img class="aot-gallery-image" data-key="start" src="{images["start"]}" '
            f'style="max-width: 100%" alt="{html.escape(", ".join(names))}">'
            f'<script type="application/json" class="aot-gallery-images">{json.dumps(images)}</script>'
            + script + "</div>")
