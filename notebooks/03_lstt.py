# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aot-edu/aot-edu/blob/main/notebooks/03_lstt.ipynb)
#
# # 03 - The Long Short-Term Transformer
#
# The identities of notebook 02 are carried from frame to frame by the **Long Short-Term
# Transformer (LSTT)**: a few identical **blocks**, each refining the tokens of the current
# frame in three steps - attention to itself, attention to memory frames (long-term) and to
# the previous frame nearby (short-term), and a small feed-forward network. This notebook takes
# one block apart, re-derives its two memory attentions by hand, then looks at the attention
# maps of a trained model layer by layer (paper Fig. 6) and at an object that disappears
# behind another and comes back (paper Fig. 7).
#
# Paper: Sec. 3.3, Fig. 2c (the LSTT block), Eq. 6 (long-term attention), Eq. 7 (short-term
# attention). **Budget: under 3 minutes on a 2-core CPU** (with the course
# model trained by `make lab` / `make test`).

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
import torch.nn.functional as F  # noqa: F401 (yours: F.unfold, F.gelu)
from IPython.display import display
from torch import Tensor, nn

import aot_edu
from aot_edu import build_model, course, viz
from aot_edu.course import exercises
from aot_edu.inference import attention_maps
from aot_edu.inference.engine import AOTEngine, official_input_size, prepare_frame
from aot_edu.model import VARIANTS, count_parameters
from aot_edu.model.attention import merge_heads, split_heads  # noqa: F401 (merge_heads: yours)
from aot_edu.model.identity import one_hot_labels
from aot_edu.model.lstt import LSTTBlock, map_to_seq, seq_to_map

settings = course.setup()

# %% [markdown]
# ## One block
#
# The tokens of the current frame `x` (`[HW, B, C]`: one `C = 256` vector per 16x16 patch) pass
# through three sub-layers. Each starts with a **LayerNorm** (rescales every token to mean 0,
# variance 1 - "pre-norm") and ends by *adding* its result to `x` (a **residual connection**, so
# each sub-layer learns a correction):
#
# 1. **self-attention** - the frame's tokens attend to each other (Eq. 2 with queries, keys
#    and values all from this frame, plus a **position embedding**: fixed sine waves that tell
#    a token where it is);
# 2. **long-term + short-term attention** - the frame's tokens attend to the *memory*:
#    - long-term (Eq. 6): every token of every **long-term memory frame** (the first frame with its
#      given mask, plus - in AOT-L - a predicted frame every 5 frames); good for objects that
#      reappear or change a lot;
#    - short-term (Eq. 7): only a **15x15 window** of tokens around the same position in the
#      **previous frame** (frame `t - 1`, with its predicted mask); good for smooth motion, and
#      cheap;
#
#    both share one query projection, and the memory's values carry the identity embedding:
#    `linear_V(norm2(x) + ID)`, the memory frame's normalised tokens plus `ID` (Eq. 3), then
#    the value projection - as in the official code (the paper's AttID, Eq. 4, writes it on
#    the attention values, `V + ID`). This is where the objects are matched and propagated;
# 3. **feed-forward** - per token `256 -> 1024 -> 256` channels, with, in the middle, a
#    **GroupNorm** (normalises groups of 32 channels), a **GELU** (a smooth version of
#    `max(0, x)`) and a **5x5 depth-wise convolution** (each of the 1024 channels filtered on
#    its own over its 5x5 neighbourhood of tokens: cheap spatial mixing).
#
# The package's block, exactly in that order:

# %%
course.show_source(LSTTBlock.forward)

# %% [markdown]
# ## Running it on two frames
#
# A randomly initialised AOT-S (two blocks) is enough to watch the shapes and re-derive the
# numbers. The **engine** keeps the memories: the first frame goes in as the reference (with
# its mask), frame 1 is propagated with `need_weights=True` so every block returns its
# attention weights.

# %%
torch.manual_seed(0)
model = build_model("aots")
frames, masks = course.synthetic_clip(seed=5, num_frames=3, size=129, num_objects=2)
size = official_input_size(*frames.shape[1:3])
encode = [model.encode_image(prepare_frame(torch.as_tensor(f), size)) for f in frames[:2]]
engine = AOTEngine(model, long_term_gap=VARIANTS["aots"].long_term_gap_test)
with torch.inference_mode():
    engine.add_reference_frame(encode[0], one_hot_labels(torch.as_tensor(masks[:1]).long(), 11), [2])
    output = engine.propagate(encode[1], need_weights=True)
h, w = engine.size_2d
maps = output.attention[0]  # block 0
print(f"input {size}: token grid {h} x {w} = {h * w} tokens, {model.config.att_heads} heads")
print("self-attention weights:", tuple(maps.self_attn.shape), "[B, heads, HW, HW]")
print("long-term weights:     ", tuple(maps.long_term.shape), "[B, heads, HW, memory frames * HW]")
print("short-term weights:    ", tuple(maps.short_term.shape), "[B, heads, HW, 15 * 15]")

# %% [markdown]
# ## Long-term attention, by hand
#
# Re-run block 0 on frame 1 up to its long-term attention and apply Eq. 2 per head to the
# memory's keys. Note two details of AOT: the query projection `linear_Q` is shared by the long-
# and short-term attention, and the *same* projection made the memory's keys when frame 0 was
# processed - so a token matches memory tokens that "looked the same" to this projection.

# %%
block = model.LSTT.layers[0]
heads, d = model.config.att_heads, model.config.dim // model.config.att_heads
with torch.inference_mode():
    x = map_to_seq(encode[1][-1])  # frame 1's tokens [HW, 1, C]
    pos = model.position_embedding((h, w), 1)
    t = block.norm1(x)
    x = x + block.self_attn(t + pos, t + pos, t)[0]  # sub-layer 1
    query = block.linear_Q(block.norm2(x))  # [HW, 1, C]
    memory_keys, memory_values = engine.long_term[0]  # block 0's long-term memory [T*HW, 1, C]
    long_by_hand = torch.softmax(split_heads(query, heads) @ split_heads(memory_keys, heads).transpose(-2, -1) / d**0.5, dim=-1)
torch.testing.assert_close(long_by_hand, maps.long_term, atol=1e-5, rtol=1e-4)
print("long-term weights re-derived:", tuple(long_by_hand.shape))

# %% [markdown]
# ### Your turn 1: long-term attention (Eq. 6)
#
# The paper writes block `l`'s long-term attention with the tokens `X^t_l` of frame `t`, the
# tokens `X^m_l` of the memory frames and their masks `Y^m`:
#
# $$\mathrm{Att}_{LT}(X^t_l, X^m_l, Y^m) = \mathrm{Att}_{ID}(X^t_l W^K_l,\, X^m_l W^K_l,\, X^m_l W^V_l \mid Y^m) \qquad \text{(Eq. 6)}$$
#
# One projection `W^K` (the block's `linear_Q`) makes both the queries and the memory's keys;
# `W^V` (`linear_V`) makes the values, which carry the memory's identity embedding
# `E_m = ID(Y^m, D)` (AttID, Eq. 4). The trained weights come from the official code, which
# adds `E_m` *before* the value projection, `V = W^V(X^m + E_m)`: do the same, or they will
# not fit. Write it in the sequence layout - `X_t [HW, B, C]`, `X_m` and `E_m [T*HW, B, C]`
# (all `T` memory frames one after another) - in `heads` heads (`split_heads` / `merge_heads`
# are imported), without an output projection (the block adds its own).

# %%
def long_term_attention(X_t: Tensor, X_m: Tensor, E_m: Tensor, W_K: nn.Linear, W_V: nn.Linear,
                        heads: int) -> Tensor:
    """Eq. 6: AttID(X_t W^K, X_m W^K, X_m W^V | Y_m) over all memory frames -> [HW, B, C]."""
    raise NotImplementedError("your turn")


# %%
long_term_attention = exercises.check("long_term_attention", long_term_attention)

# %% [markdown]
# ## Short-term attention: a 15x15 window with relative positions
#
# For query token `p = (y, x)` and window slot `s = (dy, dx)`, `dy, dx` in `-7..7`:
#
# $$\mathrm{logit}_{h}(p, s) = \frac{q_h(p) \cdot k_h(p + s)}{\sqrt{d}} + r_h(p, s), \qquad A_h(p, \cdot) = \mathrm{softmax}_s$$
#
# where `k` are frame `t - 1`'s keys and `r` a learned **relative position** term: a 1x1
# convolution of the query giving one logit per slot and head (so "look 3 tokens left" can be
# favoured or not, whatever the content). Slots outside the frame get weight 0. The package
# computes all queries at once with banded matrix products. In the paper's notation, with
# `N(p)` the `lambda x lambda` window around `p` (`lambda = 15`),
#
# $$\mathrm{Att}_{ST}(X^t_l, X^{t-1}_l, Y^{t-1} \mid p) = \mathrm{Att}_{LT}(X^t_{l,p},\, X^{t-1}_{l,N(p)},\, Y^{t-1}_{l,N(p)}) \qquad \text{(Eq. 7)}$$
#
# - long-term attention restricted to the window of frame `t - 1`; the relative position terms
# (`r` above, and a learned bias added to each slot's value) are the official code's.
#
# ### Your turn 2: short-term attention (Eq. 7)
#
# Write `short_term_attention` for maps `Q, K, V [B, C, h, w]` (`Q` the projected queries of
# frame `t`, `K, V` frame `t - 1`'s keys and values), `relative_logits [B, heads * lam^2, h, w]`
# (slot `s = (dy + R) * lam + (dx + R)`, `R = (lam - 1) // 2`, of head `hd` is channel
# `hd * lam^2 + s`) and
# `relative_values [heads, d, lam^2]`, returning the sequence layout `[h*w, B, C]` (token
# `y * w + x`), before the output projection. `F.unfold` gives every pixel its neighbours;
# slots outside the frame must get no weight. The check first finds out which tokens each
# query of yours looks at, so a window off by one is caught with its rows and columns.

# %%
def short_term_attention(Q: Tensor, K: Tensor, V: Tensor, relative_logits: Tensor,
                         relative_values: Tensor, heads: int, lam: int = 15) -> Tensor:
    """Eq. 7: each query attends to the lam x lam window of frame t-1 around it -> [h*w, B, C]."""
    raise NotImplementedError("your turn")


# %%
short_term_attention = exercises.check("short_term_attention", short_term_attention)

# %% [markdown]
# Yours, on block 0's real tensors of frame 1 (the query above as a map, frame 0's keys and
# values from the engine's short-term memory), gives what the block computed:

# %%
with torch.inference_mode():
    query_map = seq_to_map(query, (h, w))
    short_keys, short_values = engine.short_term[0]  # block 0's short-term memory, map layout
    relative = block.short_term_attn.relative_emb_k(query_map)
    your_short = short_term_attention(query_map, short_keys, short_values, relative,
                                 block.short_term_attn.relative_emb_v, heads, 15)
    package_out, _ = aot_edu.model.attention.short_term_attention(
        query_map, short_keys, short_values, relative, block.short_term_attn.relative_emb_v, heads)
torch.testing.assert_close(your_short, package_out, atol=1e-4, rtol=1e-4)
print("your short-term attention on block 0:", tuple(your_short.shape), "- the same as the package's")

# %% [markdown]
# ## The feed-forward with its depth-wise convolution
#
# ### Exercise: count its parameters
#
# `linear1` (256 -> 1024, with bias), GroupNorm over 1024 channels (a scale and a shift per
# channel), a 5x5 depth-wise convolution over 1024 channels (no bias), `linear2` (1024 -> 256,
# with bias). How many parameters in total?

# %%
feed_forward_parameters = None  # your number here

feed_forward = [block.linear1, block.activation, block.linear2]
course.check("feed-forward parameters", feed_forward_parameters, sum(count_parameters(m) for m in feed_forward))

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution (double-click to show)
solution = (256 * 1024 + 1024) + 2 * 1024 + 1024 * 5 * 5 + (1024 * 256 + 256)
course.check("feed-forward parameters (solution)", solution, sum(count_parameters(m) for m in feed_forward))
print(f"{solution:,} of the block's {count_parameters(block):,} parameters; "
      f"the depth-wise convolution is only {1024 * 25:,} of them")

# %% [markdown]
# ### Your turn 3: an LSTT block (Fig. 2c)
#
# Now the whole block, from your pieces. Its parameters are given below with the trained
# model's names, so that the trained weights load into it; the attention modules hold only
# their own parameters (the block's `linear_Q` is `W^K` and its `linear_V` is `W^V` for both
# long- and short-term attention). `MultiheadAttention` is the package's, returning only the
# output like yours of notebook 01 (paste yours over it if you like).
#
# Write `forward`. Unlike the package's block, yours keeps a memory frame as its normalised
# tokens and identity embedding, `(X_m, E_m)`, and projects them itself, as Eq. 6 and 7 are
# written:
#
# - `X` `[HW, B, C]` are frame `t`'s tokens, `pos` their position embedding, `size_2d = (h, w)`;
# - a **reference frame** comes with its identity embedding `E` and is its own memory: with
#   `Xn = norm2(X)` after the self-attention, `long_term_memory = short_term_memory = (Xn, E)`;
# - any other frame gets `long_term_memory = (X_m, E_m)` (`[T*HW, B, C]`) and
#   `short_term_memory = (X_{t-1}, E_{t-1})` (`[HW, B, C]`);
# - return `(X_out, Xn)`: the refined tokens, and `Xn`, what this frame leaves for the memory.
#
# The check compares yours with the package's block on both kinds of frame and, when they
# differ, finds the first sub-layer whose input differs.

# %%
class PackageMultiheadAttention(aot_edu.model.attention.MultiheadAttention):
    """The package's multi-head attention (notebook 01), returning only the output."""

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        return super().forward(query, key, value)[0]


class LongTermAttention(nn.Module):
    """Eq. 6's own parameter: the output projection."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.projection = nn.Linear(dim, dim)


class ShortTermAttention(nn.Module):
    """Eq. 7's own parameters: relative-position logits and values, the output projection."""

    def __init__(self, dim: int, heads: int, lam: int) -> None:
        super().__init__()
        self.relative_emb_k = nn.Conv2d(dim, heads * lam * lam, kernel_size=1, groups=heads)
        self.relative_emb_v = nn.Parameter(torch.zeros(heads, dim // heads, lam * lam))
        self.projection = nn.Linear(dim, dim)


class FeedForwardActivation(nn.Module):
    """The feed-forward's hidden activation: GroupNorm, GELU, 5x5 depth-wise convolution."""

    def __init__(self, ffn_dim: int) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(32, ffn_dim)
        self.conv = nn.Conv2d(ffn_dim, ffn_dim, kernel_size=5, padding=2, groups=ffn_dim, bias=False)


# %%
class LSTTBlock(nn.Module):
    """Fig. 2c: self-attention, long- and short-term attention, feed-forward; pre-norm."""

    def __init__(self, dim: int = 256, self_heads: int = 8, att_heads: int = 8,
                 ffn_dim: int = 1024, lam: int = 15) -> None:
        super().__init__()
        self.att_heads, self.lam = att_heads, lam
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = PackageMultiheadAttention(dim, self_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.linear_Q = nn.Linear(dim, dim)  # W^K of Eq. 6-7: queries and memory keys
        self.linear_V = nn.Linear(dim, dim)  # W^V
        self.long_term_attn = LongTermAttention(dim)
        self.short_term_attn = ShortTermAttention(dim, att_heads, lam)
        self.norm3 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.activation = FeedForwardActivation(ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)

    def forward(self, X: Tensor, pos: Tensor, size_2d: tuple[int, int], E: Tensor | None = None,
                long_term_memory: tuple[Tensor, Tensor] | None = None,
                short_term_memory: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """X [HW, B, C] -> (X_out [HW, B, C], Xn = norm2 of the tokens after self-attention)."""
        raise NotImplementedError("your turn: self-attention, long + short-term, feed-forward")


# %%
LSTTBlock = exercises.check("LSTTBlock", LSTTBlock)

# %% [markdown]
# ### Your block, trained weights
#
# Your block has the trained model's parameter names, so it takes the trained weights:
# `exercises.plug_in(model, LSTTBlock)` copies a model and replaces each of its LSTT blocks by
# one of yours, loaded from the trained block with `load_state_dict(strict=True)` (a misnamed or
# missing parameter is refused). Both models then segment the same video. In quick mode the
# model is the course model; in full mode (a GPU) the official AOT-L on a DAVIS video when
# its checkpoint and DAVIS are at hand.

# %%
def model_and_video():
    """Official AOT-L on DAVIS "dog" (full mode, when available), else the course model on a
    synthetic video."""
    if not settings.quick:
        official = course.official_model(settings, "aotl", download=True)
        davis = course.davis_clip(settings, "dog", num_frames=30) if official is not None else None
        if davis is not None:
            return official, "official AOT-L weights", davis, "DAVIS dog"
    model, source = course.course_model(settings)
    video = course.synthetic_clip(seed=21, num_frames=settings.pick(8, 30), size=193, num_objects=3)
    return model, source, video, "a synthetic video"


trained_for_yours, trained_for_yours_source, (frames, truth), video_name = model_and_video()
yours_model = exercises.plug_in(trained_for_yours, LSTTBlock)
theirs = aot_edu.segment(frames, truth[0], trained_for_yours)
yours = aot_edu.segment(frames, truth[0], yours_model)
same = float((yours.masks == theirs.masks).mean())
print(f"{trained_for_yours.config.title}: {trained_for_yours_source}")
print(f"with your {trained_for_yours.config.lstt_layers} LSTT blocks on {video_name}, "
      f"{len(frames)} frames: {same:.2%} of the pixels get the package's label"
      + (" - the masks are identical" if same == 1.0 else ""))
assert same > 0.999, "your block should give the package's masks"
shown = list(range(0, len(frames), max(1, len(frames) // 4)))[:4]
viz.show_images([viz.overlay(frames[t], yours.masks[t]) for t in shown]
                + [viz.overlay(frames[t], theirs.masks[t]) for t in shown],
                [f"your blocks, frame {t}" for t in shown] + [f"package, frame {t}" for t in shown],
                ncols=len(shown), size=2.2)

# %% [markdown]
# ## Stacking blocks
#
# AOT-T has 1 block, AOT-S 2, AOT-B and AOT-L 3. Each block has its *own* memories (its own
# keys and values of every memory frame), and the decoder sees every block's output. A deeper
# block matches with features the earlier blocks have already refined (and that already carry
# propagated identities), so its attention can be more selective.
#
# ## Attention maps of a trained model (paper Fig. 6)
#
# Random weights attend almost uniformly. A trained model is needed: the official AOT-L if
# its checkpoint is on disk (full mode downloads it), else the course model - the AOT-L that
# ships with the course, trained on synthetic scenes and videos (notebook 05). Both have
# **three blocks**, as in the paper's Fig. 6, so the maps can be compared block by block.
#
# The course model was trained last on 193x193 frames: a 13x13 token grid, smaller than the
# 15x15 window, where every query's "window" is the whole frame. AOT is made of convolutions and
# attention only, so the same weights run on larger frames; we record a 289x289 clip (19x19
# tokens), where the window is a visible part of the frame, keeping every block's weights.

# %%
# --- the trained model: official weights if on disk, else the course model ---------------
def trained_model():
    """Official AOT-L when on disk (full mode: downloaded), else the course model."""
    official = course.official_model(settings, "aotl", download=settings.pick(False, True))
    if official is not None:
        return official, "official AOT-L weights"
    return course.course_model(settings)


trained, trained_source = trained_model()
print(f"{trained.config.title}: {trained_source}")

# %%
recipe = course.course_config().data
print(f"the course model's training frames: {recipe.size} x {recipe.size}, "
      f"a {(recipe.size - 1) // 16 + 1} x {(recipe.size - 1) // 16 + 1} token grid")
frames, labels = course.synthetic_clip(seed=11, num_frames=settings.pick(5, 8), size=289, num_objects=2)
torch.manual_seed(0)
records = {
    "trained": attention_maps.record_attention(trained, frames, labels[0], title=f"trained {trained.config.title}",
                                    ground_truth=labels),
    "random": attention_maps.record_attention(build_model(trained.config.name), frames, labels[0],
                                   title=f"random {trained.config.title}", ground_truth=labels),
}
record = records["trained"]
print(f"{len(record.frames)} frames at {record.frames.shape[1:3]}, token grid {record.token_size}, "
      f"{record.num_layers} block(s) x {record.num_heads} heads")

# %% [markdown]
# How spread out is the attention? The **entropy** of a row of weights, `-sum A log A`, is
# `log(number of keys)` when the attention is uniform and 0 when it picks one key; lower =
# sharper. A long-term query sees every memory token (19 x 19 = 361 per memory frame); a
# short-term query only the slots of its window that lie inside the frame - 225 in the
# middle, fewer near the border - so its uniform reference is `log` of that count, averaged
# over the queries. Averaged over the clip's frames, queries and heads, per block:

# %%
for name, rec in records.items():
    for kind in ("long_term", "short_term"):
        entropy = attention_maps.attention_entropy(rec, kind).mean(0)
        print(f"{name:>8} {kind:>10}: entropy per block {[round(float(e), 2) for e in entropy]} "
              f"(uniform: {attention_maps.uniform_entropy(rec, kind).mean():.2f})")

# %% [markdown]
# The static picture first (it shows on GitHub too): the last frame, the last block, the mean
# over heads, a query token inside the first object (the token whose patch holds the most of
# it in the ground truth). Top: where the query looks in the long-term
# memory (frame 0) and the objects' colours that long-term attention alone carries to every
# token of the frame (`A Y` as in notebook 01, with `Y` the memory frame's masks on the token
# grid). Bottom: the same for short-term attention over frame `t - 1`, inside the white 15x15
# window.

# %%
last = len(record.frames) - 1
fig = viz.plot_attention(record, frame=last, layer=record.num_layers - 1)
viz.save_figure(fig, settings.figures_dir / "03_attention_maps.png")
fig

# %% [markdown]
# Every block and head at once, for the same query: long-term weights over the memory frame
# (rows: blocks, columns: heads).

# %%
query = viz.default_query(record)
grid = np.stack([[viz.attention_views(record, last, layer, query, head)["long"][0]
                  for head in range(record.num_heads)] for layer in range(record.num_layers)])
fig = viz.heatmap_grid(grid, [f"block {i}" for i in range(record.num_layers)],
                       [f"head {i}" for i in range(record.num_heads)],
                       background=record.frames[record.long_term_frames[last - 1][0]],
                       marker=viz.token_to_pixel(record, query), size=1.3,
                       title=f"{record.title}: long-term attention of query token {query}, frame {last}")
viz.save_figure(fig, settings.figures_dir / "03_long_term_heads.png")
fig

# %% [markdown]
# Now explore: choose the model (trained or random), the frame, the block (`layer`), a head
# (or their mean) and the query token.

# %%
attention_explorer = viz.attention_widget(records)
display(attention_explorer)

# %% [markdown]
# What to look for: with random weights the maps are flat (their entropy above is close to
# the uniform reference) and the carried colours blur over the whole frame. The course model's
# maps are sharp: a query looks at a few tokens of its own object in the memory frames, and the
# carried colours trace the objects. Its short-term attention (a 15x15 window of frame t-1) is
# the sharpest, which is what following small motions needs. Unlike the paper's Fig. 6, the
# sharpening is not steady from block 1 to block 3 (the model card measures long-term entropy
# 1.35, 1.54, 1.09 nats for blocks 1-3, short-term 0.48, 0.82, 0.71, against about 4.4 for
# uniform): this small model, trained on synthetic videos, uses its blocks differently. The
# official weights (full mode, or `aot-edu download checkpoint aotl`) show what a fully trained
# AOT does, block by block.
#
# ## An object behind an occluder: long-term against short-term attention (paper Fig. 7)
#
# Why two memories? Short-term attention (Eq. 7) looks only at frame `t - 1`, inside a 15x15
# window: right for small motions, blind when the object was not visible at `t - 1`.
# Long-term attention (Eq. 6) looks at every token of the memory frames - for AOT-T/S/B at
# test time, the reference frame 0 with its given mask - so it can find an object again
# wherever it comes back. The paper's Fig. 7 shows this on a real video with an occlusion:
# at the frame where the object reappears, the short-term attention has nothing to match and
# the long-term attention finds it in the memory.
#
# We render our own occlusion (`aot_edu.data.render_occlusion_video`): object 1 passes behind
# a striped occluder (background in the labels) and comes out on the other side; object 2
# stays visible above it. We use the course model on frames of its training size.

# %%
from aot_edu.data import render_occlusion_video
from aot_edu.evaluation.analysis import (
    attention_removed,
    jaccard,
    model_predictor,
    occlusion_attention,
    reappearance_frames,
)

course_aot, _ = course.course_model(settings)
occ_frames, occ_labels = render_occlusion_video(np.random.default_rng([0]), num_frames=12, size=recipe.size)
back = reappearance_frames(occ_labels)[0]
hidden = [t for t in range(len(occ_labels)) if not (occ_labels[t] == 1).any()]
print(f"object 1 is hidden in frames {hidden} and comes back at frame {back}")
shown = [0, 3, *hidden, back, back + 2, len(occ_frames) - 1]
viz.show_images([viz.overlay(occ_frames[t], occ_labels[t]) for t in shown], [f"frame {t}" for t in shown],
                ncols=len(shown), size=1.6, suptitle="the occlusion video, ground truth")

# %% [markdown]
# We record every layer's attention while the course model segments the video, and look at
# frame `t = back`, with a query token on the reappearing object. What share of its attention
# lands on object 1 - in frame 0's given mask (long-term) and in the model's own mask of frame
# `t - 1` (short-term, the mask its short-term memory holds)? Uniform attention gives the
# "chance" shares.

# %%
occ_record = attention_maps.record_attention(course_aot, occ_frames, occ_labels[0], ground_truth=occ_labels,
                                  title="course model, occlusion")
seen = occlusion_attention(occ_record, back)
print(f"frame {back}, query token {seen['query']} on object 1: share of the attention on object 1")
for layer, (long_share, short_share) in enumerate(zip(seen["long"], seen["short"], strict=True)):
    print(f"  layer {layer}: long-term (frame 0) {long_share:.2f}   short-term (frame {back - 1}) {short_share:.2f}")
print(f"  uniform attention: long-term {seen['chance_long']:.2f}, short-term {seen['chance_short']:.2f}")

# %% [markdown]
# The same, as pictures: per layer, where the query looks in frame 0 (long-term) and in frame
# `t - 1` (short-term). On a 9x9 token grid the 15x15 window covers the whole frame.

# %%
fig = viz.plot_attention_layers(occ_record, back, seen["query"], object_id=1)
viz.save_figure(fig, settings.figures_dir / "03_occlusion_attention.png")
fig

# %% [markdown]
# The attention widget on this video, set to frame `back` and the same query: move the frame
# slider to see the object go behind the occluder (frames 5-6) and come back.

# %%
occlusion_explorer = viz.attention_widget({"occlusion": occ_record})
occlusion_explorer.controls["frame"].value = back
occlusion_explorer.controls["row"].value, occlusion_explorer.controls["col"].value = seen["query"]
display(occlusion_explorer)

# %% [markdown]
# Does the model actually find the object again, and thanks to which attention? On a few
# occlusion videos (new textures, same geometry) we measure J of object 1 on the frames from
# its return to the end, with the model as it is and with the output of every layer's
# long-term or short-term attention set to zero (`attention_removed`), beside the largest
# share over the layers at the return frame.

# %%
print(f"{'video':>5} {'long share':>10} {'short share':>11} {'J: model':>9} {'no long-term':>13} {'no short-term':>14}")
recovered = []
for seed in range(settings.pick(4, 8)):
    frames_s, labels_s = render_occlusion_video(np.random.default_rng([seed]), num_frames=12, size=recipe.size)
    t_back = reappearance_frames(labels_s)[0]
    shares = occlusion_attention(attention_maps.record_attention(course_aot, frames_s, labels_s[0], ground_truth=labels_s), t_back)
    j = {}
    for removed in (None, "long", "short"):
        with attention_removed(course_aot, removed):
            masks_s = model_predictor(course_aot)(frames_s, labels_s)
        j[removed] = np.mean([jaccard(labels_s[k] == 1, masks_s[k] == 1) for k in range(t_back, len(labels_s))])
    recovered.append(j[None] > 0.3)
    print(f"{seed:>5} {max(shares['long']):>10.2f} {max(shares['short']):>11.2f} {j[None]:>9.2f} "
          f"{j['long']:>13.2f} {j['short']:>14.2f}")
print(f"object 1 found again (J > 0.3) in {sum(recovered)} of {len(recovered)} videos")

# %% [markdown]
# **What the course model does** (quick mode, the 4 videos above, measured on a 2-core CPU):
# at the return frame, short-term attention carries **0.00** of object 1 to the query in
# every video and every layer - the object was hidden at `t - 1`, and the model's mask of
# `t - 1` says so. Long-term attention carries **0.03-0.19** (largest layer; chance: 0.01) -
# three to nineteen times chance in every video. That is the paper's Fig. 7 mechanism.
# The outcome is weaker than the paper's picture: the course model finds object 1 again in
# **2 of the 4** videos (J 0.62 and 0.72 over the frames after its return; the return frame
# itself, with only a sliver visible, is poor) and loses it for good in the other two. Remove
# the long-term attention and the object never comes back (J 0.00 or 0.01 in all four);
# remove the short-term attention instead and it still comes back in some videos, in one
# (video 0) even better than with it - there the short-term memory, which says "no object 1
# here" at `t - 1`, works against finding it. Over 12 such videos of 20 frames, removing
# long-term attention costs the course model 0.20 J&F (its card, notebook 05 §7). A small
# model trained for three hours on synthetic clips: the official AOT-L (full mode) has far
# more training.
#
# **Summary.** An LSTT block = self-attention, long-term attention to all memory frames,
# short-term attention to a 15x15 window of the previous frame (with relative positions), and a
# feed-forward with a depth-wise convolution; blocks are stacked, each with its own memories.
# Next: **04 - the whole model**.
