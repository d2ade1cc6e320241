# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aot-edu/aot-edu/blob/main/notebooks/03_lstt.ipynb)
#
# # 03 - The Long Short-Term Transformer
#
# The identities of notebook 02 are carried from frame to frame by the **Long Short-Term
# Transformer (LSTT)**: a few identical **blocks**, each refining the tokens of the current
# frame in three steps - attention to itself, attention to memory frames (long-term) and to
# the previous frame nearby (short-term), and a small feed-forward network. This notebook takes
# one block apart, re-derives its two memory attentions by hand, and then looks at the
# attention maps of a trained model layer by layer (paper Fig. 6-7).
#
# Paper: Sec. 3.3, Fig. 2(c). **Budget: under 3 minutes on a 2-core CPU** (with the course
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
from IPython.display import display

from aot_edu import build_model, course, viz
from aot_edu.attention import split_heads
from aot_edu.engine import AOTEngine, official_input_size, prepare_frame
from aot_edu.identity import one_hot_labels
from aot_edu.lstt import LSTTBlock, map_to_seq, seq_to_map
from aot_edu.model import VARIANTS, count_parameters

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
#    - long-term: every token of every **long-term memory frame** (the first frame with its
#      given mask, plus - in AOT-L - a predicted frame every 5 frames); good for objects that
#      reappear or change a lot;
#    - short-term: only a **15x15 window** of tokens around the same position in the
#      **previous frame** (frame `t - 1`, with its predicted mask); good for smooth motion, and
#      cheap;
#
#    both share one query projection, and the memory's values carry the identity embedding:
#    `linear_V(norm2(x) + ID)`, the memory frame's normalised tokens plus `ID` (Eq. 4), then
#    the value projection - as in the official code (the paper writes it on the attention
#    values, `V + ID`). This is where the objects are matched and propagated;
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
# ## Short-term attention: a 15x15 window with relative positions
#
# For query token `p = (y, x)` and window slot `s = (dy, dx)`, `dy, dx` in `-7..7`:
#
# $$\mathrm{logit}_{h}(p, s) = \frac{q_h(p) \cdot k_h(p + s)}{\sqrt{d}} + r_h(p, s), \qquad A_h(p, \cdot) = \mathrm{softmax}_s$$
#
# where `k` are frame `t - 1`'s keys and `r` a learned **relative position** term: a 1x1
# convolution of the query giving one logit per slot and head (so "look 3 tokens left" can be
# favoured or not, whatever the content). Slots outside the frame get weight 0. The package
# computes all queries at once with banded matrix products; the exercise is the plain version
# for one query.
#
# ### Exercise 1: one query's short-term weights
#
# Complete `short_term_weights_for(y, x, head)` returning the 225 weights of query token
# `(y, x)` for one head. You have `query_map` `[1, C, h, w]` (the query above as a map),
# `short_keys` `[1, C, h, w]` (frame 0's keys), `relative` `[1, heads * 225, h, w]`, and `d`.
# Head `hd` owns channels `hd*d .. hd*d + d - 1` and relative channels `hd*225 .. hd*225 + 224`.

# %%
with torch.inference_mode():
    query_map = seq_to_map(query, (h, w))
    short_keys = engine.short_term[0][0]  # block 0's short-term memory keys, map layout
    relative = block.short_term_attn.relative_emb_k(query_map)
R = model.config.max_dis  # 7: the window is 2R + 1 = 15 tokens wide


def short_term_weights_for(y, x, head):
    return None  # your code here: a tensor [225]


y, x, head = 4, 5, 3
course.check("short-term weights", short_term_weights_for(y, x, head), maps.short_term[0, head, y * w + x], atol=1e-5)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution (double-click to show)
def short_term_weights_for_solution(y, x, head):
    channels = slice(head * d, (head + 1) * d)
    q = query_map[0, channels, y, x]
    logits = torch.full(((2 * R + 1) ** 2,), float("-inf"))
    for s, (dy, dx) in enumerate((dy, dx) for dy in range(-R, R + 1) for dx in range(-R, R + 1)):
        ky, kx = y + dy, x + dx
        if 0 <= ky < h and 0 <= kx < w:
            logits[s] = q @ short_keys[0, channels, ky, kx] / d**0.5 + relative[0, head * 225 + s, y, x]
    return torch.softmax(logits, dim=0)


for y, x, head in [(4, 5, 3), (0, 0, 0), (8, 2, 7)]:  # a centre token and two at the border
    course.check(f"short-term weights of token ({y}, {x}), head {head} (solution)",
                 short_term_weights_for_solution(y, x, head), maps.short_term[0, head, y * w + x], atol=1e-5)

# %% [markdown]
# ## The feed-forward with its depth-wise convolution
#
# ### Exercise 2: count its parameters
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
# ## Stacking blocks
#
# AOT-T has 1 block, AOT-S 2, AOT-B and AOT-L 3. Each block has its *own* memories (its own
# keys and values of every memory frame), and the decoder sees every block's output. A deeper
# block matches with features the earlier blocks have already refined (and that already carry
# propagated identities), so its attention can be more selective.
#
# ## Attention maps of a trained model (paper Fig. 6-7)
#
# Random weights attend almost uniformly. A trained model is needed: the official AOT-L if
# its checkpoint is on disk (full mode downloads it), else the course model - the AOT-B that
# ships with the course, trained on synthetic scenes and videos (notebook 05). Both have
# **three blocks**, as in the paper's Fig. 6, so the maps can be compared block by block.
#
# The course model was trained on 129x129 frames: a 9x9 token grid, smaller than the 15x15
# window, where every query's "window" is the whole frame. AOT is made of convolutions and
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
    "trained": viz.record_attention(trained, frames, labels[0], title=f"trained {trained.config.title}",
                                    ground_truth=labels),
    "random": viz.record_attention(build_model(trained.config.name), frames, labels[0],
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
        entropy = viz.attention_entropy(rec, kind).mean(0)
        print(f"{name:>8} {kind:>10}: entropy per block {[round(float(e), 2) for e in entropy]} "
              f"(uniform: {viz.uniform_entropy(rec, kind).mean():.2f})")

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
# **Summary.** An LSTT block = self-attention, long-term attention to all memory frames,
# short-term attention to a 15x15 window of the previous frame (with relative positions), and a
# feed-forward with a depth-wise convolution; blocks are stacked, each with its own memories.
# Next: **04 - the whole model**.
