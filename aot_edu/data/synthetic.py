"""Synthetic multi-object videos: train AOT on a CPU in minutes, and test without datasets.

Each video shows textured shapes (ellipses, rectangles, convex polygons) on a textured,
slowly panning background. Shapes move (bouncing off the borders), grow or shrink, rotate a
little, and occlude one another in a fixed depth order. *Distractors* copy the shape kind,
texture and colours of one of the objects but are background in the labels - the case that
needs AOT's identification mechanism (an object must be told apart from its look-alike by
identity and position, not by appearance).

Ground truth: label maps ``uint8 [T, H, W]``, 0 = background, ``1..N`` = the objects in a fixed
order; a pixel belongs to the front-most shape covering it (so an object hidden behind a
distractor is background there). Every object is visible in frame 0.

A video is a pure function of ``(seed, index)``: its ``numpy.random.Generator`` is
``default_rng([seed, index])``. Rendering is vectorised numpy; a 5-frame 129 x 129 video takes a
few milliseconds (``bench/bench_data.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .training import StaticClips, make_sample

SHAPES = ("ellipse", "rectangle", "polygon")
TEXTURES = ("stripes", "checker", "dots", "noise")


@dataclass
class _Shape:
    kind: int
    half: np.ndarray  # (a, b) half axes in pixels at scale 1
    centre: np.ndarray  # (y, x) at frame 0
    velocity: np.ndarray  # (vy, vx) pixels per frame
    angle: float
    spin: float  # radians per frame
    growth: float  # log-scale change per frame
    texture: int
    colours: np.ndarray  # [2, 3] float32
    frequency: float
    phase: float
    grid: np.ndarray  # small random grid for the "noise" texture
    normals: np.ndarray  # polygon half-plane normals [K, 2] (unit-circle polygon)
    offsets: np.ndarray  # polygon half-plane offsets [K]


def _as_range(value: int | tuple[int, int], what: str) -> tuple[int, int]:
    low, high = (value, value) if isinstance(value, int) else tuple(value)
    if low < 0 or high < low:
        raise ValueError(f"{what} must be an int or (min, max) with 0 <= min <= max, got {value!r}")
    return int(low), int(high)


def _polygon(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Half-planes ``n . p <= d`` of a random convex polygon inscribed in the unit circle."""
    k = int(rng.integers(3, 8))
    gaps = rng.uniform(0.5, 1.5, k)
    angles = np.cumsum(gaps / gaps.sum() * 2 * np.pi) + rng.uniform(0, 2 * np.pi)
    points = np.stack([np.cos(angles), np.sin(angles)], 1)
    edges = np.roll(points, -1, 0) - points
    normals = np.stack([edges[:, 1], -edges[:, 0]], 1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    offsets = (normals * points).sum(1)
    # Orient outwards: the centre (0, 0) must satisfy every inequality.
    sign = np.where(offsets < 0, -1.0, 1.0)
    return (normals * sign[:, None]).astype(np.float32), (offsets * sign).astype(np.float32)


def _random_color(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(20, 235, 3).astype(np.float32)


def _new_shape(
    rng: np.random.Generator, size: tuple[int, int], motion: float, scale: float = 1.0
) -> _Shape:
    h, w = size
    side = min(h, w)
    normals, offsets = _polygon(rng)
    direction = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.005, 0.035) * side * motion
    return _Shape(
        kind=int(rng.integers(len(SHAPES))),
        half=(rng.uniform(0.08, 0.2, 2) * side * scale).astype(np.float32),
        centre=(rng.uniform(0.2, 0.8, 2) * np.array([h, w])).astype(np.float32),
        velocity=np.array([np.sin(direction), np.cos(direction)], np.float32) * speed,
        angle=float(rng.uniform(0, 2 * np.pi)),
        spin=float(rng.uniform(-0.06, 0.06) * motion),
        growth=float(rng.uniform(-0.03, 0.03) * motion),
        texture=int(rng.integers(len(TEXTURES))),
        colours=np.stack([_random_color(rng), _random_color(rng)]),
        frequency=float(rng.uniform(0.25, 0.8)),
        phase=float(rng.uniform(0, 2 * np.pi)),
        grid=rng.uniform(0, 1, (5, 5)).astype(np.float32),
        normals=normals,
        offsets=offsets,
    )


def _look_alike(
    rng: np.random.Generator, model: _Shape, size: tuple[int, int], motion: float,
    scale: float = 1.0,
) -> _Shape:
    """A distractor: a new pose and motion, the model's shape kind, texture and colours."""
    shape = _new_shape(rng, size, motion, scale)
    shape.kind, shape.texture, shape.frequency = model.kind, model.texture, model.frequency
    shape.colours, shape.grid = model.colours.copy(), model.grid.copy()
    shape.normals, shape.offsets = model.normals, model.offsets
    shape.half = (model.half * rng.uniform(0.75, 1.25)).astype(np.float32)
    return shape


def _reflect(x: np.ndarray, high: float) -> np.ndarray:
    """Bounce a coordinate between 0 and ``high`` (triangle wave)."""
    period = 2 * high
    x = np.mod(x, period)
    return np.where(x > high, period - x, x)


def _coverage(shape: _Shape, t: np.ndarray, size: tuple[int, int]):
    """Where the shape covers each frame, and its local coordinates there.

    Only the box that the shape can reach during the video is computed. Returns
    ``(box, inside, u, v)``: ``box = (y0, y1, x0, x1)``, ``inside`` bool ``[T, y1-y0, x1-x0]``
    and the normalised local coordinates ``u, v`` of the covered pixels (in the shape's own
    frame, so textures move and rotate with it).
    """
    h, w = size
    cy = _reflect(shape.centre[0] + shape.velocity[0] * t, h - 1)
    cx = _reflect(shape.centre[1] + shape.velocity[1] * t, w - 1)
    scale = np.exp(shape.growth * t)
    reach = float(shape.half.max() * scale.max()) * 1.42 + 1  # covers rectangle corners
    y0, y1 = max(0, int(cy.min() - reach)), min(h, int(cy.max() + reach) + 2)
    x0, x1 = max(0, int(cx.min() - reach)), min(w, int(cx.max() + reach) + 2)
    ys = np.arange(y0, y1, dtype=np.float32)[None, :, None] - cy[:, None, None]
    xs = np.arange(x0, x1, dtype=np.float32)[None, None, :] - cx[:, None, None]
    angle = (shape.angle + shape.spin * t)[:, None, None]
    cos, sin = np.cos(angle), np.sin(angle)
    scale = scale[:, None, None]
    u = (cos * xs + sin * ys) / (scale * shape.half[1])
    v = (cos * ys - sin * xs) / (scale * shape.half[0])
    if shape.kind == 0:
        inside = u * u + v * v <= 1.0
    elif shape.kind == 1:
        inside = (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    else:
        inside = np.ones(u.shape, dtype=bool)
        for (nx, ny), d in zip(shape.normals, shape.offsets, strict=True):
            inside &= nx * u + ny * v <= d
    return (y0, y1, x0, x1), inside, u[inside], v[inside]


def _texture(shape: _Shape, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Colours ``[K, 3]`` of covered pixels from their local coordinates ``u, v`` in [-1, 1]."""
    f = shape.frequency * float(shape.half.mean())  # cycles across the shape ~ its size
    kind = TEXTURES[shape.texture]
    if kind == "stripes":
        p = 0.5 + 0.5 * np.sin(f * (u * np.cos(shape.phase) + v * np.sin(shape.phase)))
    elif kind == "checker":
        cells = np.floor(u * f / 3 + shape.phase) + np.floor(v * f / 3)
        p = np.mod(cells, 2)
    elif kind == "dots":
        p = (np.sin(f * u + shape.phase) * np.sin(f * v) > 0.3).astype(np.float32)
    else:  # smooth noise: bilinear lookup in a small random grid spanning the shape
        g = shape.grid.shape[0] - 1
        gy = np.clip((v + 1) * 0.5 * g, 0, g - 1e-4)
        gx = np.clip((u + 1) * 0.5 * g, 0, g - 1e-4)
        y0, x0 = gy.astype(np.int64), gx.astype(np.int64)
        fy, fx = gy - y0, gx - x0
        grid = shape.grid
        p = (
            grid[y0, x0] * (1 - fy) * (1 - fx)
            + grid[y0 + 1, x0] * fy * (1 - fx)
            + grid[y0, x0 + 1] * (1 - fy) * fx
            + grid[y0 + 1, x0 + 1] * fy * fx
        )
    c0, c1 = shape.colours
    return c0 + p.astype(np.float32)[:, None] * (c1 - c0)


def _background(
    rng: np.random.Generator, num_frames: int, size: tuple[int, int], motion: float
) -> np.ndarray:
    """A smooth colour field with fine texture, panning slowly: ``float32 [T, H, W, 3]``."""
    h, w = size
    pan = max(2, int(round(0.02 * min(h, w) * motion * num_frames)))
    big_h, big_w = h + 2 * pan, w + 2 * pan
    coarse = rng.uniform(30, 225, (4, 4, 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((big_w, big_h), Image.BICUBIC), np.float32)
    fine = rng.uniform(-25, 25, (max(2, big_h // 6), max(2, big_w // 6))).astype(np.float32)
    fine = np.asarray(Image.fromarray(fine, mode="F").resize((big_w, big_h), Image.BILINEAR))
    field = field + fine[..., None]
    start = rng.integers(0, 2 * pan + 1, 2)
    step = rng.uniform(-1, 1, 2) * pan / max(1, num_frames - 1)
    frames = np.empty((num_frames, h, w, 3), np.float32)
    for t in range(num_frames):
        oy, ox = np.clip(np.round(start + step * t), 0, 2 * pan).astype(int)
        frames[t] = field[oy : oy + h, ox : ox + w]
    return frames


def render_video(
    rng: np.random.Generator,
    num_frames: int = 5,
    size: int | tuple[int, int] = 129,
    num_objects: int = 2,
    num_distractors: int = 1,
    motion: float = 1.0,
    noise: float = 3.0,
    min_visible: float = 0.3,
    scale: float = 1.0,
    look_alike_objects: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one video.

    Args:
        rng: the video's generator (all randomness comes from it).
        num_frames, size: ``T`` and ``(H, W)`` (an int for square frames).
        num_objects: ``N``, labelled ``1..N``; num_distractors: look-alikes labelled 0.
        motion: multiplies speeds, spin and scale change (0 = static shapes).
        noise: standard deviation of per-pixel (uniform) noise, on the 0..255 scale.
        scale: multiplies the shapes' sizes (half axes 8-20 % of the shorter side at 1).
        min_visible: each object shows at least this fraction of its in-frame area in frame 0.
            Hidden objects are brought to the front or moved; in the rare case where that
            fails (crowded frames), the object is left unlabelled and the others keep the
            labels ``1..N'`` - so the number of objects is ``labels[0].max()``.
        look_alike_objects: objects ``2..N`` copy the shape kind, texture and colours of
            object 1 (each keeps its own pose, size and motion), like the distractors do: ``N``
            look-alike objects that only identity and position tell apart (paper Fig. 3).

    Returns:
        frames ``uint8 [T, H, W, 3]`` and labels ``uint8 [T, H, W]``; every label ``1..N'`` is
        present in frame 0.
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    if num_frames < 1 or min(size) < 8:
        raise ValueError(
            f"need num_frames >= 1 and frames of at least 8x8, got {num_frames}, {size}"
        )
    if not 0 <= num_objects <= 254 or num_distractors < 0:
        raise ValueError(
            f"num_objects must be in 0..254 and num_distractors >= 0, got {num_objects}, {num_distractors}"
        )
    t = np.arange(num_frames, dtype=np.float32)

    shapes = [_new_shape(rng, size, motion, scale) for _ in range(num_objects)]
    if look_alike_objects:
        shapes[1:] = [_look_alike(rng, shapes[0], size, motion, scale) for _ in shapes[1:]]
    labels_of = list(range(1, num_objects + 1))
    for _ in range(num_distractors if num_objects else 0):
        model = shapes[int(rng.integers(num_objects))]
        shapes.append(_look_alike(rng, model, size, motion, scale))
        labels_of.append(0)
    coverage = [_coverage(s, t, size) for s in shapes]
    depth = list(rng.permutation(len(shapes)))  # back to front

    def first_frame_labels(order: list[int]) -> np.ndarray:
        labels = np.zeros(size, np.uint8)
        for k in order:
            (y0, y1, x0, x1), inside = coverage[k][:2]
            labels[y0:y1, x0:x1][inside[0]] = labels_of[k]
        return labels

    # Every object must show `min_visible` of itself on frame 0: bring hidden objects to the
    # front; an object that keeps getting hidden (two objects covering each other) is moved
    # elsewhere; if that still fails it becomes an unlabelled shape.
    moves = [0] * num_objects
    rounds = 4 * num_objects
    for round_ in range(rounds + 1):
        counts = np.bincount(first_frame_labels(depth).ravel(), minlength=num_objects + 1)
        hidden = [
            k
            for k in range(num_objects)
            if counts[k + 1] < min_visible * max(1, coverage[k][1][0].sum())
        ]
        if not hidden or round_ == rounds:
            break
        k = hidden[0]
        if moves[k] < 2:
            depth.remove(k)
            depth.append(k)
            moves[k] += 1
        else:
            shapes[k].centre = (rng.uniform(0.2, 0.8, 2) * np.array(size)).astype(np.float32)
            coverage[k] = _coverage(shapes[k], t, size)
            moves[k] = 0
    if hidden:
        kept = [k for k in range(num_objects) if k not in hidden]
        for k in hidden:
            labels_of[k] = 0
        for new, k in enumerate(kept, start=1):
            labels_of[k] = new

    frames = _background(rng, num_frames, size, motion)
    labels = np.zeros((num_frames, *size), np.uint8)
    for k in depth:
        (y0, y1, x0, x1), inside, u, v = coverage[k]
        frames[:, y0:y1, x0:x1][inside] = _texture(shapes[k], u, v)
        labels[:, y0:y1, x0:x1][inside] = labels_of[k]
    if noise > 0:  # uniform noise of standard deviation `noise` (cheaper to draw than Gaussian)
        frames += (rng.random(frames.shape, dtype=np.float32) - 0.5) * (noise * 12**0.5)
    return np.clip(frames, 0, 255).astype(np.uint8), labels


def render_occlusion_video(
    rng: np.random.Generator,
    num_frames: int = 12,
    size: int | tuple[int, int] = 129,
    second_object: bool = True,
    noise: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A video in which object 1 passes behind an occluder and comes out the other side
    (paper Fig. 7: the case where short-term attention over frame ``t - 1`` cannot see the
    object and long-term attention over the memory frames must find it).

    Layout, for ``(H, W)`` frames: a static textured rectangle (the *occluder*, labelled 0, in
    front of everything) stands in the middle, rows ``0.2 H .. 0.8 H`` and columns
    ``0.36 W .. 0.64 W``. Object 1, an ellipse narrower than the occluder, moves at constant
    speed along the middle row from ``x = 0.18 W`` (frame 0, fully visible) to ``x = 0.82 W``
    (last frame, fully visible again), so that it is entirely hidden for a few frames in the
    middle of the video (two or more for ``num_frames >= 12``). With ``second_object``, object 2
    moves slowly along the top band, above the occluder, and stays visible throughout. The
    background and the textures are random (from ``rng``), the geometry is fixed.

    Returns:
        frames ``uint8 [T, H, W, 3]`` and labels ``uint8 [T, H, W]`` (0 background and
        occluder, 1 the occluded object, 2 the visible one); where object 1 is behind the
        occluder its pixels are background in the labels.
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    h, w = size
    if num_frames < 3 or min(size) < 33:
        raise ValueError(f"need num_frames >= 3 and frames of at least 33x33, got {num_frames}, {size}")
    t = np.arange(num_frames, dtype=np.float32)

    def placed(shape: _Shape, kind: int, half, centre, velocity=(0.0, 0.0)) -> _Shape:
        shape.kind, shape.angle, shape.spin, shape.growth = kind, 0.0, 0.0, 0.0
        shape.half = np.asarray(half, np.float32)
        shape.centre = np.asarray(centre, np.float32)
        shape.velocity = np.asarray(velocity, np.float32)
        return shape

    occluder = placed(_new_shape(rng, size, 0.0), 1, (0.3 * h, 0.14 * w), (0.5 * h, 0.5 * w))
    start, end = 0.18 * w, 0.82 * w
    passing = placed(_new_shape(rng, size, 0.0), 0, (0.1 * h, 0.08 * w), (0.5 * h, start),
                    (0.0, (end - start) / (num_frames - 1)))
    shapes, labels_of = [passing, occluder], [1, 0]  # back to front
    if second_object:
        above = placed(_new_shape(rng, size, 0.0), 1, (0.06 * h, 0.1 * w), (0.1 * h, 0.3 * w),
                      (0.0, 0.4 * w / max(1, num_frames - 1)))
        shapes, labels_of = [above, *shapes], [2, *labels_of]

    frames = _background(rng, num_frames, size, 0.3)
    labels = np.zeros((num_frames, *size), np.uint8)
    for shape, label in zip(shapes, labels_of, strict=True):
        (y0, y1, x0, x1), inside, u, v = _coverage(shape, t, size)
        frames[:, y0:y1, x0:x1][inside] = _texture(shape, u, v)
        labels[:, y0:y1, x0:x1][inside] = label
    if noise > 0:
        frames += (rng.random(frames.shape, dtype=np.float32) - 0.5) * (noise * 12**0.5)
    return np.clip(frames, 0, 255).astype(np.uint8), labels


class OcclusionVideos:
    """``num_videos`` videos of :func:`render_occlusion_video` (video ``i`` drawn from
    ``numpy.random.default_rng([seed, i])``), with the ``video(i)`` and ``len`` that the
    evaluation helpers (:func:`aot_edu.evaluation.analysis.score_videos`) read: held-out videos
    where an object must be found again after it was hidden (paper Fig. 7)."""

    def __init__(self, num_videos: int, num_frames: int = 20, size: int | tuple[int, int] = 129,
                 seed: int = 0) -> None:
        if num_videos < 1 or seed < 0:
            raise ValueError(f"need num_videos >= 1 and seed >= 0, got {num_videos}, {seed}")
        self.num_videos, self.num_frames, self.size, self.seed = num_videos, num_frames, size, seed

    def __len__(self) -> int:
        return self.num_videos

    def video(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(frames uint8 [T, H, W, 3], labels uint8 [T, H, W])`` of video ``index``."""
        if not 0 <= index < self.num_videos:
            raise IndexError(f"video {index} out of range 0..{self.num_videos - 1}")
        return render_occlusion_video(np.random.default_rng([self.seed, index]), self.num_frames, self.size)


class SyntheticVideos(Dataset):
    """A dataset of synthetic videos in the training sample format (see ``training``).

    Args:
        num_videos: length of the dataset.
        num_frames: frames per video (5 = one reference + 4, like the training clips).
        size: ``H = W`` or ``(H, W)``; 129 (= 16 * 8 + 1) keeps AOT's stride-16 grid exact.
        num_objects: objects per video, an int or an inclusive range ``(min, max)``.
        num_distractors: look-alike distractors per video, an int or a range.
        seed: video ``i`` is drawn from ``numpy.random.default_rng([seed, i])``.
        motion, noise, scale: see :func:`render_video`.
        max_gap: frames are ``U{1..max_gap}`` rendered frames apart (1 = consecutive frames),
            as the official training clips skip frames of a video (``DATA_RANDOM_GAP_*``):
            the clip spans more motion, so copying the previous mask is not enough.
        look_alike_objects: every video's objects look alike (see :func:`render_video`).
    """

    def __init__(
        self,
        num_videos: int = 256,
        num_frames: int = 5,
        size: int | tuple[int, int] = 129,
        num_objects: int | tuple[int, int] = (1, 3),
        num_distractors: int | tuple[int, int] = (0, 2),
        seed: int = 0,
        motion: float = 1.0,
        noise: float = 3.0,
        scale: float = 1.0,
        max_gap: int = 1,
        look_alike_objects: bool = False,
    ) -> None:
        if num_videos < 1:
            raise ValueError(f"num_videos must be at least 1, got {num_videos}")
        if seed is None or int(seed) < 0:
            raise ValueError(
                "seed must be a non-negative int (videos are functions of (seed, index))"
            )
        self.num_videos, self.num_frames = int(num_videos), int(num_frames)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.num_objects = _as_range(num_objects, "num_objects")
        self.num_distractors = _as_range(num_distractors, "num_distractors")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if max_gap < 1:
            raise ValueError(f"max_gap must be at least 1 (1 = consecutive frames), got {max_gap}")
        self.seed, self.motion, self.noise, self.scale = int(seed), motion, noise, scale
        self.max_gap = int(max_gap)
        self.look_alike_objects = bool(look_alike_objects)

    def __len__(self) -> int:
        return self.num_videos

    def _render(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        if not 0 <= index < self.num_videos:
            raise IndexError(f"video index {index} out of range for {self.num_videos} videos")
        rng = np.random.default_rng([self.seed, index])
        n = int(rng.integers(self.num_objects[0], self.num_objects[1] + 1))
        d = int(rng.integers(self.num_distractors[0], self.num_distractors[1] + 1))
        span = (self.num_frames - 1) * self.max_gap + 1
        frames, labels = render_video(
            rng, span, self.size, n, d, self.motion, self.noise, scale=self.scale,
            look_alike_objects=self.look_alike_objects,
        )
        if self.max_gap > 1:
            gaps = rng.integers(1, self.max_gap + 1, self.num_frames - 1)
            keep = np.concatenate([[0], np.cumsum(gaps)])
            frames, labels = frames[keep], labels[keep]
        return frames, labels, int(labels[0].max(initial=0))

    def video(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``uint8 [T, H, W, 3]`` and labels ``uint8 [T, H, W]`` of video ``index``."""
        return self._render(index)[:2]

    def name(self, index: int) -> str:
        return f"synthetic-{self.seed}-{index:05d}"

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += self.num_videos
        frames, labels, n = self._render(index)
        return make_sample(frames, labels, n, self.name(index))


class SyntheticImages(StaticClips):
    """Static-image pre-training clips (paper Sec. 5, stage 1) from rendered synthetic scenes.

    The paper pre-trains on images with instance masks (COCO, ECSSD, ...) turned into clips by
    augmentation; here each image is one rendered frame of :func:`render_video` (textured
    objects, look-alike distractors, textured background) and the clip is made exactly as for
    :class:`aot_edu.data.StaticTrain`: flips, colour jitter, an affine warp and a random resized
    crop per frame. The objects move as a whole and jump between frames, so a model can only
    follow them by matching their appearance: the stage teaches the encoder and the long-term
    attention what a previous-mask copy never needs.

    Args:
        num_images: length of the dataset; image ``i`` is drawn from
            ``numpy.random.default_rng([seed, i])`` (the clip's augmentation from
            ``(seed, epoch, i)``, see :class:`StaticClips`).
        size: output ``(H, W)`` (an int for square clips); the scene is rendered at this size.
        num_objects, num_distractors, noise, scale: see :class:`SyntheticVideos`.
        seq_len, max_objects, merge_prob: see :class:`StaticClips`.
    """

    def __init__(
        self,
        num_images: int = 256,
        size: int | tuple[int, int] = 129,
        seq_len: int = 5,
        num_objects: int | tuple[int, int] = (1, 3),
        num_distractors: int | tuple[int, int] = (0, 2),
        seed: int = 0,
        noise: float = 3.0,
        scale: float = 1.0,
        max_objects: int = 10,
        merge_prob: float = 0.0,
    ) -> None:
        size = (size, size) if isinstance(size, int) else tuple(size)
        super().__init__(size, seq_len, max_objects, merge_prob, seed)
        self.scenes = SyntheticVideos(num_images, 1, size, num_objects, num_distractors, seed=seed,
                                      motion=0.0, noise=noise, scale=scale)

    def __len__(self) -> int:
        return len(self.scenes)

    def load(self, index: int) -> tuple[Image.Image, Image.Image]:
        frames, labels = self.scenes.video(index)
        return Image.fromarray(frames[0]), Image.fromarray(labels[0])

    def name(self, index: int) -> str:
        return f"synthetic-image-{self.seed}-{index:05d}"
