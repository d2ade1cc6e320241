# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 07 · Ablations: the paper's Table 3 and Fig. 4, re-run at small scale
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aot-edu/aot-edu/blob/main/notebooks/07_ablations.ipynb)
#
# The paper argues for AOT's design with an ablation table (**Table 3**): how many identities
# the bank holds (M, 3a), how large the short-term window is (3b), how many past frames
# short-term attention sees (3c), how many LSTT blocks are stacked (3d) and which position
# embeddings are used (3e); and with **Fig. 4**, identity banks learned with M = 10, 15, 20 and
# 30 that lose their even spacing as M grows. Notebooks 02-04 taught each piece; here you test
# the paper's claims about them yourself.
#
# How the rows were made (`make ablations`, `aot_edu/course/ablations.py`, base configuration
# `configs/ablations.toml`): every row is **one configuration change** of the same base. It
# starts from the shipped course model, loaded into the row's architecture (a smaller window
# keeps the centre of the trained one, fewer blocks keep the first ones; the M rows start
# every identity bank fresh, M = 10 included), trains **the same 200 steps** on the course's
# synthetic clips, and is scored with the DAVIS metrics on **the same 12 held-out videos**
# (20 frames, 3-5 objects, look-alike distractors). Each row ran with **two seeds**, so that
# the spread between seeds is visible beside every difference.
#
# *Quick mode* (a 2-core CPU; **budget: about 3 minutes**): reads the committed results,
# re-runs one row live, and one row you change yourself. *Full mode* (a GPU): re-runs every row.

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
from IPython.display import Markdown, display
from matplotlib.figure import Figure

from aot_edu import course, viz
from aot_edu.course import ablations
from aot_edu.training import train
from aot_edu.training.config import model_config_of

settings = course.setup()
if settings.quick:
    torch.set_num_threads(2)  # the quick mode's budget: a 2-core CPU

# %% [markdown]
# ## 1. What the paper measured, and what we can
#
# The paper's rows are AOT-S networks trained from ImageNet weights for 100,000 steps on
# YouTube-VOS and scored on its 2018 validation split. A 2-core CPU cannot train one such
# network, let alone thirty. So the question changes: **starting from a network that already
# tracks, how well does it do after the same short training with the change?** That tests
# whether the network *needs* what the row removes (no short-term attention, one block instead
# of three), and how fast it adapts to a change (a smaller window, no relative terms). It does
# not test whether a network trained from scratch with the change would end up as good: a row
# that starts from weights trained for the reference setting is at a disadvantage the paper's
# rows do not have. Keep that in mind when a row disagrees with the paper.
#
# The runs, as configuration changes of the base (`ablations.RUNS`):

# %%
for run, changes in ablations.RUNS.items():
    arch = ablations.architecture(run)
    print(f"{run:>9}: {changes or '(the base: the course model, AOT-L)'}  ->  M={arch.max_obj_num}, "
          f"window {2 * arch.max_dis + 1}, n={arch.short_term_frames}, L={arch.lstt_layers}, "
          f"sine={arch.sine_embedding}, relative={arch.relative_embedding}")

# %% [markdown]
# ### Exercise 1: predict before you look
#
# Before reading the table, write down what you expect. For each run below, predict the
# change in held-out J&F against its sub-table's reference (e.g. `-0.05` for "five points
# worse"). The paper's own change is printed beside each for guidance, but our setting differs
# (synthetic videos, a short fine-tune): predict *ours*.

# %%
reference_of = {row.table: row.run for row in ablations.ROWS if row.reference}
predict = {"no_short": None, "l1": None, "w7": None}  # your predicted change in J&F
for run, guess in predict.items():
    row = next(r for r in ablations.ROWS if r.run == run)
    paper_ref = next(r.paper for r in ablations.ROWS if r.table == row.table and r.reference)
    print(f"{run}: {row.setting} (Table {row.table}); the paper's change {(row.paper - paper_ref) / 100:+.3f}; "
          f"your prediction: {guess if guess is not None else 'not made yet'}")

# %% [markdown]
# ## 2. The table
#
# Our J&F is the mean over the seeds that finished, with the spread between them (max - min).
# A difference is called **beyond spread** only when it is larger than the spread of both rows
# it compares; otherwise the two seeds disagree more than the rows do, and the difference says
# nothing. The paper's numbers are percentages on YouTube-VOS; ours are fractions on synthetic
# videos: compare the *changes*, not the values.

# %%
results = ablations.read_results()
table = ablations.table_rows(results)


def cell(value, fmt="{:.3f}"):
    return "-" if value is None else fmt.format(value)


lines = ["| Table | setting | paper J&F | paper change | ours J&F (seeds) | ours change | beyond spread |",
         "|---|---|---:|---:|---:|---:|:---:|"]
for r in table:
    ours = "not run yet" if r["ours"] is None else f"{r['ours']:.3f} ± {r['spread'] / 2:.3f} ({len(r['seeds'])})"
    beyond = "" if r["beyond_spread"] is None else ("yes" if r["beyond_spread"] else "no")
    if r["delta"] is not None and r["beyond_spread"] is None:
        beyond = "one seed"
    lines.append(f"| {r['table']} | {r['setting']}{' (ref.)' if r['reference'] else ''} | "
                 f"{cell(r['paper'], '{:.1f}')} | {cell(r['paper_delta'], '{:+.1f}')} | {ours} | "
                 f"{cell(r['delta'], '{:+.3f}')} | {beyond} |")
done = sorted({(r["run"], r["seed"]) for r in results})
print(f"{len(done)} of {len(ablations.RUNS) * len(ablations.SEEDS)} runs recorded (aot_edu/assets/ablations/)")
display(Markdown("\n".join(lines)))

# %% [markdown]
# The same, as a picture: every row's change against its reference, the paper's (in J&F
# points / 100) beside ours, with our two seeds as the error bar.

# %%
rows = [r for r in table if not r["reference"]]
fig = Figure(figsize=(8, 0.35 * len(rows) + 1.2), layout="constrained")
ax = fig.add_subplot()
y = np.arange(len(rows))
paper = [np.nan if r["paper_delta"] is None else r["paper_delta"] / 100 for r in rows]
ours = [np.nan if r["delta"] is None else r["delta"] for r in rows]
spread = [0.0 if r["spread"] is None else r["spread"] / 2 for r in rows]
ax.barh(y + 0.2, paper, height=0.38, color="tab:grey", label="paper (YouTube-VOS, from scratch)")
ax.barh(y - 0.2, ours, height=0.38, xerr=spread, color="tab:blue", label="ours (synthetic, fine-tuned)")
ax.set_yticks(y, [f"{r['table']} {r['setting'].split(' (')[0]}" for r in rows], fontsize=8)
ax.axvline(0, color="k", lw=0.8)
ax.invert_yaxis()
ax.set_xlabel("change in J&F against the sub-table's reference")
ax.legend(fontsize=8, loc="lower left")
ax.set_title("Table 3 at small scale (a missing blue bar: not run yet)", fontsize=10)
viz.save_figure(fig, settings.figures_dir / "07_table3.png")
fig

# %% [markdown]
# **Reading it.** Where do the small scale and the paper agree? The cell below sorts every row
# that has run: a change larger than the spread of its seeds either has the paper's direction or
# not; a change within the spread says nothing yet (two seeds are few: treat a difference
# barely past the spread with care). Remember what a row measures here (section 1): how much
# the *trained* network relies on a part, after a short time to adapt without it - so removing
# a part the network was built around (short-term attention, two of its three blocks) shows
# its full cost, while a row that would need long training to pay off (M, a different window)
# cannot show it.

# %%
agree, disagree, unclear, one_seed, missing = [], [], [], [], []
for r in table:
    if r["reference"] or r["paper_delta"] is None:
        continue
    if r["delta"] is None:
        missing.append(r["setting"])
    elif r["beyond_spread"] is None:
        one_seed.append(f"{r['setting']} ({r['delta']:+.3f}; paper {r['paper_delta'] / 100:+.3f})")
    elif not r["beyond_spread"]:
        unclear.append(f"{r['setting']} ({r['delta']:+.3f})")
    elif np.sign(r["delta"]) == np.sign(r["paper_delta"]):
        agree.append(f"{r['setting']} ({r['delta']:+.3f}; paper {r['paper_delta'] / 100:+.3f})")
    else:
        disagree.append(f"{r['setting']} ({r['delta']:+.3f}; paper {r['paper_delta'] / 100:+.3f})")
for name, items in (("same direction as the paper, beyond the spread", agree),
                    ("opposite direction, beyond the spread", disagree),
                    ("within the spread (no difference shown)", unclear),
                    ("one seed so far (no spread yet: a first look only)", one_seed),
                    ("not run yet", missing)):
    print(f"{name}: {'; '.join(items) if items else 'none'}")

# %% [markdown]
# Your predictions against what we measured:

# %%
measured = {r["run"]: r["delta"] for r in table}
for run, guess in predict.items():
    if measured.get(run) is None:
        print(f"{run}: not run yet")
    elif guess is None:
        print(f"{run}: measured {measured[run]:+.3f} (you made no prediction)")
    else:
        verdict = "right direction" if np.sign(guess) == np.sign(measured[run]) else "wrong direction"
        print(f"{run}: you said {guess:+.3f}, measured {measured[run]:+.3f} - {verdict}, "
              f"off by {abs(guess - measured[run]):.3f}")

# %% [markdown]
# ## 3. Fig. 4 for real: banks learned with different M
#
# The paper's Fig. 4 shows the cosine similarity of the identities of banks trained with
# M = 10, 15, 20 and 30: with M = 10 they are spread almost evenly, every pair near the
# cosine of a perfectly equidistant bank, -1/(M-1); with more identities to place in 256
# dimensions and fewer objects per video than identities, the larger banks get less regular.
# Here are the banks of our M rows (each learned from a fresh start during its 200 steps), with
# the equidistant cosine marked and how far each bank is from it (root-mean-square gap over
# its pairs). Pick a bank in the widget. Mind the budget: a bank learns only while the true
# masks are fed back (the first 100 steps; the recipe then freezes it), so these are banks
# early in training - look at the max: a pair near +1 is two identities the model can hardly
# tell apart, and the M row's J&F pays for it.

# %%
banks = ablations.read_banks()
learned = {f"M = {ablations.architecture(run).max_obj_num}, seed {seed}": banks[f"{run}_s{seed}"]
           for run in ablations.BANK_RUNS for seed in ablations.SEEDS if f"{run}_s{seed}" in banks}
for name, sim in learned.items():
    d = ablations.bank_distance(sim)
    print(f"{name:>16}: mean cosine {d['mean']:+.3f} (equidistant {d['equidistant']:+.3f}), "
          f"max {d['max']:+.3f}, RMS gap {d['rms_gap']:.3f}")
if not learned:
    print("no M rows recorded yet: `make ablations` makes them")

# %%
if learned:
    first_seed = {name: sim for name, sim in learned.items() if name.endswith("seed 0")} or learned
    fig = viz.plot_learned_banks(first_seed, size=2.6)
    viz.save_figure(fig, settings.figures_dir / "07_learned_banks.png")
    display(fig)
    display(viz.learned_banks_widget(learned))

# %% [markdown]
# ## 4. Identification against post-ensemble
#
# The last comparison is not a training run: the reference model segments the same videos
# with identification (all objects in one pass) and with post-ensemble (one pass per object,
# merged by soft aggregation), for 1 to 5 look-alike objects (notebook 04 explains both).

# %%
strategies_path = ablations.STRATEGIES
if strategies_path.is_file():
    import csv

    with strategies_path.open() as f:
        strategy_rows = list(csv.DictReader(f))
    for r in strategy_rows:
        print(f"{r['objects']} objects, {r['strategy']:>26}: J&F {float(r['J&F']):.3f}, "
              f"{float(r['ms_per_frame']):.0f} ms per frame")
else:
    print("not run yet: `python -m aot_edu.course.ablations strategies` after the base run")

# %% [markdown]
# ## 5. A row, live
#
# The table was made once (about five minutes per run on a 2-core CPU). To see what a row
# *is*, here is one re-run now, shortened: one LSTT block instead of three (Table 3d, L = 1),
# from the course model, for a fraction of the steps and scored on a few of the held-out
# videos. It is the same code path as `make ablations` (`ablations.run_config`), only with
# fewer steps: expect a lower score than the committed row.

# %%
live_dir = settings.outputs_dir / "ablations_live"
live_steps = settings.pick(40, 200)
live = ablations.run_config("l1", seed=0, root=live_dir, steps=live_steps).replace(
    eval={"num_videos": settings.pick(4, 12)}, run={"checkpoint_every": 1000})
live_result = train(live)
print(f"L = 1, {live_steps} steps: held-out J&F {live_result.metrics['J&F']:.3f} on "
      f"{live.eval.num_videos} videos, {live_result.train_time / 60:.1f} min of training")
committed = ablations.summary(results)
for run in ("base", "l1"):
    if run in committed:
        print(f"committed {run} (200 steps, 12 videos, mean of seeds {committed[run]['seeds']}): "
              f"{committed[run]['J&F']:.3f}")

# %% [markdown]
# ### Exercise 2: change a knob
#
# Make your own row: a short-term window of **9 x 9** (between the 7 x 7 and 11 x 11 rows).
# Fill in the configuration change (a key of `[model]`, see `configs/ablations.toml` and
# `ablations.RUNS`), run it for a few steps, and see where it lands.

# %%
my_change = None  # e.g. {"model.some_key": value}
if my_change is not None:
    mine = ablations.run_config("base", seed=0, root=live_dir, steps=settings.pick(20, 200)).replace(
        eval={"num_videos": settings.pick(4, 12)}, run={"output_dir": str(live_dir / "mine")},
        model={k.split(".", 1)[1]: v for k, v in my_change.items()})
    course.check("your row's window", 2 * model_config_of(mine).max_dis + 1, 9)
    print(f"your row: held-out J&F {train(mine).metrics['J&F']:.3f}")

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution (double-click to show)
my_change_solution = {"model.window": 9}
mine = ablations.run_config("base", seed=0, root=live_dir, steps=settings.pick(20, 200)).replace(
    eval={"num_videos": settings.pick(4, 12)}, run={"output_dir": str(live_dir / "window9")},
    model={k.split(".", 1)[1]: v for k, v in my_change_solution.items()})
course.check("your row's window (solution)", 2 * model_config_of(mine).max_dis + 1, 9)
mine_result = train(mine)
print(f"window 9x9, {mine.optim.steps} steps: held-out J&F {mine_result.metrics['J&F']:.3f} "
      f"on {mine.eval.num_videos} videos")
for run in ("w7", "w11", "base"):
    if run in committed:
        print(f"committed {run} (200 steps, 12 videos): {committed[run]['J&F']:.3f}")

# %% [markdown]
# ## 6. Full mode: every row
#
# On a GPU the notebook re-runs the whole table into your own folder (not the committed
# files), with the same configurations and seeds.

# %%
if not settings.quick:
    mine_dir = settings.outputs_dir / "ablations"
    ablations.run_ablations(root=mine_dir / "runs", out_dir=mine_dir)
    for r in ablations.table_rows(ablations.read_results(mine_dir / "results.csv")):
        print(r["table"], r["setting"], cell(r["ours"]), cell(r["delta"], "{:+.3f}"))
