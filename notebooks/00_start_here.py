# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aot-edu/aot-edu/blob/main/notebooks/00_start_here.ipynb)
#
# # 00 - Start here: segmenting objects through a video
#
# This course rebuilds **AOT** (*Associating Objects with Transformers for Video Object
# Segmentation*, Yang, Wei & Yang, NeurIPS 2021) piece by piece, and runs every piece. By the
# end you will know why AOT segments N objects for about the price of one.
#
# This notebook explains the task, shows what the data looks like, maps the course, and says
# how to run it (on your computer or on Colab, quick or full) and how to get the official
# weights and datasets. **Budget: under a minute on a 2-core CPU.**

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
from IPython.display import display

import aot_edu
from aot_edu import course, viz

settings = course.setup()

# %% [markdown]
# `course.setup()` fixed every random seed (so the numbers below are the same each run) and
# chose the **mode**, explained further down.
#
# ## The task: semi-supervised video object segmentation
#
# A **video** is a sequence of frames (images). **Segmenting** an object means marking which
# pixels belong to it; the result is a **mask**. With several objects we store one **label map**
# per frame: an integer per pixel, 0 for the **background** and 1, 2, ... for the objects.
#
# In **semi-supervised** video object segmentation (VOS) someone gives you the masks of the
# objects on the **first frame** only; the method must find the same objects in every later
# frame, however they move, turn, hide behind each other or change shape. "Semi" because only
# the first frame is labelled. The benchmark datasets are **DAVIS** (short, high-quality
# videos; DAVIS 2016 has one object per video, DAVIS 2017 several) and **YouTube-VOS** (thousands
# of videos, many objects).
#
# Below: a synthetic video made by the package - textured shapes moving over a textured
# background - with its label maps underneath (each label in its own colour: 1 red, 2 green,
# 3 yellow; background black). One shape has no label: a look-alike **distractor**, a copy of
# an object's shape and texture that a method must *not* follow. Only the first label map is
# the input; the others are what a method should produce.

# %%
frames, masks = course.synthetic_clip(seed=3, num_frames=settings.pick(6, 12), size=(161, 289), num_objects=3)
print("frames:", frames.shape, frames.dtype, " masks:", masks.shape, masks.dtype)
print("labels in the first mask:", np.unique(masks[0]).tolist())

# %%
shown = np.linspace(0, len(frames) - 1, 6).round().astype(int)
fig = viz.show_images([*frames[shown], *masks[shown]], [f"frame {t}" for t in shown] + [f"labels, frame {t}" for t in shown],
                      ncols=len(shown), size=2.2, suptitle="a synthetic video (top) and its label maps (bottom); only frame 0's labels are given")
viz.save_figure(fig, settings.figures_dir / "00_vos_task.png")
fig

# %% [markdown]
# If a DAVIS copy is on disk (see "Official checkpoints and datasets" below) here is a real
# video: DAVIS 2016 *blackswan*, every 10th frame.

# %%
davis = course.davis_clip(settings, "blackswan", num_frames=5, step=10, scale=0.5)
if davis is None:
    print("no DAVIS on disk: skipped (aot-edu download dataset davis2017)")
else:
    print("DAVIS frames:", davis[0].shape, "labels:", np.unique(davis[1][0]).tolist())
    display(viz.video_strip(*davis, frame_numbers=[0, 10, 20, 30, 40], title="DAVIS 2016 blackswan (not saved: DAVIS images are not ours to redistribute)"))

# %% [markdown]
# ## A video is just arrays
#
# Frames are `uint8` arrays `[T, H, W, 3]` (T frames, height, width, red/green/blue 0..255);
# masks are integer arrays `[T, H, W]`. Nothing more is needed to make one: here are two discs
# crossing a gradient, drawn with numpy.

# %%
T, H, W = 6, 64, 96
yy, xx = np.mgrid[0:H, 0:W]
toy_frames = np.zeros((T, H, W, 3), dtype=np.uint8)
toy_masks = np.zeros((T, H, W), dtype=np.uint8)
for t in range(T):
    toy_frames[t] = np.stack([xx * 2, yy * 3, np.full_like(xx, 90)], axis=-1).clip(0, 255)
    for label, (cy, cx, r, colour) in enumerate([(32, 15 + 12 * t, 12, (230, 60, 60)),
                                                   (25, 80 - 10 * t, 9, (60, 200, 240))], start=1):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        toy_frames[t][disc] = colour
        toy_masks[t][disc] = label  # the later object is drawn in front
fig = viz.video_strip(toy_frames, toy_masks, max_frames=6, size=1.6, title="a hand-made video: two discs crossing")
fig

# %% [markdown]
# When disc 2 passes in front of disc 1, disc 1's pixels there are labelled 2: masks say which
# object is *visible* at each pixel. Keeping track of an object while it is hidden is part of
# what makes the task hard.
#
# ### Exercise 1: how large is each object?
#
# Write `object_areas(masks)` returning an integer array `[T, N + 1]`: for every frame, the
# number of pixels with each label `0..N` (N = the largest label in the video). Hint:
# `np.bincount(..., minlength=...)`. Replace the `None` and run the cell: the check tells you
# whether it is right.

# %%
def object_areas(masks):
    return None  # your code here


course.check("object_areas", object_areas(toy_masks),
             np.stack([np.bincount(m.ravel(), minlength=3) for m in toy_masks]))

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution (double-click to show)
def object_areas_solution(masks):
    n = int(masks.max())
    return np.stack([np.bincount(m.ravel(), minlength=n + 1) for m in masks])


areas = object_areas_solution(toy_masks)
course.check("object_areas (solution)", areas, np.stack([[(m == k).sum() for k in range(3)] for m in toy_masks]))
print("pixels of disc 1 per frame:", areas[:, 1].tolist())

# %% [markdown]
# ## Why many objects are expensive, and AOT's answer
#
# Most methods before AOT matched **one object at a time**: to follow N objects they ran their
# network N times and then merged the N results (notebook 01 measures this). AOT instead gives
# every object an **identity** - a learned vector from an **identity bank** - writes all objects
# into *one* embedding (a map of vectors), and propagates them together through a
# **transformer** (a network built from attention, notebook 01). One pass, any
# number of objects (up to 10 per pass; more objects are split into groups of 10).
#
# ## The course map
#
# | notebook | what you build | what you see |
# |---|---|---|
# | 00 start here | the task, the data, the setup | videos and masks |
# | 01 attention | attention as matching and propagation (Eq. 2); the one-object-at-a-time cost (Eq. 1) | labels carried from one image to another; timing that grows with N |
# | 02 identity | the identity bank: embedding with a random assignment (Eq. 3), attention with identities (Eq. 4), decoding (Eq. 5) | widget: identity similarity (paper Fig. 4) |
# | 03 LSTT | the Long Short-Term Transformer block (Fig. 2c): self, long-term (Eq. 6) and short-term (Eq. 7) attention, feed-forward | widget: per-layer attention maps (paper Fig. 6); an occluded object found again by long-term attention (Fig. 7) |
# | 04 model | the whole model, its variants, official weights, segmenting a video | an animated segmentation; N objects for the price of one, measured (Fig. 1c); look-alike objects, identification against post-ensemble (Fig. 3) |
# | 05 training | training AOT (losses, schedule) | loss curves |
# | 06 evaluation | DAVIS J&F, the official protocol | scores next to the paper's |
#
# ## Running the course
#
# **On your computer**: `make lab` in a clone of the repository creates a virtual environment,
# installs everything and opens JupyterLab. **On Colab**: click the badge at the top of a
# notebook; its first code cell downloads and installs the course (choose a GPU runtime under
# *Runtime > Change runtime type* for full mode).
#
# **Quick or full mode.** Every notebook runs in two sizes, chosen by the environment variable
# `AOT_EDU_MODE`:
#
# - `quick`: small images, few frames, short runs - each notebook finishes within 3 minutes on
#   a 2-core CPU (the whole course within 15). The numbers are real; the models trained on a
#   CPU are small-scale ones.
# - `full`: real sizes and longer runs, for a GPU.
# - `auto` (the default): full when a CUDA GPU is present, quick otherwise.
#
# Set it before starting Jupyter (`AOT_EDU_MODE=full make lab`) or in the first cell
# (`import os; os.environ["AOT_EDU_MODE"] = "full"`) before `course.setup()`. In the notebooks,
# `settings.pick(quick_value, full_value)` chooses sizes in one line.

# %%
print("mode:", settings.mode, "| device:", settings.device.type)
print("frames of the synthetic clip above in this mode:", settings.pick(6, 12))
print("datasets go to:", settings.data_dir, "(AOT_EDU_DATA)")
print("checkpoints go to:", settings.checkpoint_dir, "(AOT_EDU_CHECKPOINTS)")

# %% [markdown]
# ## Official checkpoints and datasets
#
# The authors published trained weights (**checkpoints**) for every variant; aot-edu loads
# them unchanged and refuses files that do not fit, instead of silently running a half-random
# network. Download from a terminal:
#
# ```bash
# aot-edu download list                 # what exists, and where it goes
# aot-edu download checkpoint aotl      # AOT-L, trained on YouTube-VOS + DAVIS (PRE_YTB_DAV)
# aot-edu download dataset davis2017    # DAVIS 2017 train + val, 480p (about 800 MB)
# ```
#
# or from Python: `aot_edu.model.download_checkpoint("aotl")`. Checkpoints live on Google
# Drive and are fetched with `gdown` (a small Google Drive downloader). When Drive answers "too many users have viewed or
# downloaded this file", open the link printed by `aot-edu download list` in a browser, save the
# file (e.g. `AOTL_PRE_YTB_DAV.pth`) into the checkpoint folder above, and run the command again:
# it checks the file instead of downloading it.

# %%
from aot_edu.model import CHECKPOINTS, describe_checkpoints

print(describe_checkpoints())
present = [c.filename for c in CHECKPOINTS if (settings.checkpoint_dir / c.filename).is_file()]
print("\ncheckpoints on disk:", present or "none")
print("DAVIS on disk:", course.find_davis(settings) or "none")

# %% [markdown]
# **What works without downloads:** everything. Without a checkpoint the notebooks use the
# **course model**, an AOT-L (three LSTT blocks) that ships with the course (`aot_edu/assets/course_model.pt`,
# trained with the course's own trainer on synthetic scenes and videos; notebook 05 shows how),
# or random weights where only shapes and timings matter; without DAVIS they use synthetic
# videos.
# The official weights make notebooks 03 and 04 show what a fully trained AOT does, and
# notebook 06 needs DAVIS to compute real scores.
#
# ## The whole API in two lines
#
# `aot_edu.build_model` builds a variant (optionally with official weights) and
# `aot_edu.segment` segments every object of the first mask through the video. With random
# weights, as here, the masks are nonsense - but the shapes are right, and that is what we
# check.

# %%
model = aot_edu.build_model("aott")  # random weights; the real thing: weights=settings.checkpoint_dir / "AOTT_PRE_YTB_DAV.pth"
result = aot_edu.segment(frames[:3], masks[0], model)
print("masks:", result.masks.shape, "| objects:", result.labels, "| ran at input size", result.input_size)
assert result.masks.shape == masks[:3].shape
assert set(np.unique(result.masks[0])) == set(np.unique(masks[0]))

# %% [markdown]
# Next: **01 - attention**, the operation AOT is built from.
