# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aot-edu/aot-edu/blob/main/notebooks/01_attention.ipynb)
#
# # 01 - Attention: matching and propagation
#
# AOT is built from one operation, **attention**. This notebook shows it doing the job AOT
# needs - *finding where each pixel of a new frame came from in an old frame, and carrying the
# old frame's labels over* - on a problem small enough to see, then measures why methods that
# follow one object at a time get slower with every object.
#
# Paper: Eq. 2 (attention), Eq. 1 (post-ensemble). **Budget: under a minute on a 2-core CPU.**

# %%
# On Colab: fetch the course and install it (about a minute). On your own checkout: nothing to do.
import subprocess
import sys
from pathlib import Path

if "google.colab" in sys.modules:
    repo = Path("/content/aot-edu")
    if not repo.exists():
        subprocess.run(["git", "clone", "--depth", "1", "https://github.com/aot-edu/aot-edu", str(repo)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", str(repo)], check=True)
    sys.path.insert(0, str(repo))

# %%
import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from aot_edu import course, viz
from aot_edu.course import exercises
from aot_edu.evaluation.metrics import jaccard
from aot_edu.model.attention import merge_heads, scaled_dot_product_attention, split_heads
from aot_edu.model.identity import one_hot_labels

settings = course.setup()

# %% [markdown]
# ## Attention in one line (Eq. 2)
#
# Split each image into **tokens** - here one token per pixel; in AOT one per 16x16 patch. Each
# token is a vector of numbers (its **features**). Attention takes three sets of tokens:
#
# - **queries** `Q` `[n, d]`: the tokens asking "where do I come from?" (the new frame);
# - **keys** `K` `[m, d]`: the tokens that can be matched (the old frame, the **memory**);
# - **values** `V` `[m, c]`: what each key carries along (for us: its object label).
#
# $$\mathrm{Att}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d}}\right) V \qquad \text{(Eq. 2)}$$
#
# `Q K^T` scores every query against every key (**matching**: a large dot product means
# "similar"); the **softmax** turns each query's row of scores into weights that are positive
# and sum to 1 (the **attention weights** `A`, `[n, m]`); `A V` gives each query a weighted
# average of the values (**propagation**). Dividing by `sqrt(d)` keeps the scores from growing
# with the vector length `d`. Here is the package's implementation:

# %%
course.show_source(scaled_dot_product_attention)

# %% [markdown]
# It works on **multi-head** tensors `[B, heads, tokens, d]`: the `C` channels of a token are
# cut into `heads` groups of `d = C / heads` channels, and each group (**head**) attends on its
# own - several matchings in parallel. `split_heads` / `merge_heads` do the cutting:

# %%
tokens = torch.randn(6, 1, 256)  # [N tokens, batch B, C channels]: the package's "sequence" layout
heads = split_heads(tokens, 8)
print("[N, B, C]", tuple(tokens.shape), "-> [B, heads, N, d]", tuple(heads.shape))
assert torch.equal(merge_heads(heads), tokens)

# %% [markdown]
# ### Your turn 1: scaled dot-product attention (Eq. 2)
#
# Each **Your turn** is two cells: one where you write a function (or a module) with a given
# signature, and one that checks it. The check runs your code on small fixed inputs against
# the package's implementation and says what is wrong, in these words: which axis of which
# shape, a missing `1/sqrt(C)`, a softmax over the wrong axis... `exercises.hint("attention")`
# gives one hint at a time. Until you write it, your cell raises `NotImplementedError` and
# the check lets the course's solution stand in, with a note, so that the notebook still runs
# to the end. From then on the notebook uses *your* function.
#
# Write `attention(Q, K, V)` for `Q [..., n, C]`, `K [..., m, C]` and `V [..., m, C_v]`
# (any leading axes: batch, heads), returning `A V` `[..., n, C_v]`. Only `@`,
# `.transpose(-2, -1)`, `.softmax(...)` and `math.sqrt` (or `** 0.5`) are needed.

# %%
def attention(Q: Tensor, K: Tensor, V: Tensor) -> Tensor:
    """Eq. 2: softmax(Q K^T / sqrt(C)) V."""
    raise NotImplementedError("your turn: write Eq. 2 here")


# %%
attention = exercises.check("attention", attention)

# %% [markdown]
# Yours now runs on the notebook's own tensors. With `V` all ones every output is 1, because
# each query's weights sum to 1 over the keys:

# %% expected_output="A V with V = 1: [1.0]\n"
generator = torch.Generator().manual_seed(0)
q, k = torch.randn(2, 8, 5, 32, generator=generator), torch.randn(2, 8, 7, 32, generator=generator)
print("A V with V = 1:", attention(q, k, torch.ones(2, 8, 7, 1)).round(decimals=5).unique().tolist())

# %% [markdown]
# ### Your turn 2: multi-head attention
#
# The self-attention of every LSTT block (notebook 03) is Eq. 2 in `heads` heads, with its
# own learned projections of the queries, keys and values and one of the merged result. Write
# the module's `forward` for the package's **sequence layout**, tokens `[N, B, C]`: project,
# split into heads as `split_heads` above does (head `h` owns channels `h*d .. h*d + d - 1`),
# use your `attention` per head, merge, project. The parameter names are those of the
# trained checkpoints (`linear_Q`, `linear_K`, `linear_V`, `projection`): the check loads
# the package's weights into your module with `strict=True`, and in notebook 03 your module
# runs inside your LSTT block with trained weights.

# %%
class MultiheadAttention(nn.Module):
    """Eq. 2 in `heads` heads, with projections of its own."""

    def __init__(self, dim: int = 256, heads: int = 8) -> None:
        super().__init__()
        self.heads = heads
        self.linear_Q = nn.Linear(dim, dim)
        self.linear_K = nn.Linear(dim, dim)
        self.linear_V = nn.Linear(dim, dim)
        self.projection = nn.Linear(dim, dim)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        """query [N_q, B, C], key and value [N_k, B, C] -> [N_q, B, C]."""
        raise NotImplementedError("your turn: project, split into heads, attend, merge, project")


# %%
MultiheadAttention = exercises.check("MultiheadAttention", MultiheadAttention)

# %% [markdown]
# ## A toy you can see: carry labels from one frame to another
#
# Take two frames of a synthetic video, shrunk to 40x72 pixels, one token per pixel. A trained
# network *learns* projections that make matching tokens have large dot products. Here we
# build such features by hand: a token's colour and its position. To make the dot product
# measure *closeness* we use a small trick - with query `[f, 1]` and key `[2g, -|g|^2]`,
#
# $$[f, 1] \cdot [2g, -|g|^2] = 2 f\cdot g - |g|^2 = -|f - g|^2 + |f|^2,$$
#
# and `|f|^2` is the same for every key of a query, which the softmax ignores. So the weights
# are `softmax(-|f - g|^2 * sharpness)`: the closest colours and positions win.

# %%
frames, masks = course.synthetic_clip(seed=3, num_frames=6, size=(161, 289), num_objects=3)


def shrink(image, nearest=False):
    return np.array(Image.fromarray(image).resize((72, 40), Image.NEAREST if nearest else Image.BILINEAR))


old_frame, new_frame = shrink(frames[0]), shrink(frames[3])
old_labels, new_labels = shrink(masks[0], nearest=True), shrink(masks[3], nearest=True)
H, W = old_labels.shape
num_objects = int(masks[0].max())


def features(image, position_weight=1.0):
    """[H*W, 5]: colour (0..1) and position (0..1) of every pixel."""
    yy, xx = np.mgrid[0:H, 0:W]
    colour = torch.tensor(image, dtype=torch.float32).reshape(-1, 3) / 255
    position = torch.tensor(np.stack([yy / H, xx / W], -1), dtype=torch.float32).reshape(-1, 2)
    return torch.cat([colour, position_weight * position], dim=1)


def propagate(position_weight=4.0, sharpness=100.0):
    f, g = features(new_frame, position_weight), features(old_frame, position_weight)
    d = f.shape[1] + 1
    scale = (sharpness * d**0.5) ** 0.5  # split between q and k; cancels Eq. 2's 1/sqrt(d)
    q = torch.cat([f, torch.ones(len(f), 1)], 1) * scale
    k = torch.cat([2 * g, -(g**2).sum(1, keepdim=True)], 1) * scale
    v = one_hot_labels(torch.as_tensor(old_labels, dtype=torch.long)[None], num_objects + 1)[0]
    v = v.reshape(num_objects + 1, -1).t()  # [H*W, N+1]: the old frame's labels, one-hot
    out, weights = scaled_dot_product_attention(q[None, None], k[None, None], v[None, None], need_weights=True)
    return out[0, 0].t().reshape(num_objects + 1, H, W), weights[0, 0]


def object_ious(labels):
    """Per object: overlap (intersection over union, notebook 06's J) with the truth."""
    return [round(float(jaccard(new_labels == j, labels == j)), 2) for j in range(1, num_objects + 1)]


carried, weights = propagate()
predicted = carried.argmax(0).numpy()
print("weights:", tuple(weights.shape), "| labels carried:", tuple(carried.shape))
print("overlap with the truth per object:", object_ious(predicted))

# %%
query = (int(H * 0.55), int(W * 0.3))
heat = weights[query[0] * W + query[1]].reshape(H, W).numpy()
fig = viz.show_images(
    [viz.overlay(old_frame, old_labels), new_frame, heat / heat.max(), viz.overlay_soft(new_frame, carried),
     viz.overlay(new_frame, predicted), viz.overlay(new_frame, new_labels)],
    ["old frame + labels (V)", "new frame (queries)", f"weights of query {query}", "A V: labels carried",
     "argmax of A V", "truth"], ncols=3, size=2.6,
    suptitle="Attention as matching and propagation (Eq. 2), one token per pixel")
ax = fig.axes[2]
ax.plot(query[1], query[0], "r+", markersize=10, markeredgewidth=2)
viz.save_figure(fig, settings.figures_dir / "01_toy_propagation.png")
fig

# %% [markdown]
# The query (red cross) attends to the old-frame pixels of similar colour near the same place,
# and the labels follow: each object overlaps its true mask by about 0.9 or more (1 would be
# perfect). The two knobs matter, as the next cell shows: with `position_weight=0` only colour
# counts, and pixels of similar colour anywhere - the textured background, the look-alike
# distractor - compete for every query, so the small third object is lost; with a low
# `sharpness` the weights spread out and the labels blur away. AOT's **short-term attention**
# (notebook 03) restricts matching to a window around the same position for the same reason.
# Change the numbers in the list and run it again.

# %%
for position_weight, sharpness in [(4.0, 100.0), (1.0, 100.0), (0.0, 100.0), (4.0, 10.0)]:
    labels = propagate(position_weight, sharpness)[0].argmax(0).numpy()
    print(f"position weight {position_weight:.0f}, sharpness {sharpness:>5.0f}: "
          f"overlap with the truth per object {object_ious(labels)}")

# %% [markdown]
# ## One object at a time: post-ensemble (Eq. 1)
#
# The values above were *all* objects' labels at once, and for plain attention that is free:
# attention is **linear in `V`**, so carrying N label columns costs almost what carrying one
# costs. Real networks do more than attend, though: before AOT, methods (e.g. STM, CFBI) fed
# each object's mask *separately* through their matching and decoding network `F`, then merged
# the N results, the **post-ensemble** of Eq. 1:
#
# $$Y' = \mathrm{Merge}\big(F(I^t, I^m, Y^m_1), \dots, F(I^t, I^m, Y^m_N)\big) \qquad \text{(Eq. 1)}$$
#
# `N` objects, `N` runs. AOT writes all N masks into *one* embedding by giving each object its
# own **identity vector** (notebook 02) and runs `F` once. Below, a toy `F` - attention
# followed by a small two-layer decoder, on 1024 tokens of 256 channels - is timed both ways.

# %%
torch.manual_seed(0)
C, tokens_n, M = 256, 1024, 10
embed_mask = torch.nn.Linear(1, C)  # one object: its binary mask -> a value vector
decoder_one = torch.nn.Sequential(torch.nn.Linear(C, C), torch.nn.GELU(), torch.nn.Linear(C, 1))
identities = torch.linalg.qr(torch.randn(C, M + 1))[0].t()  # [M+1, C] orthonormal identity vectors
decoder_ids = torch.nn.Sequential(torch.nn.Linear(C, C), torch.nn.GELU(), torch.nn.Linear(C, M + 1))
q_t, k_m = torch.randn(1, 8, tokens_n, C // 8), torch.randn(1, 8, tokens_n, C // 8)
attention_calls = 0


def attend(values):  # values [tokens, C] -> [tokens, C], one multi-head attention
    global attention_calls
    attention_calls += 1
    out, _ = scaled_dot_product_attention(q_t, k_m, split_heads(values[:, None], 8))
    return merge_heads(out)[:, 0]


def post_ensemble(masks_one_hot):  # [tokens, N+1] -> N runs of F
    return [decoder_one(attend(embed_mask(masks_one_hot[:, j : j + 1]))) for j in range(1, masks_one_hot.shape[1])]


def identification(masks_one_hot):  # one run: masks -> identities (Eq. 3) -> F
    return decoder_ids(attend(masks_one_hot @ identities[: masks_one_hot.shape[1]]))


object_counts = settings.pick([1, 2, 4, 8], [1, 2, 4, 6, 8, 10])
methods = {"post-ensemble (N runs)": post_ensemble, "identification (1 run)": identification}
masks_for = {n: torch.nn.functional.one_hot(torch.randint(0, n + 1, (tokens_n,)), n + 1).float() for n in object_counts}
calls = {}
with torch.inference_mode():
    for n in object_counts:
        for name, fn in methods.items():
            attention_calls = 0
            fn(masks_for[n])
            calls[name, n] = attention_calls
    # fastest of 5 interleaved runs (course.best_times), in milliseconds
    seconds = course.best_times({(name, n): (lambda fn=fn, n=n: fn(masks_for[n]))
                                 for name, fn in methods.items() for n in object_counts}, repeats=5)
timings = {name: [seconds[name, n] * 1000 for n in object_counts] for name in methods}
for n in object_counts:
    assert calls["post-ensemble (N runs)", n] == n and calls["identification (1 run)", n] == 1
print("attention calls per frame:", {f"N={n}": (calls["post-ensemble (N runs)", n], 1) for n in object_counts})

# %%
from matplotlib.figure import Figure

fig = Figure(figsize=(5, 3.2), layout="constrained")
ax = fig.add_subplot()
for name, values in timings.items():
    ax.plot(object_counts, values, "o-", label=name)
ax.set_xlabel("objects N")
ax.set_ylabel("ms per frame (toy F)")
ax.set_title("Post-ensemble grows with N; identification does not", fontsize=10)
ax.legend()
# timings differ from machine to machine: saved with the outputs (ignored by git), not figures/
viz.save_figure(fig, settings.outputs_dir / "01_post_ensemble_timing.png")
print("measured here:", {name: [round(t, 1) for t in values] for name, values in timings.items()}, "ms")
fig

# %% [markdown]
# The measured milliseconds depend on your machine; the shape does not: N attention and
# decoder runs against one. Notebook 04 measures the same with the real AOT.
#
# Does writing all objects into one embedding lose anything? For the attention itself, no -
# if the identity vectors are **orthonormal** (unit length, at right angles), the result can be
# read back exactly. That is the next exercise.
#
# ### Exercise: read the objects back
#
# With `Y` the one-hot masks `[tokens, N+1]` and `D` orthonormal identities `[N+1, C]`,
# attention on the embedding gives `Z = A (Y D)`. Recover `A Y` - what N+1 separate one-column
# attentions would give - from `Z` alone (and `D`). Hint: `D D^T = I` when rows are orthonormal.

# %%
n = 4
Y = torch.nn.functional.one_hot(torch.randint(0, n + 1, (tokens_n,)), n + 1).float()
D = identities[: n + 1]
A = torch.softmax(q_t[0, 0] @ k_m[0, 0].t() / 32**0.5, dim=-1)
Z = A @ (Y @ D)


def read_back(Z, D):
    return None  # your code here


course.check("A Y from Z", read_back(Z, D), A @ Y, atol=1e-4)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution (double-click to show)
def read_back_solution(Z, D):
    return Z @ D.t()  # A Y D D^T = A Y


course.check("A Y from Z (solution)", read_back_solution(Z, D), A @ Y, atol=1e-4)

# %% [markdown]
# In AOT the identities are *learned* and the network after the attention is non-linear, so
# nothing is exactly orthogonal - the network learns to keep objects apart (notebook 02 looks
# at how far apart the learned identities are).
#
# **Summary.** Attention matches queries to keys and propagates the keys' values (Eq. 2);
# you wrote it, and its multi-head form, yourself.
# Propagating labels is linear in the values, which is why many objects *can* share one
# pass; methods that run their network per object pay N times (Eq. 1). Next: **02 - the
# identification mechanism**.
