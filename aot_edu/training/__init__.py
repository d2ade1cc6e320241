"""Training AOT: the paper's recipe (Sec. 5, appendix A.1.2) and a trainer that loses nothing.

**The recipe.** Every sample is a clip of ``T = 5`` frames: a reference frame whose mask is
given, then four frames the model must segment. The clip runs through the model exactly as a
video does at test time (:class:`~aot_edu.inference.engine.AOTEngine`): the reference frame becomes the
memory, every later frame is matched against it, decoded, and its **predicted** label map
(arg-max; no gradient flows through the arg-max) becomes the short-term memory of the next
frame - and, every ``long_term_gap_train`` frames (AOT-L: 2), a long-term memory too. The
objects get a fresh random identity permutation (Eq. 3) in every sample and step, so that no
identity is tied to an object. The loss of a frame is ``0.5`` bootstrapped cross-entropy (the
hardest ``k %`` pixels, ``k`` annealed from 100 % to 15 %) plus ``0.5`` soft Jaccard; the
optimiser is AdamW with a warm-up and a polynomial decay (power 0.9) to ``2e-5``, ten times
smaller steps for the encoder, an exponential moving average (EMA) of the weights, stochastic
depth (0.1) in the LSTT, frozen BatchNorm statistics and frozen first two encoder stages.

Facts from the official code (yoxu515/aot-benchmark: ``configs/default.py``, ``configs/pre.py``,
``networks/engines/aot_engine.py``, ``networks/layers/loss.py``, ``networks/managers/trainer.py``,
``utils/learning.py``, ``utils/ema.py``) that the paper does not spell out:

- bootstrapped cross-entropy (``TRAIN_TOP_K_PERCENT_PIXELS = 0.15``,
  ``TRAIN_HARD_MINING_RATIO = 0.5``): the kept fraction is ``r * 0.15 + (1 - r)`` with
  ``r = min(1, step / (0.5 * total_steps))`` - all pixels at step 0, 15 % from half-way on;
  per sample, ``int(fraction * H * W)`` pixels with the largest loss, averaged;
- soft Jaccard: per sample, over the classes (background and objects) present in the ground
  truth, ``1 - sum(p g) / (sum(p g) + sum(p (1 - g)) + sum((1 - p) g) + 1e-6)``, averaged;
- an auxiliary loss on the **reference** frame itself (decoded from its own memory), weighted
  ``1 - step / (aux_ratio * total_steps)`` (``TRAIN_AUX_LOSS_RATIO``: 1.0 in main training,
  0.1 in pre-training) and ``0`` after; the loss is ``aux_weight * aux + mean(frame losses)``;
- predictions are fed back only from ``TRAIN_SEQ_TRAINING_START_RATIO * total_steps`` on
  (0.5 in main training; 1.0 = never in pre-training): before that the ground-truth masks are
  the memories (teacher forcing). While predictions are fed back the identity bank is frozen:
  its embedding is detached and its learning rate and weight decay are 0;
- learning rate (``adjust_learning_rate``): linear warm-up from ``min_lr`` over
  ``TRAIN_LR_WARM_UP_RATIO = 5 %`` of the steps, then
  ``min_lr + (lr - min_lr) * (1 - s / (S + 1)) ** 0.9`` (``s, S`` counted after the warm-up);
  the encoder gets ``min_lr + 0.1 * (lr_now - min_lr)``; ``min_lr = 2e-5`` for MobileNetV2
  (1e-5 for ResNet-50); pre-training ``lr = 4e-4``, ``weight_decay = 0.03``, main training
  ``2e-4`` and ``0.07``; no weight decay on biases, normalisation weights (1-D parameters) and
  ``relative_emb_v`` / ``conv_out``; gradients clipped to norm 5;
- EMA (``utils/ema.py``): ``decay = 1 - 1 / (0.1 * total_steps)``, used as
  ``min(decay, (1 + n) / (10 + n))`` at the ``n``-th update; the EMA weights are the ones
  released and the ones the next stage starts from;
- stochastic depth ``TRAIN_LSTT_DROPPATH = 0.1`` on the self-attention and feed-forward
  branches of every LSTT block (not on the long/short-term attention:
  ``TRAIN_LSTT_DROPPATH_LST = False``); ``TRAIN_ENCODER_FREEZE_AT = 2``; batch 16 over 4 GPUs;
  mixed precision (``torch.cuda.amp``) on GPUs; 100,000 steps per stage.

**From scratch** (no ImageNet weights) three things are added, none of them in the paper:
:func:`official_initialization` (the official model's Xavier/orthogonal initialisation, which
PyTorch's defaults do not reproduce), and, on the first clips, :func:`calibrate_frozen_batchnorm`
and :func:`calibrate_projection` (a data-dependent initialisation of the random encoder: without
it the frozen identity BatchNorm lets the activations fade to zero before the 1/16 stage). One
more start-up option, :func:`locality_prior`, starts the short-term attention local (measured
in ``bench/RESULTS.md``; off in the quick configuration, where it did not help).

**Runs that lose nothing.** :func:`train` takes a TOML configuration (validated into
:class:`TrainConfig` before anything starts), writes a CSV log, curves (PNG) and, every
``checkpoint_every`` steps, a checkpoint holding everything needed to continue exactly: model,
optimiser, gradient scaler, EMA, random states, data position and step. Files are written to a
temporary name and renamed (``os.replace``), so a run killed at any moment (even ``SIGKILL``)
leaves the last complete checkpoint, and running the same command again continues from it.
The data order and every random draw of a step are functions of ``(seed, step)``, so a resumed
run computes the same weights as an uninterrupted one. The same trainer runs on several
processes (``torchrun``; DistributedDataParallel over NCCL on GPUs, gloo on CPUs) with the
batch split over them, and accumulates gradients over micro-batches.

**Where each part lives** (each file one idea, readable in one sitting):

- the recipe a learner reads next to the paper: :mod:`.losses` (Sec. 5: bootstrapped
  cross-entropy + soft Jaccard), :mod:`.schedule` (learning rates, parameter groups, EMA),
  :mod:`.initialization` (starting weights), :mod:`.step` (one clip through the model, one
  optimiser step);
- :mod:`.config` (TOML -> validated dataclasses) and :mod:`.clips` (the clip stream);
- :mod:`.runs` (checkpoints, resuming, outdated runs), :mod:`.logs` (CSV logs and curves),
  :mod:`.distributed` (``torchrun``);
- :mod:`.loop`: :func:`train`, which puts them together.
"""

from .config import ConfigError, TrainConfig, load_config
from .logs import plot_history, read_log
from .loop import eval_videos, train
from .losses import bootstrapped_cross_entropy, soft_jaccard_loss, vos_loss
from .runs import TrainResult, retire_outdated_run, run_differences
from .step import plan_step

__all__ = ["ConfigError", "TrainConfig", "TrainResult", "bootstrapped_cross_entropy", "eval_videos",
           "load_config", "plan_step", "plot_history", "read_log", "retire_outdated_run",
           "run_differences", "soft_jaccard_loss", "train", "vos_loss"]
