# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aot-edu/aot-edu/blob/main/notebooks/02_identity.ipynb)
#
# # 02 - The identification mechanism
#
# Notebook 01 ended with a promise: write N objects into *one* embedding, so one pass of the
# network serves them all. AOT does it with an **identity bank**: `M = 10` learned vectors (plus
# one for the background). Each object of a video is given one of them - its **identity** - and
# every pixel of the mask is replaced by its object's identity vector. After the transformer
# has propagated these vectors to the new frame, the decoder says, for every pixel, which
# identity it carries, and that is read back as an object.
#
# Paper: Sec. 3.2, Eq. 3 (identification embedding, with a random assignment P), Eq. 4 (AttID), Eq. 5
# (identification decoding), Fig. 4 (how similar the learned identities are).
# **Budget: under 3 minutes on a 2-core CPU.**

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
import torch
import torch.nn.functional as F
from IPython.display import display
from matplotlib.figure import Figure

from aot_edu import build_model, course, viz
from aot_edu.course.model import STAGE_LABELS
from aot_edu.evaluation import analysis
from aot_edu.model import count_parameters
from aot_edu.model.identity import (
    IdentityBank,
    assign_identities,
    decode_identities,
    one_hot_labels,
    random_assignment,
)
from aot_edu.training import plan_step

settings = course.setup()

# %% [markdown]
# ## Random assignment: the P of Eq. 3
#
# A clip with `N` objects (`N <= M`) picks `N` of the `M` identities. Write the choice as a
# **permutation matrix** `P` - a 0/1 matrix with one 1 in every row and column - that sends
# object `j` to identity `P`'s column in row `j`:
#
# $$P = \mathrm{Random}(I_M) \qquad \text{(the } P \text{ of Eq. 3: a random permutation of the identity matrix)}$$
#
# **While training**, the permutation is random for every clip, so every identity learns to
# stand for any object (otherwise identity 1 would only ever see "the first-labelled object").
# **At test time** `P = I`: object `j` simply uses identity `j`. The background always keeps
# identity 0. In code, `P` is stored as an index, `assignment[b, j]` = the identity of object
# `j` in clip `b`.
#
# ### Your turn 1: a random assignment for every sample
#
# Write `random_identity_assignment(batch, M, generator)` returning that index,
# `[batch, M + 1]` integers: column 0 (the background) is 0, columns `1..M` a random
# permutation of the identities `1..M`, drawn anew for every sample with the `generator` you are
# given (so that a training step can be reproduced). The check draws 64 samples and looks for
# what goes wrong most often: a shuffled background, two objects sharing an identity, the same
# permutation for every sample. The package's version follows the check.

# %%
def random_identity_assignment(batch: int, M: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The P of Eq. 3 as an index [batch, M + 1]: assignment[b, j] = identity of object j."""
    raise NotImplementedError("your turn")


# %%
from aot_edu.course import exercises

random_identity_assignment = exercises.check("random_identity_assignment", random_identity_assignment)
print("three samples, M = 10:", random_identity_assignment(3, 10, torch.Generator().manual_seed(0)).tolist())

# %%
course.show_source(random_assignment)
generator = torch.Generator().manual_seed(0)
assignment = random_assignment(2, 11, generator)  # 2 clips, M + 1 = 11 identities
print("assignment (clip, object -> identity):", assignment.tolist())

# %% [markdown]
# ### Exercise 1: the matrix P
#
# Turn clip 0's `assignment` row (`[M+1]`) into the permutation matrix `P` `[M+1, M+1]` with
# `P[j, assignment[j]] = 1`. Hint: `torch.zeros(...)` and indexing, or `F.one_hot`.

# %%
def permutation_matrix(assignment_row):
    return None  # your code here


course.check("P", permutation_matrix(assignment[0]),
             torch.eye(11)[assignment[0]])

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution (double-click to show)
def permutation_matrix_solution(assignment_row):
    return F.one_hot(assignment_row, len(assignment_row)).float()


P = permutation_matrix_solution(assignment[0])
course.check("P (solution)", P, torch.eye(11)[assignment[0]])
assert torch.equal(P.sum(0), torch.ones(11)) and torch.equal(P.sum(1), torch.ones(11)), "one 1 per row and column"

# %% [markdown]
# ## Eq. 3: identification embedding
#
# Let `Y` be the masks as **one-hot** rows, `[HW, N+1]`: row = pixel, column `j` = 1 if the
# pixel belongs to object `j` (column 0 = background). With the bank `D` `[M+1, C]` (one
# `C`-dimensional vector per identity):
#
# $$E = \mathrm{ID}(Y, D) = Y P D \qquad \text{(Eq. 3)}$$
#
# `Y P` moves object `j`'s column to its identity's column; multiplying by `D` replaces every
# pixel's one-hot row with that identity's vector. The paper adds `ID` to the attention
# **values** of the memory frames, `Att(Q, K, V + ID)` (Eq. 4). In code (the official implementation,
# and this package's `LSTTBlock.memory_value`, notebook 03) it is added one step earlier, to
# the memory frame's normalised features before the value projection:
# `V' = linear_V(norm2(x) + ID)`. Either way, what the attention propagates now carries,
# besides the image features, *which object* each memory pixel belongs to.
#
# ### Your turn 2: the identification embedding
#
# Write `identification_embedding(Y, P, D)` for `Y [HW, M+1]` (one-hot objects), `P [M+1, M+1]`
# (`P[j, i] = 1`: object `j` wears identity `i`) and `D [M+1, C]`, returning `E` `[HW, C]`.

# %%
def identification_embedding(Y: torch.Tensor, P: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Eq. 3: E = ID(Y, D) = Y P D."""
    raise NotImplementedError("your turn")


# %%
identification_embedding = exercises.check("identification_embedding", identification_embedding)

# %% [markdown]
# The package does `Y P` with `assign_identities` (a scatter along the channels). Checking it
# against the matrix product, on a toy mask of three objects:

# %%
labels = torch.zeros(1, 8, 12, dtype=torch.long)
labels[0, 1:4, 1:5], labels[0, 4:7, 6:11], labels[0, 2:5, 8:10] = 1, 2, 3
Y = one_hot_labels(labels, 11)  # [B=1, M+1, H, W]: channel j = object j
D = torch.randn(11, 16, generator=generator)  # a toy bank, C = 16
P = torch.eye(11)[assignment[0]]  # clip 0's permutation matrix (exercise 1)

id_package = torch.einsum("bihw,ic->bchw", assign_identities(Y, assignment[:1]), D)
Y_rows = Y[0].flatten(1).t()  # [HW, M+1]
id_equation = identification_embedding(Y_rows, P, D).t().reshape(1, 16, 8, 12)  # Eq. 3: yours
torch.testing.assert_close(id_package, id_equation)
print("ID:", tuple(id_equation.shape), "- Eq. 3 as a matrix product matches the package")

# %% [markdown]
# ### Your turn 3: attention with identities (Eq. 4)
#
# AOT's attention to a memory frame carries the identities along with the values:
#
# $$\mathrm{Att}_{ID}(Q, K, V \mid Y) = \mathrm{Att}(Q, K, V + \mathrm{ID}(Y, D)) \qquad \text{(Eq. 4)}$$
#
# `Q [n, C]` are the tokens of the frame to segment, `K, V [m, C]` the memory frame's and
# `Y [m, M+1]` its masks. Write `att_id` with `attention` (Eq. 2, notebook 01's Your turn 1,
# repeated in the next cell) and your `identification_embedding`.

# %%
def attention(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Eq. 2, as in notebook 01."""
    return torch.softmax(Q @ K.transpose(-2, -1) / Q.shape[-1] ** 0.5, dim=-1) @ V


# %%
def att_id(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, Y: torch.Tensor, P: torch.Tensor,
           D: torch.Tensor) -> torch.Tensor:
    """Eq. 4: AttID(Q, K, V | Y) = Att(Q, K, V + ID(Y, D))."""
    raise NotImplementedError("your turn")


# %%
att_id = exercises.check("att_id", att_id)

# %% [markdown]
# ## The patch-wise identity bank
#
# AOT's transformer works on **tokens** of 16x16 pixels (the encoder shrinks the image 16
# times), so the identity embedding is needed at 1/16 resolution. The official models do not
# shrink the masks and then look up one vector per token; instead every identity owns a
# **17x17 patch** of `C`-vectors applied as a **strided convolution** (a 17x17 window of
# weights slid over the image 16 pixels at a time, with 8 pixels of zero padding at the
# borders) directly on the full-resolution one-hot map. Each token's embedding is the sum,
# over the 17x17 pixels around it, of the vector belonging to that pixel's identity *and*
# position in the patch - so a token half covered by an object gets a mix, and the shape of the
# boundary inside the patch is encoded too. It is a plain `nn.Conv2d`:

# %%
course.show_source(IdentityBank)

# %% [markdown]
# Re-deriving one token by hand - cut out its 17x17 patch of the one-hot map (`F.unfold` with
# the convolution's geometry), multiply by the weights, sum, add the bias:

# %%
torch.manual_seed(0)
bank = IdentityBank(max_obj_num=10, dim=32)
mask = torch.zeros(1, 65, 97, dtype=torch.long)  # 16k + 1 sides: token grid 5 x 7
mask[0, 10:40, 20:70], mask[0, 30:60, 50:90] = 1, 2
one_hot = one_hot_labels(mask, 11)
embedding = bank.embed(one_hot)  # [1, C, 5, 7]
patches = F.unfold(one_hot, kernel_size=17, stride=16, padding=8)  # [1, (M+1)*17*17, 5*7]
row, col = 2, 3
token = row * embedding.shape[-1] + col
by_hand = bank.weight.flatten(1) @ patches[0, :, token] + bank.bias
torch.testing.assert_close(by_hand, embedding[0, :, row, col])
print("embedding:", tuple(embedding.shape), f"- token ({row}, {col}) re-derived by hand")

# %% [markdown]
# A patch covered entirely by one identity `k` gets the sum of identity `k`'s 289 vectors plus
# the bias. That embedding is the **identity vector** of `k` - what the similarity figure below
# compares; `IdentityBank.identity_vectors()` returns all of them, `[M+1, C]`.
#
# ### Exercise 2: find an identity vector in an embedding
#
# Make a mask where *every* pixel is object 2 (size 65x97), embed it, and take the embedding of
# an interior token (its whole 17x17 patch lies inside the image, e.g. token (2, 3)). It should
# equal `bank.identity_vectors()[2]`.

# %%
def interior_embedding_of_identity_2():
    return None  # your code here: returns a [C] vector


course.check("identity vector 2", interior_embedding_of_identity_2(), bank.identity_vectors()[2])

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution (double-click to show)
def interior_embedding_of_identity_2_solution():
    everywhere = torch.full((1, 65, 97), 2, dtype=torch.long)
    return bank.embed(one_hot_labels(everywhere, 11))[0, :, 2, 3]


course.check("identity vector 2 (solution)", interior_embedding_of_identity_2_solution(),
             bank.identity_vectors()[2])

# %% [markdown]
# ## Eq. 5: identification decoding
#
# After the transformer and the decoder, every pixel has `M + 1` **logits** (unnormalised
# scores) `L`, one per identity. The objects' probabilities use the same permutation:
#
# $$Y' = \mathrm{softmax}(P L) \qquad \text{(Eq. 5)}$$
#
# Row `j` of `P L` is the logit of object `j`'s identity.
#
# ### Your turn 4: identification decoding
#
# Write `identification_decoding(L, P)` for the decoder's identity logits in the row layout of
# `Y`, `L [HW, M+1]` (one row per pixel), returning each pixel's probabilities over the
# objects, `[HW, M+1]` - in this layout Eq. 5 reads `softmax(L P^T)` over the last axis. The
# `P` must be the one the memory's masks were embedded with (your Your turn 2): it is what
# makes the memory and the frame being segmented share identities.

# %%
def identification_decoding(L: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Eq. 5: Y' = softmax(P L), for L [HW, M+1]."""
    raise NotImplementedError("your turn")


# %%
identification_decoding = exercises.check("identification_decoding", identification_decoding)
Y_back = identification_decoding(100 * Y_rows @ P, P)  # identities of Y P, decoded with the same P
print("decoded objects equal the masks:", torch.equal(Y_back.round(), Y_rows))

# %% [markdown]
# The package does it with a gather:

# %%
course.show_source(decode_identities)
identity_logits = torch.randn(1, 11, 8, 12, generator=generator)
object_logits = decode_identities(identity_logits, assignment[:1])
by_matrix = torch.einsum("ji,bihw->bjhw", P, identity_logits)  # P L
torch.testing.assert_close(object_logits, by_matrix)
roundtrip = decode_identities(assign_identities(Y, assignment[:1]), assignment[:1])
assert torch.equal(roundtrip, Y), "assigning then decoding with the same P gives the objects back"
print("Eq. 5 as a matrix product matches the package; assign -> decode is the identity")

# %% [markdown]
# ## How different are the identities? (paper Fig. 4)
#
# The decoder must tell identities apart from what the transformer carried. If two identity
# vectors pointed the same way, the objects wearing them would be hard to tell apart. The **cosine
# similarity** of two vectors (their dot product divided by both lengths: 1 = same direction,
# 0 = at right angles, -1 = opposite) measures this; paper Fig. 4 shows the M x M matrix of a
# trained AOT.
#
# We compare three banks:
#
# - **random**: a freshly built model. Random vectors in 256 dimensions are nearly at right
#   angles already (similarities near 0).
# - **course model**: the AOT-L that ships with the course (`aot_edu/assets/course_model.pt`),
#   trained with the course's own trainer (notebook 05) on synthetic scenes and videos: a
#   static-image pre-training stage, then video training, as in the paper. It loads at once;
#   `make train-course-model` reproduces it (hours on a CPU).
# - **official**: the bank of the official AOT-L checkpoint, when it is on disk (full mode
#   downloads it).

# %%
# --- the trained model: the shipped course model ------------------------------------------
trained, trained_source = course.course_model(settings)
print(f"{trained.config.title}: {trained_source}")
stages = trained.course_losses  # {"pre": [...], "main": [...], "long": [...]}: every step's loss
losses = [loss for stage in stages.values() for loss in stage]

# %% [markdown]
# The run's loss, step by step, its three stages end to end (its committed log). In the first
# two, half-way (`seq_training_start_ratio = 0.5`, dashed lines) the training switches from
# feeding the ground-truth masks back as memory to feeding the model's own predictions, and
# freezes the identity bank: the task gets harder, so the loss jumps, then falls again
# (notebook 05, §3, explains the switch). The third feeds predictions back from its first step,
# on clips of 8 frames.

# %%
configs = {stage: course.course_config(stage=stage) for stage in stages}
fig = Figure(figsize=(6, 2.8), layout="constrained")
ax = fig.add_subplot()
ax.plot(losses, lw=1, alpha=0.3, label="per step")
window = 50
ax.plot(range(window - 1, len(losses)), torch.tensor(losses).unfold(0, window, 1).mean(1), label=f"mean of {window}")
offset = 0
for name, stage_losses in stages.items():
    switch = next(step for step in range(len(stage_losses)) if plan_step(step, configs[name]).use_prev_pred)
    ax.axvline(offset + switch, color="k", ls="--", lw=1)
    ax.text(offset + 5, max(losses) * 0.95, STAGE_LABELS[name].split(": ")[1], fontsize=8, va="top")
    print(f"{name}: loss of the first 10 steps {sum(stage_losses[:10]) / 10:.2f}, last 10 "
          f"{sum(stage_losses[-10:]) / 10:.2f}; predictions fed back from step {switch}")
    offset += len(stage_losses)
    ax.axvline(offset, color="grey", lw=2)
ax.set_xlabel("training step (all stages)")
ax.set_ylabel("loss (CE + soft Jaccard)")
ax.set_title(f"the course model ({trained.config.title}): dashed = predictions fed back", fontsize=10)
ax.legend(loc="upper right")
viz.save_figure(fig, settings.figures_dir / "02_course_training_loss.png")
assert sum(losses[-10:]) < sum(losses[:10]), "the loss went down"
fig

# %%
torch.manual_seed(0)
banks = {
    "random": build_model(trained.config.name).patch_wise_id_bank.identity_vectors().detach(),
    "course model": trained.patch_wise_id_bank.identity_vectors().detach().cpu(),
}
official = course.official_model(settings, "aotl", download=settings.pick(False, True))
if official is not None:
    banks["official AOT-L"] = official.patch_wise_id_bank.identity_vectors().detach().cpu()
else:
    print("no official AOT-L checkpoint on disk: `aot-edu download checkpoint aotl` adds a third bank")
for name, vectors in banks.items():
    stats = analysis.similarity_stats(vectors)
    similarity = analysis.cosine_similarity_matrix(vectors[1:])  # identities 1..M
    close = [(i + 1, j + 1) for i in range(len(similarity)) for j in range(i + 1, len(similarity))
             if similarity[i, j] > 0.9]
    print(f"{name:>24}: off-diagonal cosine similarity mean {stats['mean']:+.2f}, "
          f"max {stats['max']:+.2f}, min {stats['min']:+.2f}; pairs above +0.9: {close or 'none'}")

# %% [markdown]
# The static picture (it shows on GitHub too), then a widget to explore: choose the bank, how
# many identities `M` to show, and whether to include the background identity.

# %%
fig = viz.plot_identity_similarity(banks)
viz.save_figure(fig, settings.figures_dir / "02_identity_similarity.png")
fig

# %%
similarity_widget = viz.identity_similarity_widget(banks)
display(similarity_widget)

# %% [markdown]
# What to look for: in the random bank the identities are nearly orthogonal by chance. The
# course model's bank has moved: training pushed some pairs far apart (cosine near -0.7) and
# left no pair close (its closest pair sits near +0.3), so its mean similarity (-0.04) lies
# between the random bank's 0 and the equidistant -1/(M-1) = -0.11 of the evenly spread bank
# that the paper's Fig. 4 shows for M = 10. It did not get there by itself: the bank is
# trained only until predictions start being fed back (notebook 05), and after three stages
# it still had two near-duplicate identities (cosine 0.79) - two objects given that pair
# entered the memory with similar vectors, and the decoder had less to tell them apart by.
# The last stage added a hinge on the pairwise cosine above 0.3 (`optim.identity_separation`,
# our addition, not the paper's). Full mode adds the official AOT-L bank to compare.
#
# ### Exercise 3: what does the bank cost?
#
# How many parameters does the official patch-wise bank have (`M = 10`, `C = 256`, 17x17
# kernels, one bias per channel)? Compute the number by hand (in Python arithmetic, not by
# counting the model).

# %%
bank_parameters = None  # your number here

course.check("identity bank parameters", bank_parameters,
             count_parameters(IdentityBank(max_obj_num=10, dim=256)))

# %% cellView="form" jupyter={"source_hidden": true} expected_output="identity bank parameters (solution): correct\n814,080 parameters, 10% of AOT-L\n"
# @title Solution (double-click to show)
bank_parameters_solution = (10 + 1) * 256 * 17 * 17 + 256  # weights [C, M+1, 17, 17] + bias [C]
course.check("identity bank parameters (solution)", bank_parameters_solution,
             count_parameters(IdentityBank(max_obj_num=10, dim=256)))
assert count_parameters(trained.patch_wise_id_bank) == bank_parameters_solution
print(f"{bank_parameters_solution:,} parameters, "
      f"{bank_parameters_solution / count_parameters(trained):.0%} of {trained.config.title}")

# %% [markdown]
# **Summary.** Eq. 3 picks an identity per object (randomly while training, `P = I` at test)
# and writes all objects' masks into one embedding `Y P D` (the patch-wise bank does it with
# a 17x17, stride-16 convolution straight onto the token grid); Eq. 4 attends with it in the
# values; Eq. 5 reads the decoder's
# identity scores back as objects with the same `P`. Next: **03 - the Long Short-Term
# Transformer** that carries these identities from frame to frame.
