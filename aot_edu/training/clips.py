"""The clips a run trains on: the dataset of ``[data]``, and a clip stream that is a function
of ``(seed, step)``, so a resumed run sees exactly the clips an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from aot_edu import data as D
from aot_edu.data import collate
from aot_edu.model.identity import random_assignment

from .config import ConfigError, TrainConfig, data_root, model_config_of


def build_dataset(config: TrainConfig) -> torch.utils.data.Dataset:
    """The training dataset of ``config.data`` (samples in :mod:`aot_edu.data.training` format)."""
    d, seed = config.data, config.seed
    if d.dataset == "synthetic":
        return D.SyntheticVideos(d.num_videos, d.seq_len, d.size, d.num_objects,
                                 d.num_distractors, seed=seed, motion=d.motion, noise=d.noise,
                                 scale=d.scale, max_gap=max(1, d.max_gap))
    if d.dataset == "synthetic_images":  # static-image pre-training on rendered scenes
        return D.SyntheticImages(d.num_videos, d.size, d.seq_len, d.num_objects,
                                 d.num_distractors, seed=seed, noise=d.noise, scale=d.scale,
                                 merge_prob=1.0 if d.merge_prob < 0 else d.merge_prob)
    root = data_root(config)
    crop = (d.size, d.size)
    if d.dataset == "static":
        return D.StaticTrain(root, size=crop, seq_len=d.seq_len,
                             merge_prob=1.0 if d.merge_prob < 0 else d.merge_prob, seed=seed)
    common = dict(seq_len=d.seq_len, crop_size=crop, seed=seed,
                  merge_prob=0.3 if d.merge_prob < 0 else d.merge_prob)
    if d.dataset == "davis2017":
        return D.DAVISTrain(root, max_gap=d.max_gap or 12, repeat=d.repeat or 5, **common)
    return D.YouTubeVOSTrain(root, max_gap=d.max_gap or 3, repeat=d.repeat or 1, **common)


class ClipStream(torch.utils.data.Sampler):
    """Which clips every process reads at every step: a deterministic stream of positions.

    The global stream visits the dataset in a fresh permutation per epoch
    (``numpy.random.default_rng([seed, epoch])``). Step ``s`` takes positions
    ``s * batch_size ..`` of it; micro-batch ``i`` of process ``r`` takes the slice
    ``(i * world + r) * micro_batch ..``. Each yielded batch is a list of ``(epoch, index)``.
    Starting at ``start_step`` gives exactly the clips an uninterrupted run sees from there.
    """

    def __init__(self, num_samples: int, batch_size: int, accumulation_steps: int, rank: int,
                 world_size: int, seed: int, start_step: int, total_steps: int) -> None:
        if batch_size % (accumulation_steps * world_size):
            raise ConfigError(
                f"optim.batch_size ({batch_size}) must be divisible by processes x accumulation "
                f"steps ({world_size} x {accumulation_steps}); change batch_size or "
                "accumulation_steps"
            )
        self.num_samples, self.batch_size, self.accumulation = num_samples, batch_size, accumulation_steps
        self.micro_batch = batch_size // (accumulation_steps * world_size)
        self.rank, self.world, self.seed = rank, world_size, seed
        self.start_step, self.total_steps = start_step, total_steps
        self._perm_epoch, self._perm = -1, None

    def item(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.num_samples)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
            self._perm_epoch = epoch
        return epoch, int(self._perm[offset])

    def batch(self, step: int, micro: int) -> list[tuple[int, int]]:
        first = step * self.batch_size + (micro * self.world + self.rank) * self.micro_batch
        return [self.item(p) for p in range(first, first + self.micro_batch)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.total_steps):
            for micro in range(self.accumulation):
                yield self.batch(step, micro)

    def __len__(self) -> int:
        return (self.total_steps - self.start_step) * self.accumulation


class _EpochItems(torch.utils.data.Dataset):
    """Reads ``(epoch, index)`` items: datasets with ``set_epoch`` draw that epoch's clip."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        epoch, index = item
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def make_loader(dataset, stream: ClipStream, num_workers: int = 0, pin_memory: bool = False):
    """A ``DataLoader`` over ``stream`` (its own generator: the global RNG is not touched)."""
    return torch.utils.data.DataLoader(
        _EpochItems(dataset), batch_sampler=stream, num_workers=num_workers,
        collate_fn=collate, pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(stream.seed),
    )


def seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def step_assignment(config: TrainConfig, step: int, slot: int, batch: int) -> Tensor:
    """Eq. 3's random identities of one micro-batch: a function of ``(seed, step, slot)``.

    ``slot = micro * world_size + rank`` numbers the micro-batches of a step over all processes
    (the order of :class:`ClipStream`), so 2 processes x 1 micro-batch draw what 1 process x 2
    accumulated micro-batches draws.
    """
    generator = torch.Generator().manual_seed(seed_of(config.seed, step, slot, 1))
    return random_assignment(batch, model_config_of(config).max_obj_num + 1, generator)
