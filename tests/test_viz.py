from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from aot_edu import viz
from aot_edu.data import davis_palette


def _labels() -> np.ndarray:
    labels = np.zeros((20, 30), dtype=np.uint8)
    labels[2:8, 3:12] = 1
    labels[10:18, 15:28] = 2
    return labels


def _frame(value: int = 100) -> np.ndarray:
    return np.full((20, 30, 3), value, dtype=np.uint8)


# --- masks and videos ----------------------------------------------------------------------

def test_colorize_uses_the_davis_palette():
    colours = viz.colorize(_labels())
    assert colours.shape == (20, 30, 3) and colours.dtype == np.uint8
    assert (colours[5, 5] == davis_palette()[1]).all() and (colours[0, 0] == 0).all()
    with pytest.raises(ValueError, match="2-D"):
        viz.colorize(np.zeros((2, 3, 4)))


def test_overlay_paints_objects_and_leaves_background():
    frame, labels = _frame(), _labels()
    out = viz.overlay(frame, labels, outline=False)
    assert (out[labels == 0] == 100).all()
    expected = np.round(0.5 * 100 + 0.5 * davis_palette()[2].astype(np.float32)).astype(np.uint8)
    assert (out[12, 20] == expected).all()
    outlined = viz.overlay(frame, labels)
    assert (outlined[2, 5] == davis_palette()[1]).all(), "boundary pixels are painted solid"
    assert (outlined[5, 7] == viz.overlay(frame, labels, outline=False)[5, 7]).all()
    with pytest.raises(ValueError, match="differ in size"):
        viz.overlay(frame, labels[:10])


def test_the_legend_shows_each_object_id_in_its_colour():
    image = np.full((120, 200, 3), 100, np.uint8)
    out = viz.draw_legend(image, [1, 2, 13])
    assert out.shape == image.shape and out.dtype == np.uint8 and (image == 100).all()
    band = out[:12]
    for label in (1, 2, 13):  # a swatch of each colour, in the band at the top-left
        assert (band == davis_palette()[label]).all(axis=-1).sum() >= 9, label
    assert (out[60:] == 100).all(), "below the band the picture is untouched"
    assert np.array_equal(viz.draw_legend(image, []), image)
    wrapped = viz.draw_legend(image[:40, :60], list(range(1, 9)))  # rows wrap at the width
    assert (wrapped[:, :60] != 100).any(axis=-1)[20:].any()


def test_mix_colours_and_soft_overlay():
    one_hot = np.stack([_labels() == k for k in range(3)]).astype(np.float32)
    assert (viz.mix_colors(one_hot) == viz.colorize(_labels())).all()
    soft = viz.overlay_soft(_frame(), one_hot, alpha=1.0)
    assert (soft[_labels() == 0] == 100).all() and (soft[5, 5] == davis_palette()[1]).all()
    weak = one_hot * 0.1
    weak[0] = 1 - weak[1:].sum(0)
    assert np.abs(viz.overlay_soft(_frame(), weak, alpha=1.0, normalize=True).astype(int) - soft).max() <= 1


def test_show_images_and_video_strip():
    fig = viz.show_images([_frame(), _labels(), np.random.rand(5, 5)], ["a", "b", "c"], ncols=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    frames = np.stack([_frame(v) for v in range(0, 200, 20)])
    masks = np.stack([_labels()] * 10)
    strip = viz.video_strip(frames, masks, max_frames=4, frame_numbers=list(range(0, 100, 10)))
    assert [ax.get_title() for ax in strip.axes] == ["frame 0", "frame 30", "frame 60", "frame 90"]
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        viz.video_strip(masks)


def test_saved_figures_are_reproducible(tmp_path):
    def figure():
        return viz.video_strip(np.stack([_frame()] * 3), np.stack([_labels()] * 3), title="t")

    a = viz.save_figure(figure(), tmp_path / "a.png").read_bytes()
    b = viz.save_figure(figure(), tmp_path / "b.png").read_bytes()
    assert a == b and a[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Matplotlib" not in a


def test_gif_and_animation(tmp_path):
    frames = np.stack([_frame(v) for v in (0, 80, 160)])
    masks = np.stack([_labels()] * 3)
    path = viz.save_gif(tmp_path / "clip.gif", frames, masks, scale=2.0)
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (60, 40)
    html = viz.animation_html(frames, masks, size=1.0)
    assert "<script" in html and html.count("data:image/png;base64") == 3


def test_heatmap_grid_layout():
    maps = np.random.rand(2, 3, 4, 5)
    fig = viz.heatmap_grid(maps, ["l0", "l1"], ["h0", "h1", "h2"], background=np.zeros((33, 49, 3), np.uint8),
                           marker=(10, 10))
    assert len(fig.axes) == 6
    assert fig.axes[0].get_title() == "h0" and fig.axes[3].get_ylabel() == "l1"
    assert fig.axes[0].images[1].get_array().shape == (33, 49)
    with pytest.raises(ValueError, match="rows, cols"):
        viz.heatmap_grid(maps[0])


# --- identity similarity -------------------------------------------------------------------

def test_plot_identity_similarity_panels_and_bounds():
    vectors = torch.randn(11, 32)
    fig = viz.plot_identity_similarity({"a": vectors, "b": -vectors}, num_identities=4,
                                       include_background=True)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["bg", "1", "2", "3", "4"]
    assert panels[0].images[0].get_array().shape == (5, 5)
    with pytest.raises(ValueError, match="num_identities"):
        viz.plot_identity_similarity(vectors, num_identities=11)


def test_identity_similarity_widget_redraws_on_every_control():
    torch.manual_seed(0)
    banks = {"random": torch.randn(11, 32), "aligned": torch.randn(11, 32) + 5}
    widget = viz.identity_similarity_widget(banks)
    pictures = [viz.figure_image(widget.figure)]
    widget.controls["bank"].value = "aligned"
    pictures.append(viz.figure_image(widget.figure))
    assert "aligned" in widget.figure.axes[0].get_title()
    widget.controls["num_identities"].value = 3
    pictures.append(viz.figure_image(widget.figure))
    assert widget.figure.axes[0].images[0].get_array().shape == (3, 3)
    widget.controls["include_background"].value = True
    pictures.append(viz.figure_image(widget.figure))
    assert widget.figure.axes[0].images[0].get_array().shape == (4, 4)
    assert widget.draws == 4
    for before, after in zip(pictures, pictures[1:], strict=False):
        assert before.shape != after.shape or (before != after).any(), "every control changes the picture"
    with pytest.raises(ValueError, match="at least one bank"):
        viz.identity_similarity_widget({})


def test_learned_banks_show_each_m_against_the_equidistant_cosine():
    """Fig. 4 for banks learned with different M (notebook 07): the matrix, the histogram of
    pair cosines with -1/(M-1) marked, and the gap to it; the widget switches banks."""
    def simplex(m):
        v = np.eye(m) - 1.0 / m
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v @ v.T

    rng = np.random.default_rng(0)
    noisy = rng.normal(size=(15, 8))
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    banks = {"M = 10": simplex(10), "M = 15": noisy @ noisy.T}
    fig = viz.plot_learned_banks(banks)
    titles = [ax.get_title() for ax in fig.axes]
    assert "M = 10: RMS gap to equidistant 0.000" in titles
    assert any(t.startswith("M = 15: RMS gap to equidistant") and not t.endswith("0.000") for t in titles)
    lines = [line.get_xdata()[0] for ax in fig.axes for line in ax.get_lines()]
    assert pytest.approx(-1 / 9) in lines and pytest.approx(-1 / 14) in lines
    widget = viz.learned_banks_widget(banks)
    assert widget.figure.axes[0].images[0].get_array().shape == (10, 10)
    widget.controls["bank"].value = "M = 15"
    assert widget.figure.axes[0].images[0].get_array().shape == (15, 15)
    with pytest.raises(ValueError, match="at least one bank"):
        viz.learned_banks_widget({})


# --- attention -----------------------------------------------------------------------------

def test_attention_views_are_distributions(record):
    views = viz.attention_views(record, frame=2, layer=1, query=(2, 3))
    assert views["long"].shape == (1, 5, 7) and views["short"].shape == (5, 7)
    assert views["long"].sum() == pytest.approx(1.0, abs=1e-5)
    assert views["short"].sum() == pytest.approx(1.0, abs=1e-5)
    for key in ("long_carried", "short_carried"):
        assert views[key].shape == (3, 5, 7)
        np.testing.assert_allclose(views[key].sum(0), 1.0, atol=1e-5)


def test_attention_views_match_the_weights(record):
    head, (qy, qx) = 3, (0, 6)
    views = viz.attention_views(record, 1, 0, (qy, qx), head=head)
    q = qy * 7 + qx
    weights = record.short_term[0][0][head, q]
    # slot (dy, dx) = (1, -2) of the 15x15 window, counted from (-7, -7)
    assert views["short"][qy + 1, qx - 2] == pytest.approx(float(weights[(1 + 7) * 15 + (-2 + 7)]))
    assert float(weights[(-1 + 7) * 15 + 7]) == 0.0, "slots above the frame carry no weight"
    long_w = record.long_term[0][0][head]
    labels = record.token_labels(0).flatten(1)
    np.testing.assert_allclose(views["long_carried"][:, qy, qx], (long_w[q] @ labels.t()).numpy(), atol=1e-6)
    mean = viz.attention_views(record, 1, 0, (qy, qx))
    np.testing.assert_allclose(mean["long"].ravel(), record.long_term[0][0].mean(0)[q].numpy(), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"frame": 0}, "propagated frame"), ({"layer": 2}, "layer"), ({"query": (5, 0)}, "query"),
     ({"head": 8}, "head")],
)
def test_attention_views_bad_input(record, kwargs, message):
    args = {"frame": 1, "layer": 0, "query": (0, 0), "head": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        viz.attention_views(record, **args)


def test_default_query_lies_in_the_first_object(record):
    truth = np.zeros_like(record.masks)
    truth[-1, 0:20, 0:90] = 1  # an L: its centroid falls on the background
    truth[-1, 20:65, 0:20] = 1
    truth[-1, 40:65, 50:97] = 2
    ys, xs = np.nonzero(truth[-1] == 1)
    assert truth[-1, round(ys.mean()), round(xs.mean())] == 0
    wrong = record.masks.copy()
    wrong[-1] = 0  # a prediction that lost every object
    labelled = dataclasses.replace(record, masks=wrong, ground_truth=truth)
    qy, qx = viz.default_query(labelled)
    fraction = labelled.token_labels(len(truth) - 1, ground_truth=True)[1]
    assert float(fraction[qy, qx]) == pytest.approx(float(fraction.max()))
    py, px = viz.token_to_pixel(labelled, (qy, qx))
    assert truth[-1, round(py), round(px)] == 1, "the query token sits on object 1"
    unlabelled = dataclasses.replace(record, masks=wrong, ground_truth=None)
    assert viz.default_query(unlabelled) == (2, 3), "nothing to aim at: the centre token"


def test_plot_attention(record):
    fig = viz.plot_attention(record, frame=3, layer=1, query=(2, 2), head=0)
    assert len(fig.axes) == 8
    assert "frame 3, layer 1, head 0" in fig.get_suptitle()
    assert viz.default_query(record) in {(r, c) for r in range(5) for c in range(7)}
    # the 15x15 window is wider than this 5x7 grid: the box is clipped to the frame, visible
    (box,) = fig.axes[5].patches
    (x0, y0), (x1, y1) = box.get_bbox().get_points()
    assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 64


def test_plot_attention_layers_shows_every_layer_with_the_shares_it_carries(record):
    fig = viz.plot_attention_layers(record, 2, query=(1, 1), object_id=1)
    assert len(fig.axes) == 3 * record.num_layers == 6
    views = viz.attention_views(record, 2, 1, (1, 1))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[4] == f"long-term (Eq. 6): frame 0\non object 1: {views['long_carried'][1][1, 1]:.2f}"
    assert titles[5] == f"short-term (Eq. 7): frame 1\non object 1: {views['short_carried'][1][1, 1]:.2f}"
    assert "query token (1, 1) (object 1)" in fig.get_suptitle()
    assert len(fig.axes[2].patches) == 1  # the short-term window


def test_attention_widget_controls_change_the_picture(record):
    widget = viz.attention_widget({"a": record, "b": record})
    assert set(widget.controls) == {"model", "frame", "layer", "head", "row", "col"}
    last = viz.figure_image(widget.figure)
    for name, value in [("frame", 1), ("layer", 0), ("head", 5), ("row", 0), ("col", 6)]:
        widget.controls[name].value = value
        picture = viz.figure_image(widget.figure)
        assert (picture != last).any(), f"changing {name} must redraw a different picture"
        last = picture
    title = widget.figure.get_suptitle()
    assert "frame 1, layer 0, head 5, query token (0, 6)" in title
    assert widget.draws == 6
