"""Figures and widgets for the course: pure functions that return a matplotlib ``Figure``.

Every picture in the notebooks comes from a function here, so it can be tested and reused:

- masks and videos: :func:`colorize`, :func:`overlay`, :func:`draw_legend` (object ids in their
  colours, for overlay videos), :func:`show_images`, :func:`video_strip`, :func:`animate` /
  :func:`animation_html` (matplotlib's JavaScript player, no CDN), :func:`save_gif`,
  :func:`save_figure`;
- attention: :func:`heatmap_grid` (a rows x columns grid, e.g. layers x heads),
  :func:`attention_views` and :func:`plot_attention` (paper Fig. 6-7: where one query pixel looks
  in the long- and short-term memory, and the objects' colours carried by each attention) of a
  run recorded by :func:`aot_edu.inference.attention_maps.record_attention`;
  :func:`plot_attention_layers` (Fig. 7: one query's long- and short-term attention, layer by layer);
- the identity bank: :func:`plot_identity_similarity` (paper Fig. 4; the numbers:
  :mod:`aot_edu.evaluation.analysis`);
- widgets: :class:`InteractiveFigure` redraws a figure function when its controls change;
  :func:`identity_similarity_widget` and :func:`attention_widget` are the course's two widgets.
  They use core ipywidgets and inline PNGs only (Colab, JupyterLab; no ipympl, no CDN). Where
  widgets cannot render (GitHub, nbviewer) the notebooks show a static figure first.

Figures are created with ``matplotlib.figure.Figure`` (not pyplot), so calling these functions
leaves no global state behind; a notebook displays a returned figure like any other value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from aot_edu.data import davis_palette
from aot_edu.evaluation.analysis import cosine_similarity_matrix
from aot_edu.inference.attention_maps import AttentionRecord, attention_views

# --- masks and videos ----------------------------------------------------------------------

def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def colorize(labels) -> np.ndarray:
    """Label map ``[H, W]`` (0..255) -> DAVIS-palette colours ``uint8 [H, W, 3]``."""
    labels = _numpy(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D label map [H, W], got shape {labels.shape}")
    return davis_palette()[labels.astype(np.int64) % 256]


def mix_colors(probs) -> np.ndarray:
    """Soft labels ``[N+1, H, W]`` (background first) -> ``uint8 [H, W, 3]``: each pixel is the
    probability-weighted mix of the DAVIS colours (background black)."""
    probs = _numpy(probs).astype(np.float32)
    colours = davis_palette()[: probs.shape[0]].astype(np.float32)
    return np.clip(np.einsum("khw,kc->hwc", probs, colours), 0, 255).astype(np.uint8)


def overlay_soft(frame, probs, alpha: float = 0.7, normalize: bool = False) -> np.ndarray:
    """Soft labels ``[N+1, H, W]`` over ``frame [H, W, 3]``: each pixel is tinted by the objects'
    colours in proportion to their probability; pure background leaves the frame unchanged.

    ``normalize``: scale the tint so the pixel with the most object probability is fully tinted
    (to see weak propagation; say so in the figure).
    """
    frame, probs = _numpy(frame).astype(np.float32), _numpy(probs).astype(np.float32)
    foreground = np.clip(1.0 - probs[0], 0.0, 1.0)
    if normalize and foreground.max() > 0:
        foreground = foreground / foreground.max()
    objects = foreground[..., None] * alpha
    colours = mix_colors(np.concatenate([np.zeros_like(probs[:1]), probs[1:]]) /
                          np.maximum(probs[1:].sum(0, keepdims=True), 1e-6)).astype(np.float32)
    return ((1 - objects) * frame + objects * colours).round().astype(np.uint8)


def overlay(frame, labels, alpha: float = 0.5, outline: bool = True) -> np.ndarray:
    """Paint the objects of ``labels [H, W]`` over ``frame uint8 [H, W, 3]``; ``uint8 [H, W, 3]``.

    Object pixels are blended with their DAVIS colour and (``outline``) their boundary pixels
    painted solid; background pixels are unchanged. Label 255 (void) is left unpainted.
    """
    frame, labels = _numpy(frame), _numpy(labels)
    if frame.shape[:2] != labels.shape:
        raise ValueError(f"frame {frame.shape[:2]} and labels {labels.shape} differ in size")
    out = frame.astype(np.float32)
    colours = colorize(labels).astype(np.float32)
    objects = (labels > 0) & (labels != 255)
    out[objects] = (1 - alpha) * out[objects] + alpha * colours[objects]
    if outline:
        padded = np.pad(labels, 1, mode="edge")
        edge = np.zeros(labels.shape, dtype=bool)
        for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
            edge |= padded[dy : dy + labels.shape[0], dx : dx + labels.shape[1]] != labels
        edge &= objects
        out[edge] = colours[edge]
    return out.round().astype(np.uint8)


def _legend_font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()


def draw_legend(image, labels: Sequence[int], font_size: int | None = None) -> np.ndarray:
    """The object ids ``labels`` written over ``image uint8 [H, W, 3]`` (top-left, on a dark
    band), each after a swatch of its DAVIS colour, as :func:`overlay` paints it; returns a new
    ``uint8 [H, W, 3]``. Rows wrap at the image width. ``font_size``: about ``H / 28``."""
    from PIL import Image, ImageDraw

    image = _numpy(image)
    if not len(labels):
        return image.copy()
    height, width = image.shape[:2]
    size = font_size or max(9, round(height / 28))
    font = _legend_font(size)
    pad, swatch = max(2, size // 4), size
    picture = Image.fromarray(image)
    band = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(band)
    x = y = pad
    items = []
    for label in labels:
        text = str(int(label))
        text_width = draw.textlength(text, font=font)
        item_width = swatch + pad + text_width + 2 * pad
        if x > pad and x + item_width > width:
            x, y = pad, y + swatch + pad
        items.append((x, y, int(label), text, item_width))
        x += item_width
    right = max(ix + w for ix, _, _, _, w in items)
    draw.rectangle((0, 0, min(right, width), y + swatch + 2 * pad), fill=(0, 0, 0, 150))
    palette = davis_palette()
    for ix, iy, label, text, _ in items:
        colour = tuple(int(c) for c in palette[label % 256])
        draw.rectangle((ix, iy + pad // 2, ix + swatch, iy + pad // 2 + swatch), fill=(*colour, 255),
                       outline=(255, 255, 255, 255))
        draw.text((ix + swatch + pad, iy + pad // 2 + swatch / 2), text, font=font,
                  fill=(255, 255, 255, 255), anchor="lm")
    return np.asarray(Image.alpha_composite(picture.convert("RGBA"), band).convert("RGB"))



def _grid(rows: int, cols: int, size: float, aspect: float = 1.0) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(size * cols, size * rows * aspect + 0.35), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def show_images(
    images: Sequence, titles: Sequence[str] | None = None, ncols: int | None = None,
    size: float = 2.4, suptitle: str | None = None,
) -> Figure:
    """A grid of images: RGB ``[H, W, 3]``, integer label maps ``[H, W]`` (DAVIS colours) or
    float maps ``[H, W]`` (heat maps, viridis)."""
    images = [_numpy(im) for im in images]
    if not images:
        raise ValueError("show_images needs at least one image")
    ncols = ncols or len(images)
    nrows = math.ceil(len(images) / ncols)
    h, w = images[0].shape[:2]
    fig, axes = _grid(nrows, ncols, size, h / w)
    for i, image in enumerate(images):
        ax = axes.flat[i]
        if image.ndim == 2 and np.issubdtype(image.dtype, np.floating):
            ax.imshow(image, cmap="viridis")
        else:
            ax.imshow(colorize(image) if image.ndim == 2 else image)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def video_strip(
    frames, masks=None, max_frames: int = 6, size: float = 2.2, title: str | None = None,
    frame_indices: Sequence[int] | None = None, frame_numbers: Sequence[int] | None = None,
) -> Figure:
    """Frames ``[T, H, W, 3]`` (with ``masks [T, H, W]`` overlaid) as one row of at most
    ``max_frames`` evenly spaced frames (or ``frame_indices``), each titled with its index
    (or with ``frame_numbers[index]``, e.g. the frame numbers in the original video)."""
    frames = _numpy(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3], got shape {frames.shape}")
    t = len(frames)
    picks = list(frame_indices) if frame_indices is not None else sorted(
        set(np.linspace(0, t - 1, min(max_frames, t)).round().astype(int).tolist())
    )
    images = [frames[i] if masks is None else overlay(frames[i], _numpy(masks)[i]) for i in picks]
    numbers = list(frame_numbers) if frame_numbers is not None else list(range(t))
    return show_images(images, [f"frame {numbers[i]}" for i in picks], size=size, suptitle=title)


def _overlaid(frames, masks) -> list[np.ndarray]:
    frames = _numpy(frames)
    if masks is None:
        return list(frames)
    masks = _numpy(masks)
    if len(masks) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(masks)} masks")
    return [overlay(f, m) for f, m in zip(frames, masks, strict=True)]


def animate(frames, masks=None, interval: int = 120, size: float = 4.0):
    """A matplotlib ``FuncAnimation`` of the frames (with masks overlaid)."""
    from matplotlib.animation import FuncAnimation

    images = _overlaid(frames, masks)
    h, w = images[0].shape[:2]
    fig = Figure(figsize=(size, size * h / w))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    shown = ax.imshow(images[0])

    def draw(i: int):
        shown.set_data(images[i])
        return (shown,)

    return FuncAnimation(fig, draw, frames=len(images), interval=interval, blit=True)


def animation_html(frames, masks=None, interval: int = 120, size: float = 4.0) -> str:
    """The clip as a self-contained HTML/JavaScript player (matplotlib ``to_jshtml``: frames
    embedded as PNGs, no internet needed). Display with ``IPython.display.HTML``."""
    return animate(frames, masks, interval, size).to_jshtml(default_mode="loop")


def save_gif(path: str | Path, frames, masks=None, duration: int = 120, scale: float = 1.0) -> Path:
    """Write the clip (with masks overlaid) as an animated GIF; returns the path."""
    from PIL import Image

    images = _overlaid(frames, masks)
    pil = [Image.fromarray(im) for im in images]
    if scale != 1.0:
        pil = [im.resize((round(im.width * scale), round(im.height * scale)), Image.BILINEAR) for im in pil]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil[0].save(path, save_all=True, append_images=pil[1:], duration=duration, loop=0)
    return path


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Save a figure as PNG without a software/version stamp, so reruns give identical files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    return path


def figure_image(fig: Figure, dpi: float = 40) -> np.ndarray:
    """The rendered pixels of a figure at ``dpi``, ``uint8 [H, W, 4]`` (tests compare pictures)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    original = fig.get_dpi()
    fig.set_dpi(dpi)
    try:
        canvas.draw()
        return np.asarray(canvas.buffer_rgba()).copy()
    finally:
        fig.set_dpi(original)


# --- attention heat maps -------------------------------------------------------------------

def heatmap_grid(
    maps, row_labels: Sequence[str] | None = None, col_labels: Sequence[str] | None = None,
    background=None, cmap: str = "viridis", size: float = 1.8, title: str | None = None,
    marker: tuple[float, float] | None = None,
) -> Figure:
    """A grid of heat maps ``[R, C, h, w]`` (e.g. layers x heads), d2l ``show_heatmaps`` style.

    ``background``: an RGB image ``[H, W, 3]`` shown under every map (maps are resized to it,
    bilinearly with aligned corners, the token grid of a ``16k + 1`` input); ``marker``: a
    ``(y, x)`` point (in the displayed image's pixels) drawn on every map.
    """
    maps = _numpy(maps).astype(np.float32)
    if maps.ndim != 4:
        raise ValueError(f"maps must be [rows, cols, h, w], got shape {maps.shape}")
    rows, cols, h, w = maps.shape
    if background is not None:
        background = _numpy(background)
        maps = _resize_maps(maps.reshape(rows * cols, h, w), background.shape[:2]).reshape(
            rows, cols, *background.shape[:2]
        )
    fig, axes = _grid(rows, cols, size, maps.shape[2] / maps.shape[3])
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            if background is not None:
                ax.imshow(background)
                ax.imshow(maps[r, c], cmap=cmap, alpha=0.6)
            else:
                ax.imshow(maps[r, c], cmap=cmap)
            if marker is not None:
                ax.plot(marker[1], marker[0], "w+", markersize=9, markeredgewidth=2)
            if r == 0 and col_labels is not None:
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0 and row_labels is not None:
                ax.set_axis_on()
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_ylabel(row_labels[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[K, h, w]`` -> ``[K, H, W]``, bilinear with aligned corners (token ``i`` sits on pixel
    ``16 i`` of a ``16k + 1`` input)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    t = torch.as_tensor(maps)[:, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=True)[:, 0].numpy()


def token_to_pixel(record: AttentionRecord, query: tuple[int, int]) -> tuple[float, float]:
    """Pixel ``(y, x)`` of a token's centre in the record's frames (``16 i`` on a 16k+1 input)."""
    (h, w), (height, width) = record.token_size, record.frames.shape[1:3]
    return (query[0] * (height - 1) / max(h - 1, 1), query[1] * (width - 1) / max(w - 1, 1))


def plot_attention(record: AttentionRecord, frame: int = 1, layer: int = 0,
                   query: tuple[int, int] | None = None, head: int | None = None,
                   size: float = 2.6) -> Figure:
    """Paper Fig. 6-7 for one frame, layer and query token (``None``: the first object's centre).

    Top row, long-term attention: the query on frame ``t``; where it looks in the (first)
    memory frame; the objects' colours every token of frame ``t`` receives through long-term
    attention. Bottom row, the same for short-term attention over frame ``t - 1`` (the white
    box is the 15x15 token window, clipped to the frame). Right: the model's prediction for frame ``t``.
    """
    query = query if query is not None else default_query(record)
    views = attention_views(record, frame, layer, query, head)
    size_hw = record.frames.shape[1:3]
    py, px = token_to_pixel(record, query)
    memory = record.long_term_frames[frame - 1]
    fig, axes = _grid(2, 4, size, size_hw[0] / size_hw[1])
    heads = "mean of heads" if head is None else f"head {head}"
    fig.suptitle(f"{record.title + ': ' if record.title else ''}frame {frame}, layer {layer}, "
                 f"{heads}, query token {tuple(query)}", fontsize=10)
    for row in range(2):
        axes[row, 0].imshow(record.frames[frame])
        axes[row, 0].plot(px, py, "w+", markersize=12, markeredgewidth=2.5)
        axes[row, 0].set_title(f"query on frame {frame}", fontsize=9)
    long_map = _resize_maps(views["long"][:1], size_hw)[0]
    axes[0, 1].imshow(record.frames[memory[0]])
    axes[0, 1].imshow(long_map, cmap="viridis", alpha=0.65)
    extra = f" (+{len(memory) - 1} more)" if len(memory) > 1 else ""
    axes[0, 1].set_title(f"long-term: memory frame {memory[0]}{extra}", fontsize=9)
    short_map = _resize_maps(views["short"][None], size_hw)[0]
    axes[1, 1].imshow(record.frames[frame - 1])
    axes[1, 1].imshow(short_map, cmap="viridis", alpha=0.65)
    reach = record.max_dis * record.dilation
    (h, w), (height, width) = record.token_size, size_hw
    sy, sx = (height - 1) / max(h - 1, 1), (width - 1) / max(w - 1, 1)
    from matplotlib.patches import Rectangle

    # The window's token cells, clipped to the frame (at the border, or on a grid smaller than
    # the window, the part outside holds no keys and would be drawn off the axes).
    top, bottom = max((query[0] - reach - 0.5) * sy, 0.5), min((query[0] + reach + 0.5) * sy, height - 1.5)
    left, right = max((query[1] - reach - 0.5) * sx, 0.5), min((query[1] + reach + 0.5) * sx, width - 1.5)
    axes[1, 1].add_patch(Rectangle((left, top), right - left, bottom - top,
                                   fill=False, edgecolor="white", linewidth=1.5))
    axes[1, 1].set_xlim(-0.5, width - 0.5)
    axes[1, 1].set_ylim(height - 0.5, -0.5)
    axes[1, 1].set_title(f"short-term: window on frame {frame - 1}", fontsize=9)
    for row, key in ((0, "long_carried"), (1, "short_carried")):
        probs = _resize_maps(views[key], size_hw)
        axes[row, 2].imshow(overlay_soft(record.frames[frame], probs, normalize=True))
        axes[row, 2].set_title(f"objects carried by {'long' if row == 0 else 'short'}-term\n"
                               f"(tint scaled to strongest: {1 - probs[0].min():.2f})", fontsize=8)
    axes[0, 3].imshow(overlay(record.frames[frame], record.masks[frame]))
    axes[0, 3].set_title(f"prediction, frame {frame}", fontsize=9)
    axes[1, 3].imshow(overlay(record.frames[0], record.masks[0]))
    axes[1, 3].set_title("given mask, frame 0", fontsize=9)
    return fig


def default_query(record: AttentionRecord) -> tuple[int, int]:
    """A token inside object 1 in the last frame (a query worth looking at).

    The token whose 17x17 patch holds the largest fraction of object 1 in the ground truth
    (the prediction if the record has none); among equals, the one nearest the object's
    centre. (A centroid can lie outside a curved object, and a poor prediction elsewhere.)
    The centre token when object 1 is absent.
    """
    t = len(record.frames) - 1
    fraction = record.token_labels(t, ground_truth=record.ground_truth is not None)[1]
    h, w = record.token_size
    if float(fraction.max()) == 0:
        return h // 2, w // 2
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    cy, cx = float((ys * fraction).sum() / fraction.sum()), float((xs * fraction).sum() / fraction.sum())
    distance = (ys - cy) ** 2 + (xs - cx) ** 2
    best = fraction >= fraction.max() - 1e-6
    index = int(torch.where(best, distance, torch.inf).flatten().argmin())
    return index // w, index % w


def plot_attention_layers(record: AttentionRecord, frame: int, query: tuple[int, int] | None = None,
                          object_id: int | None = None, size: float = 2.2) -> Figure:
    """Paper Fig. 7 for one frame and query token, every LSTT layer (mean over heads).

    One row per layer: the query on frame ``t``; its long-term attention (Eq. 6) over the
    first memory frame; its short-term attention (Eq. 7) over frame ``t - 1`` (white box: the
    window, clipped to the frame). Each map is titled with the share of the weight that lands
    on the query's object (the given mask of the memory frame; the model's prediction of
    frame ``t - 1``): what each attention carries about the object to the query.
    ``query``: token ``(row, col)``, default :func:`default_query`; ``object_id``: the object
    whose share is given, default the true label at the query token's centre.
    """
    query = query if query is not None else default_query(record)
    size_hw = record.frames.shape[1:3]
    (h, w), (height, width) = record.token_size, size_hw
    py, px = token_to_pixel(record, query)
    memory = record.long_term_frames[frame - 1]
    truth = record.ground_truth if record.ground_truth is not None else record.masks
    obj = object_id if object_id is not None else int(
        truth[frame][min(round(py), height - 1), min(round(px), width - 1)])
    fig, axes = _grid(record.num_layers, 3, size, size_hw[0] / size_hw[1])
    fig.suptitle(f"{record.title + ': ' if record.title else ''}frame {frame}, query token {tuple(query)} "
                 f"(object {obj}), mean of heads", fontsize=10)
    reach = record.max_dis * record.dilation
    sy, sx = (height - 1) / max(h - 1, 1), (width - 1) / max(w - 1, 1)
    from matplotlib.patches import Rectangle

    for layer in range(record.num_layers):
        views = attention_views(record, frame, layer, query)
        ax = axes[layer, 0]
        ax.imshow(record.frames[frame])
        ax.plot(px, py, "w+", markersize=12, markeredgewidth=2.5)
        ax.set_axis_on()
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(f"layer {layer}", fontsize=9)
        ax.set_title(f"query on frame {frame}", fontsize=9)
        for col, key, shown, label in ((1, "long_carried", memory[0], "long-term (Eq. 6)"),
                                       (2, "short_carried", frame - 1, "short-term (Eq. 7)")):
            maps = views["long"][:1] if col == 1 else views["short"][None]
            ax = axes[layer, col]
            ax.imshow(record.frames[shown])
            ax.imshow(_resize_maps(maps, size_hw)[0], cmap="viridis", alpha=0.65)
            share = float(views[key][obj][query]) if obj > 0 else float("nan")
            ax.set_title(f"{label}: frame {shown}\non object {obj}: {share:.2f}", fontsize=8)
        top, bottom = max((query[0] - reach - 0.5) * sy, 0.5), min((query[0] + reach + 0.5) * sy, height - 1.5)
        left, right = max((query[1] - reach - 0.5) * sx, 0.5), min((query[1] + reach + 0.5) * sx, width - 1.5)
        axes[layer, 2].add_patch(Rectangle((left, top), right - left, bottom - top,
                                           fill=False, edgecolor="white", linewidth=1.5))
    return fig


# --- the identity bank ---------------------------------------------------------------------

def plot_identity_similarity(vectors, num_identities: int | None = None,
                             include_background: bool = False, title: str = "",
                             size: float = 3.6) -> Figure:
    """Paper Fig. 4: the cosine similarity of the identity vectors as a heat map.

    ``vectors``: ``[M+1, C]`` from :meth:`aot_edu.model.identity.IdentityBank.identity_vectors` (row 0
    is the background), or a dict ``{name: [M+1, C]}`` for one panel per bank. Shows identities
    ``1..num_identities`` (default all ``M``), with the background first if
    ``include_background``. Colour scale ``-1..1``; the numbers are printed when the matrix is
    small, and each panel's title gives the off-diagonal mean and maximum.
    """
    banks = vectors if isinstance(vectors, dict) else {title: vectors}
    fig = Figure(figsize=((size + 0.6) * len(banks) + 0.6, size + 0.3), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(banks), squeeze=False)[0]
    for ax, (name, bank) in zip(axes, banks.items(), strict=True):
        image = _draw_similarity(ax, bank, num_identities, include_background, name)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="cosine similarity")
    return fig


def _draw_similarity(ax, vectors, num_identities, include_background, title):
    v = torch.as_tensor(vectors).detach().float().cpu()
    m = v.shape[0] - 1 if num_identities is None else int(num_identities)
    if not 1 <= m <= v.shape[0] - 1:
        raise ValueError(f"num_identities must be 1..{v.shape[0] - 1}, got {num_identities}")
    first = 0 if include_background else 1
    sim = cosine_similarity_matrix(v[first : m + 1]).numpy()
    labels = [("bg" if i == 0 else str(i)) for i in range(first, m + 1)]
    return _draw_similarity_matrix(ax, sim, labels, title)


def _draw_similarity_matrix(ax, sim: np.ndarray, labels: Sequence[str], title: str):
    image = ax.imshow(sim, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("identity")
    if len(labels) <= 11:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(sim[i, j]) > 0.6 else "black")
    off = sim[~np.eye(len(labels), dtype=bool)]
    stats = f"off-diagonal mean {off.mean():.2f}, max {off.max():.2f}" if off.size else ""
    ax.set_title(f"{title}\n{stats}" if title else stats, fontsize=9)
    return image


# --- widgets -------------------------------------------------------------------------------

class InteractiveFigure:
    """A figure function plus ipywidgets controls; changing a control redraws the figure.

    ``draw(**values) -> Figure`` is called with the controls' current values (keys of
    ``controls``). ``figure`` always holds the latest figure, so tests can set a control's
    ``value`` and look at the new picture. Displaying the object shows the controls above an
    ``Output`` area holding the figure as an inline PNG (works on Colab and in JupyterLab).
    """

    def __init__(self, draw: Callable[..., Figure], controls: dict) -> None:
        import ipywidgets as widgets

        self.draw = draw
        self.controls = controls
        self.output = widgets.Output()
        self.figure: Figure | None = None
        self.draws = 0
        for control in controls.values():
            control.observe(self._changed, names="value")
            # Fixed widths in a row that wraps: a narrow notebook (a 1280-px window with the
            # file browser open) puts the controls on two rows instead of shrinking the
            # sliders' tracks to nothing and cutting off the last readout.
            slider = isinstance(control, widgets.IntSlider | widgets.FloatSlider)
            control.layout.width = "360px" if slider else "260px"
            control.layout.flex = "0 0 auto"
        bar = widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([bar, self.output])
        self.update()

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def _changed(self, _change) -> None:
        self.update()

    def update(self) -> Figure:
        """Redraw with the current control values and show the result in the output area."""
        self.figure = self.draw(**self.values())
        self.draws += 1
        from IPython import get_ipython

        if get_ipython() is not None:  # inside a notebook: replace the shown picture
            from IPython.display import display

            with self.output:
                self.output.clear_output(wait=True)
                display(self.figure)
        return self.figure

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        from .gallery import gallery_html, static_widgets

        # The course's website (`make docs`) has no kernel: there the widget is a gallery of
        # pictures drawn at build time (aot_edu.gallery).
        display(HTML(gallery_html(self)) if static_widgets() else self.widget)


def plot_learned_banks(similarities: dict[str, np.ndarray], size: float = 3.4) -> Figure:
    """Paper Fig. 4 for banks learned with different M: per bank, its ``[M, M]`` cosine
    similarity matrix, and the histogram of its off-diagonal cosines against ``-1/(M-1)``, the
    cosine of every pair in a perfectly equidistant bank (dashed), with the root-mean-square
    gap between the two in the title."""
    fig = Figure(figsize=(2 * size * len(similarities) + 0.8, size + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 * len(similarities), squeeze=False)[0]
    image = None
    for i, (name, sim) in enumerate(similarities.items()):
        sim = np.asarray(sim, dtype=np.float64)
        m = sim.shape[0]
        image = _draw_similarity_matrix(axes[2 * i], sim, [str(k) for k in range(1, m + 1)], name)
        off = sim[~np.eye(m, dtype=bool)]
        equidistant = -1.0 / (m - 1)
        gap = float(np.sqrt(np.mean((off - equidistant) ** 2)))
        ax = axes[2 * i + 1]
        ax.hist(off, bins=np.linspace(-1, 1, 41), color="tab:blue")
        ax.axvline(equidistant, color="k", ls="--", label=f"equidistant -1/(M-1) = {equidistant:.3f}")
        ax.set_xlim(-1, 1)
        ax.set_xlabel("cosine of a pair of identities")
        ax.set_ylabel("pairs")
        ax.set_title(f"M = {m}: RMS gap to equidistant {gap:.3f}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.colorbar(image, ax=[axes[2 * i] for i in range(len(similarities))], shrink=0.8,
                 label="cosine similarity")
    return fig


def learned_banks_widget(similarities: dict[str, np.ndarray]) -> InteractiveFigure:
    """Fig. 4 explorer for banks learned with different M (notebook 07): choose a bank by
    name (e.g. ``"M = 15, seed 0"``) and see :func:`plot_learned_banks` of it."""
    import ipywidgets as widgets

    if not similarities:
        raise ValueError("learned_banks_widget needs at least one bank {name: [M, M] cosines}")
    names = list(similarities)
    controls = {"bank": widgets.Dropdown(options=names, value=names[0], description="bank")}

    def draw(bank: str) -> Figure:
        return plot_learned_banks({bank: similarities[bank]})

    return InteractiveFigure(draw, controls)


def identity_similarity_widget(banks: dict[str, Tensor]) -> InteractiveFigure:
    """Fig. 4 explorer: choose a bank (e.g. random / trained / official), how many identities
    to show, and whether to include the background identity."""
    import ipywidgets as widgets

    if not banks:
        raise ValueError("identity_similarity_widget needs at least one bank {name: [M+1, C]}")
    names = list(banks)
    m = min(torch.as_tensor(v).shape[0] for v in banks.values()) - 1
    controls = {
        "bank": widgets.Dropdown(options=names, value=names[0], description="bank"),
        "num_identities": widgets.IntSlider(value=m, min=2, max=m, description="M"),
        "include_background": widgets.Checkbox(value=False, description="background"),
    }

    def draw(bank: str, num_identities: int, include_background: bool) -> Figure:
        return plot_identity_similarity(banks[bank], num_identities, include_background, title=bank)

    return InteractiveFigure(draw, controls)


def attention_widget(records: AttentionRecord | dict[str, AttentionRecord]) -> InteractiveFigure:
    """Fig. 6-7 explorer: choose the model (if several records), frame, layer, head and query
    token; shows :func:`plot_attention`."""
    import ipywidgets as widgets

    records = records if isinstance(records, dict) else {records.title or "model": records}
    first = next(iter(records.values()))
    h, w = first.token_size
    qy, qx = default_query(first)
    layers = max(r.num_layers for r in records.values())
    controls = {
        "model": widgets.Dropdown(options=list(records), description="model"),
        "frame": widgets.IntSlider(value=len(first.frames) - 1, min=1, max=len(first.frames) - 1,
                                   description="frame"),
        "layer": widgets.IntSlider(value=layers - 1, min=0, max=layers - 1, description="layer"),
        "head": widgets.Dropdown(options=[("mean", -1)] + [(str(i), i) for i in range(first.num_heads)],
                                 value=-1, description="head"),
        "row": widgets.IntSlider(value=qy, min=0, max=h - 1, description="query row"),
        "col": widgets.IntSlider(value=qx, min=0, max=w - 1, description="query col"),
    }

    def draw(model: str, frame: int, layer: int, head: int, row: int, col: int) -> Figure:
        record = records[model]
        layer = min(layer, record.num_layers - 1)
        frame = min(frame, len(record.frames) - 1)
        rh, rw = record.token_size
        return plot_attention(record, frame, layer, (min(row, rh - 1), min(col, rw - 1)),
                              None if head < 0 else head)

    return InteractiveFigure(draw, controls)
