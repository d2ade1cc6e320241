"""The website's kernel-free widget galleries (aot_edu.gallery)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from aot_edu import gallery, viz


@pytest.fixture
def widget():
    torch.manual_seed(0)
    return viz.identity_similarity_widget({"random": torch.randn(11, 16), "other": torch.randn(11, 16)})


def test_control_values_thin_a_slider_and_keep_its_ends_and_value(widget):
    slider = widget.controls["num_identities"]  # M: 2..10, starts at 10
    values = [v for _, v in gallery.control_values(slider, max_values=4)]
    assert values[0] == 2 and values[-1] == 10 and len(values) <= 5
    assert gallery.control_values(widget.controls["include_background"]) == [("off", False), ("on", True)]
    assert [label for label, _ in gallery.control_values(widget.controls["bank"])] == ["random", "other"]
    import ipywidgets

    heads = ipywidgets.Dropdown(options=[("mean", -1)] + [(str(i), i) for i in range(8)], value=3)
    shown = gallery.control_values(heads, max_values=4)
    assert shown[0] == ("mean", -1) and shown[-1] == ("7", 7) and ("3", 3) in shown and len(shown) <= 5


def test_gallery_holds_one_picture_per_control_value(widget):
    html = gallery.gallery_html(widget, max_values=3, dpi=30)
    images = json.loads(re.search(r'class="aot-gallery-images">(.*?)</script>', html).group(1))
    # the start, then each control's other values: bank 1 more, M 2 more (2, 6), background 1 more
    assert set(images) == {"start", "bank=1", "num_identities=0", "num_identities=1", "include_background=1"}
    assert all(v.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for v in images.values())
    assert len(set(images.values())) == len(images), "two control values gave the same picture"
    assert html.count('type="range"') == 3 and gallery.NOTE.split(":")[0] in html


def test_gallery_leaves_the_widget_as_it_was(widget):
    before, draws = widget.values(), widget.draws
    gallery.gallery_html(widget, max_values=2, dpi=30)
    assert widget.values() == before and widget.draws == draws


def test_static_widgets_switch(monkeypatch):
    monkeypatch.setenv("AOT_EDU_WIDGETS", "static")
    assert gallery.static_widgets()
    monkeypatch.setenv("AOT_EDU_WIDGETS", "live")
    assert not gallery.static_widgets()
    monkeypatch.delenv("AOT_EDU_WIDGETS")
    assert not gallery.static_widgets()


def test_large_pictures_are_sent_as_jpeg(widget):
    figure = widget.draw(**widget.values())
    assert gallery._image(figure, dpi=30).startswith("data:image/png;base64,")
    assert gallery._image(figure, dpi=30, max_png_bytes=100).startswith("data:image/jpeg;base64,")
