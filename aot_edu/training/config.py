"""A run's configuration: TOML -> dataclasses, validated before anything starts.

Sections ``[model]``, ``[data]``, ``[optim]``, ``[eval]``, ``[run]`` (see ``configs/``); an unknown
key, a wrong type or an impossible value is a :class:`ConfigError` saying what to change.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aot_edu import paths
from aot_edu.data.sources import get_dataset
from aot_edu.model.variants import AOTConfig, get_config

from .initialization import PARTS, REINIT_PARTS, parse_parts


class ConfigError(ValueError):
    """A training configuration that cannot run (its run folder included: a damaged checkpoint,
    a folder of other files); the message says what to change."""


@dataclass(frozen=True)
class ModelSection:
    """``[model]``: which AOT and how it is initialised and regularised."""

    variant: str = "aott"  # aott | aots | aotb | aotl | r50_aotl
    pretrained_encoder: bool = False  # ImageNet encoder weights (torchvision download)
    calibrate: bool = True  # random encoder: BN statistics and projection from the first clips
    init_weights: str = ""  # start from these weights (e.g. a pre-training stage's EMA)
    init_encoder: str = ""  # start the encoder (and its projection) from these weights (any variant)
    droppath: float = 0.1  # stochastic depth in the LSTT (official TRAIN_LSTT_DROPPATH)
    locality_prior: float = 0.0  # short-term attention starts local (0 = official init)
    long_term_gap_train: int = 0  # 0 = the variant's (AOT-L: 2, AOT-T/S/B: never)
    freeze_at: int = 2  # frozen encoder stages (stem, 1/4 stage)
    train_encoder: bool = True  # false: the whole encoder stays as initialised
    batch_statistics: bool = False  # encoder BatchNorm uses batch statistics (random encoder)
    # after init_weights: parts given fresh weights, e.g. "decoder" (lstt, decoder, identity_bank)
    reinit: str = ""
    # only these parts learn, e.g. "decoder" (encoder, lstt, decoder, identity_bank); "" = all
    train_only: str = ""
    # The architecture changed from the variant's, as in the paper's ablations (Table 3):
    identities: int = 0  # M, identities in the bank (3a); 0 = the variant's (10)
    window: int = 0  # side of the short-term window, odd (3b); 0 = the variant's (15)
    short_term_frames: int = 1  # frames t-1 .. t-n in short-term attention (3c); 0 = none
    lstt_blocks: int = 0  # LSTT blocks (3d); 0 = the variant's
    sine_embedding: bool = True  # sine position embedding in self-attention (3e)
    relative_embedding: bool = True  # relative position terms in short-term attention (3e)
    # init_weights of another architecture: copy what fits (aot_edu.training.initialization.
    # load_adapted_weights: windows cropped at the centre, leading blocks and channels), start
    # the rest fresh
    init_adapt: bool = False


@dataclass(frozen=True)
class DataSection:
    """``[data]``: the training clips."""

    dataset: str = "synthetic"  # synthetic | synthetic_images | davis2017 | youtubevos | static
    root: str = ""  # dataset folder; "" = the course data folder (AOT_EDU_DATA)
    size: int = 465  # crop side (16k + 1)
    seq_len: int = 5  # reference + 4
    num_workers: int = 0
    # synthetic videos (aot_edu.data.SyntheticVideos)
    num_videos: int = 100_000
    num_objects: tuple[int, int] = (1, 3)
    num_distractors: tuple[int, int] = (0, 2)
    motion: float = 1.0
    noise: float = 3.0
    scale: float = 1.0  # object sizes (synthetic data)
    # real videos and images (aot_edu.data.DAVISTrain / YouTubeVOSTrain / StaticTrain)
    max_gap: int = 0  # 0 = official (DAVIS 12, YouTube-VOS 3; synthetic: consecutive frames)
    repeat: int = 0  # 0 = official (DAVIS 5, YouTube-VOS 1)
    merge_prob: float = -1.0  # < 0 = official (videos 0.3, static images 1.0)


@dataclass(frozen=True)
class OptimSection:
    """``[optim]``: the recipe's numbers (defaults: official main training, PRE_YTB_DAV)."""

    steps: int = 100_000
    batch_size: int = 16  # global batch, split over processes and accumulation steps
    accumulation_steps: int = 1
    lr: float = 2e-4
    min_lr: float = 2e-5
    weight_decay: float = 0.07
    encoder_lr_ratio: float = 0.1
    warmup_ratio: float = 0.05
    power: float = 0.9
    clip_grad_norm: float = 5.0
    top_k_percent: float = 0.15
    hard_mining_ratio: float = 0.5
    aux_loss_weight: float = 1.0
    aux_loss_ratio: float = 1.0
    seq_training_start_ratio: float = 0.5
    ema_ratio: float = 0.1
    # our addition, not the paper's: weight of a hinge on the identity bank's pairwise cosine
    # above identity_margin (aot_edu.training.losses.identity_separation_loss); 0 = off
    identity_separation: float = 0.0
    identity_margin: float = 0.3
    amp: bool = True  # mixed precision on CUDA (always float32 on CPU)


@dataclass(frozen=True)
class EvalSection:
    """``[eval]``: held-out synthetic videos scored with DAVIS J&F during and after training."""

    every: int = 0  # evaluate every this many steps (0: only at the end)
    num_videos: int = 0  # 0 = no evaluation
    num_frames: int = 12
    num_objects: tuple[int, int] = (3, 4)
    num_distractors: tuple[int, int] = (0, 2)
    seed: int = 1000  # the training videos use data seed `seed`; keep these apart
    size: int = 0  # 0 = data.size
    motion: float = 1.0
    noise: float = 3.0
    scale: float = 1.0  # object sizes (synthetic data)


@dataclass(frozen=True)
class RunSection:
    """``[run]``: where and how the run goes; never changes the numbers it computes."""

    output_dir: str = "runs/default"
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # CPU threads per process (0: torch's default, split over processes)
    checkpoint_every: int = 500
    resume: bool = True
    progress: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run; ``load_config`` builds it from TOML and checks every value."""

    name: str = "run"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    eval: EvalSection = field(default_factory=EvalSection)
    run: RunSection = field(default_factory=RunSection)

    def replace(self, **changes) -> TrainConfig:
        """A copy with changes; sections take dicts: ``cfg.replace(optim={"steps": 10})``."""
        kwargs = {}
        for key, value in changes.items():
            current = getattr(self, key)
            if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
                value = dataclasses.replace(current, **value)
            kwargs[key] = value
        return validate_config(dataclasses.replace(self, **kwargs))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {"model": ModelSection, "data": DataSection, "optim": OptimSection,
            "eval": EvalSection, "run": RunSection}
DATASET_NAMES = ("synthetic", "synthetic_images", "davis2017", "youtubevos", "static")
SYNTHETIC_DATASETS = ("synthetic", "synthetic_images")


def _check_type(where: str, value, hint) -> object:
    """``value`` converted to ``hint`` (int, float, bool, str, tuple[int, int]) or an error."""
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if typing.get_origin(hint) is tuple:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
            raise ConfigError(f"{where} must be an integer or a [min, max] pair, got {value!r}")
        if not 0 <= value[0] <= value[1]:
            raise ConfigError(f"{where} must satisfy 0 <= min <= max, got {value!r}")
        return (int(value[0]), int(value[1]))
    raise TypeError(f"unsupported config type {hint}")  # pragma: no cover


def _unknown_key(where: str, key: str, known: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown key {where}{key!r}{hint}; valid keys: {', '.join(known)}")


def _build_section(cls, table: Mapping, where: str):
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{where}] must be a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in table.items():
        if key not in names:
            raise _unknown_key(f"in [{where}]: ", key, names)
        values[key] = _check_type(f"{where}.{key}", value, hints[key])
    return cls(**values)


def config_from_dict(data: Mapping, check_paths: bool = True) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a dict shaped like the TOML file
    (``check_paths``: see :func:`validate_config`)."""
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {}
    for key, value in data.items():
        if key not in top:
            raise _unknown_key("", key, sorted(top))
        if key in SECTIONS:
            values[key] = _build_section(SECTIONS[key], value, key)
        else:
            hint = typing.get_type_hints(TrainConfig)[key]
            values[key] = _check_type(key, value, hint)
    return validate_config(TrainConfig(**values), check_paths)


def _parse_override(text: str) -> tuple[list[str], object]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. optim.steps=100")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: a string
    return key.strip().split("."), value


def load_config(
    source: str | Path | Mapping | TrainConfig, overrides: Sequence[str] | Mapping = (),
    check_paths: bool = True,
) -> TrainConfig:
    """Read a TOML file (or a dict) into a validated :class:`TrainConfig`.

    ``overrides``: ``["optim.steps=100", "run.output_dir='runs/x'"]`` (values in TOML syntax;
    bare words are strings) or a dict ``{"optim.steps": 100}``, applied before validation.
    Raises :class:`ConfigError` naming the key and the fix: unknown keys (with the closest
    valid one), wrong types, unknown variants or datasets, impossible sizes, missing folders.
    ``check_paths=False`` reads a configuration without checking that its files and folders
    exist (to describe a run, e.g. the course model's second stage, whose initial weights are
    made by the first); :func:`train` always checks them.
    """
    if isinstance(source, TrainConfig):
        data = source.to_dict()
    elif isinstance(source, Mapping):
        data = json.loads(json.dumps(dict(source)))  # deep copy
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from error
    pairs = overrides.items() if isinstance(overrides, Mapping) else map(_parse_override, overrides)
    for key, value in pairs:
        parts = key.split(".") if isinstance(key, str) else list(key)
        table = data
        for part in parts[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"override {'.'.join(parts)}: {part} is not a section")
        table[parts[-1]] = value
    return config_from_dict(data, check_paths)


def _positive(where: str, value, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{where} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


# A synthetic video's label map is uint8 with 255 = void: at most 254 objects.
MAX_SYNTHETIC_OBJECTS = 254


def validate_config(config: TrainConfig, check_paths: bool = True) -> TrainConfig:
    """Check values that types cannot: names, ranges, sizes, folders (files and folders only
    with ``check_paths``). Returns ``config``."""
    m, d, o, e, r = config.model, config.data, config.optim, config.eval, config.run
    try:
        get_config(m.variant)
    except ValueError as error:
        raise ConfigError(f"model.variant: {error}") from None
    _positive("model.identities", m.identities, allow_zero=True)
    _positive("model.lstt_blocks", m.lstt_blocks, allow_zero=True)
    _positive("model.short_term_frames", m.short_term_frames, allow_zero=True)
    if m.window and (m.window < 1 or m.window % 2 == 0):
        raise ConfigError(f"model.window is the side of the short-term window, an odd number "
                          f"(e.g. 15, 11, 7), or 0 for the variant's; got {m.window}")
    if m.short_term_frames == 0 and (m.window or not m.relative_embedding):
        raise ConfigError("model.short_term_frames = 0 removes short-term attention; leave "
                          "model.window and model.relative_embedding at their defaults")
    if m.locality_prior and (m.short_term_frames == 0 or not m.relative_embedding):
        raise ConfigError("model.locality_prior sets the short-term relative-position biases; "
                          "it needs short-term attention with relative_embedding = true")
    if m.init_adapt and not m.init_weights:
        raise ConfigError("model.init_adapt adapts model.init_weights to a changed "
                          "architecture; set model.init_weights too")
    model_config = model_config_of(config)
    if not 0.0 <= m.droppath < 1.0:
        raise ConfigError(f"model.droppath must be in [0, 1), got {m.droppath}")
    if m.locality_prior < 0:
        raise ConfigError(f"model.locality_prior must be >= 0 (0 = the official initialisation), "
                          f"got {m.locality_prior}")
    _positive("model.long_term_gap_train", m.long_term_gap_train, allow_zero=True)
    if m.freeze_at not in (0, 1, 2):
        raise ConfigError(f"model.freeze_at must be 0, 1 or 2, got {m.freeze_at}")
    if m.batch_statistics and not m.train_encoder:
        raise ConfigError("model.batch_statistics = true needs model.train_encoder = true (it keeps "
                          "a trained encoder's layers normalised); set one of them accordingly")
    for where, text, allowed in (("model.reinit", m.reinit, REINIT_PARTS),
                                 ("model.train_only", m.train_only, tuple(PARTS))):
        try:
            parse_parts(text, allowed)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
    if m.reinit and not m.init_weights:
        raise ConfigError("model.reinit re-initialises parts of model.init_weights; set "
                          "model.init_weights too (a model from scratch is all fresh already)")
    if not m.train_encoder and "encoder" in parse_parts(m.train_only):
        raise ConfigError("model.train_only names the encoder but model.train_encoder = false; "
                          "change one of them")
    if m.batch_statistics and m.train_only and "encoder" not in parse_parts(m.train_only):
        raise ConfigError("model.batch_statistics = true needs the encoder to learn, but "
                          "model.train_only leaves it out; add it or set batch_statistics = false")
    if m.init_weights and m.init_encoder:
        raise ConfigError("model.init_weights and model.init_encoder are exclusive (init_weights "
                          "already sets the encoder); keep one of them")
    if check_paths and m.init_encoder and not Path(m.init_encoder).is_file():
        raise ConfigError(
            f"model.init_encoder: file {m.init_encoder} not found (relative paths start from the "
            "folder you run in); e.g. the course model: aot_edu/assets/course_model.pt"
        )
    if check_paths and m.init_weights and not Path(m.init_weights).is_file():
        raise ConfigError(
            f"model.init_weights: file {m.init_weights} not found (relative paths start from the "
            f"folder you run in); official weights: `aot-edu download checkpoint {m.variant} "
            "--stage PRE --dir checkpoints`"
        )
    if d.dataset not in DATASET_NAMES:
        close = difflib.get_close_matches(d.dataset, DATASET_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"data.dataset {d.dataset!r} is unknown{hint}; choose one of "
                          f"{', '.join(DATASET_NAMES)}")
    stride = 16
    for where, size in (("data.size", d.size), ("eval.size", e.size or d.size)):
        if size < stride + 1 or (model_config.align_corners and (size - 1) % stride):
            near = max(1, round((size - 1) / stride)) * stride + 1
            raise ConfigError(f"{where} must be 16k + 1 (e.g. {near}) so the stride-16 grid "
                              f"lines up, got {size}")
    if d.seq_len < 2:
        raise ConfigError(f"data.seq_len must be >= 2 (reference + 1), got {d.seq_len}")
    _positive("data.num_workers", d.num_workers, allow_zero=True)
    _positive("data.num_videos", d.num_videos)
    if d.num_objects[1] > model_config.max_obj_num:
        raise ConfigError(f"data.num_objects max is {d.num_objects[1]} but one AOT handles at "
                          f"most M = {model_config.max_obj_num} objects per clip")
    # Held-out videos may hold more than M objects: inference splits them into object groups
    # (aot_edu.inference.engine), as the official evaluator does; training clips cannot.
    for where, (low, high) in (("data.num_objects", d.num_objects),
                               ("eval.num_objects", e.num_objects)):
        if low < 1:
            raise ConfigError(f"{where} min must be >= 1 (a clip needs an object to segment), "
                              f"got [{low}, {high}]")
        if high > MAX_SYNTHETIC_OBJECTS:
            raise ConfigError(f"{where} max must be <= {MAX_SYNTHETIC_OBJECTS} (labels are 8-bit, "
                              f"255 = void), got [{low}, {high}]")
    # synthetic videos (both sections): motion 0 = static shapes, noise 0 = clean frames
    for section, sec in (("data", d), ("eval", e)):
        _positive(f"{section}.motion", sec.motion, allow_zero=True)
        _positive(f"{section}.noise", sec.noise, allow_zero=True)
        _positive(f"{section}.scale", sec.scale)
    _positive("seed", config.seed, allow_zero=True)
    _positive("eval.seed", e.seed, allow_zero=True)
    _positive("data.max_gap", d.max_gap, allow_zero=True)
    _positive("data.repeat", d.repeat, allow_zero=True)
    if not d.merge_prob <= 1.0:
        raise ConfigError(f"data.merge_prob must be <= 1 (a probability; < 0 = the official "
                          f"value), got {d.merge_prob}")
    if check_paths and d.dataset not in SYNTHETIC_DATASETS:
        data_root(config)  # raises when the folder is missing
    for where, value in (("optim.steps", o.steps), ("optim.batch_size", o.batch_size),
                         ("optim.accumulation_steps", o.accumulation_steps), ("optim.lr", o.lr),
                         ("optim.clip_grad_norm", o.clip_grad_norm), ("optim.power", o.power)):
        _positive(where, value)
    for where, value in (("optim.min_lr", o.min_lr), ("optim.weight_decay", o.weight_decay),
                         ("optim.aux_loss_weight", o.aux_loss_weight),
                         ("optim.aux_loss_ratio", o.aux_loss_ratio),
                         ("optim.hard_mining_ratio", o.hard_mining_ratio),
                         ("optim.ema_ratio", o.ema_ratio),
                         ("optim.identity_separation", o.identity_separation)):
        _positive(where, value, allow_zero=True)
    if not -1.0 <= o.identity_margin < 1.0:
        raise ConfigError(f"optim.identity_margin must be in [-1, 1) (a cosine similarity), "
                          f"got {o.identity_margin}")
    if o.min_lr > o.lr:
        raise ConfigError(f"optim.min_lr ({o.min_lr}) must not exceed optim.lr ({o.lr})")
    for where, value in (("optim.encoder_lr_ratio", o.encoder_lr_ratio),
                         ("optim.warmup_ratio", o.warmup_ratio),
                         ("optim.seq_training_start_ratio", o.seq_training_start_ratio)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where} must be in [0, 1], got {value}")
    if not 0.0 < o.top_k_percent <= 1.0:
        raise ConfigError(f"optim.top_k_percent must be in (0, 1], got {o.top_k_percent}")
    if o.batch_size % o.accumulation_steps:
        raise ConfigError(f"optim.batch_size ({o.batch_size}) must be divisible by "
                          f"optim.accumulation_steps ({o.accumulation_steps})")
    for where, value in (("eval.every", e.every), ("eval.num_videos", e.num_videos)):
        _positive(where, value, allow_zero=True)
    if e.num_frames < 2:
        raise ConfigError(f"eval.num_frames must be >= 2, got {e.num_frames}")
    if r.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"run.device must be 'auto', 'cpu' or 'cuda', got {r.device!r}")
    if r.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device = 'cuda' but CUDA is not available; use 'auto' or 'cpu'")
    _positive("run.checkpoint_every", r.checkpoint_every)
    _positive("run.threads", r.threads, allow_zero=True)
    if not r.output_dir:
        raise ConfigError("run.output_dir must name a folder for the run's files")
    return config


def model_config_of(config: TrainConfig) -> AOTConfig:
    """The :class:`AOTConfig` a run trains: its variant with ``[model]``'s changes (stochastic
    depth, long-term memory gap in training, the Table 3 architecture options)."""
    m = config.model
    base = get_config(m.variant)
    return base.replace(
        droppath=m.droppath,
        long_term_gap_train=m.long_term_gap_train or base.long_term_gap_train,
        max_obj_num=m.identities or base.max_obj_num,
        max_dis=(m.window - 1) // 2 if m.window else base.max_dis,
        lstt_layers=m.lstt_blocks or base.lstt_layers,
        short_term_frames=m.short_term_frames,
        sine_embedding=m.sine_embedding,
        relative_embedding=m.relative_embedding,
    )


def data_root(config: TrainConfig) -> Path:
    """The dataset folder of a real-data config (``data.root`` or the course data folder)."""
    d = config.data
    if d.root:
        root = Path(d.root).expanduser()
    else:
        base = paths.data_dir()
        folder = {"davis2017": get_dataset("davis2017").directory,
                  "youtubevos": get_dataset("youtubevos2019").directory,
                  "static": "Static"}[d.dataset]
        root = base / folder
    if not root.is_dir():
        how = {"davis2017": "run `aot-edu download dataset davis2017 --part trainval`",
               "youtubevos": "run `aot-edu download dataset youtubevos2019 --part train`",
               "static": "put images in <root>/images and masks in <root>/masks"}[d.dataset]
        raise ConfigError(f"data.root: the {d.dataset} folder {root} does not exist; {how}, or "
                          "set data.root to the folder that holds it")
    return root
