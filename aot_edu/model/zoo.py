"""The official model zoo (yoxu515/aot-benchmark, ``MODEL_ZOO.md``): every checkpoint file, its
Google Drive id and the scores the zoo reports for it (the paper's Table 1 and 2 rows come from
these models). Plain data, no torch: ``aot-edu download list`` reads it without loading PyTorch.

Stages: ``PRE`` (pre-training on static images) and ``PRE_YTB_DAV`` (main training on
YouTube-VOS 2019 + DAVIS 2017; the weights behind every reported score).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .variants import VARIANTS as MODEL_VARIANTS

STAGES = ("PRE", "PRE_YTB_DAV")
# The zoo also publishes Swin-B AOT-L, which aot-edu does not build; the rest are model.VARIANTS.
SUPPORTED_VARIANTS = tuple(MODEL_VARIANTS)
VARIANTS = (*SUPPORTED_VARIANTS, "swinb_aotl")
_SWINB_TITLE = "SwinB-AOT-L"
# What tells the variants apart in a state dict: the encoder's last width (input channels of
# ``encoder_projector``: MobileNetV2 1280, ResNet-50 1024, Swin-B 512) and the number of LSTT
# layers (paper, Sec. 4: T/S/B/L have 1/2/3/3).
FINGERPRINTS = {
    **{name: (cfg.encoder_dims[-1], cfg.lstt_layers) for name, cfg in MODEL_VARIANTS.items()},
    "swinb_aotl": (512, 3),
}


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read, or does not fit the model; the message says why and
    what to do."""


def variant_title(variant: str) -> str:
    """The paper's name of a variant: ``'aotl'`` -> ``'AOT-L'``."""
    if variant in MODEL_VARIANTS:
        return MODEL_VARIANTS[variant].title
    return _SWINB_TITLE if variant == "swinb_aotl" else variant


# --- registry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportedResults:
    """Scores the official model zoo reports for a ``PRE_YTB_DAV`` checkpoint.

    Percentages; tuples are ``(J&F, J, F)`` for DAVIS and ``(overall, J seen, F seen,
    J unseen, F unseen)`` for YouTube-VOS. YouTube-VOS is given at its default 6 fps and on
    all frames (30 fps). FPS are the zoo's multi-object speeds on one V100 (DAVIS at 480p,
    YouTube-VOS at 1.3 x 480p); they are not comparable to timings on other hardware.
    """

    davis2017_val: tuple[float, float, float]
    davis2017_test_dev: tuple[float, float, float]
    davis2016_val: tuple[float, float, float]
    youtubevos2018_val: tuple[float, float, float, float, float]
    youtubevos2018_val_all_frames: tuple[float, float, float, float, float]
    youtubevos2019_val: tuple[float, float, float, float, float]
    youtubevos2019_val_all_frames: tuple[float, float, float, float, float]
    fps_davis: float
    fps_youtubevos: float
    fps_youtubevos_all_frames: float


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One official checkpoint file.

    ``sha256`` and ``size`` are ``None``: the authors publish neither, and they cannot be
    measured without downloading. :func:`download_checkpoint` therefore verifies the structure
    (the file loads with ``weights_only=True`` and has the variant's keys) and records the
    SHA-256 of that first verified copy in ``<file>.sha256`` for later runs.
    """

    variant: str
    stage: str
    model_name: str  # the model zoo's name: AOTT, AOTS, AOTB, AOTL, R50-AOTL, SwinB-AOTL
    gdrive_id: str
    params_m: float  # parameters in millions, as the model zoo lists them
    supported: bool  # whether aot-edu builds this architecture
    reported: ReportedResults | None = None
    sha256: str | None = None
    size: int | None = None

    @property
    def filename(self) -> str:
        """The file name the AOT community uses, e.g. ``AOTT_PRE_YTB_DAV.pth``,
        ``R50_AOTL_PRE.pth``."""
        return f"{self.model_name.replace('-', '_')}_{self.stage}.pth"

    @property
    def url(self) -> str:
        return f"https://drive.google.com/uc?id={self.gdrive_id}"

    @property
    def title(self) -> str:
        return variant_title(self.variant)


def _r(davis17, test, davis16, y18, y18a, y19, y19a, fps, fps_y, fps_ya) -> ReportedResults:
    return ReportedResults(davis17, test, davis16, y18, y18a, y19, y19a, fps, fps_y, fps_ya)


# Figures and Google Drive ids: yoxu515/aot-benchmark, MODEL_ZOO.md (read at commit 0055837).
_ZOO = (
    # variant, zoo name, params (M), PRE id, PRE_YTB_DAV id, reported results of PRE_YTB_DAV
    ("aott", "AOTT", 5.7, "1_513h8Hok9ySQPMs_dHgX5sPexUhyCmy",
     "1owPmwV4owd_ll6GuilzklqTyAd0ZvbCu",
     _r((79.2, 76.5, 81.9), (73.7, 70.0, 77.3), (87.5, 86.5, 88.4),
        (80.2, 80.4, 85.0, 73.6, 81.7), (80.9, 80.0, 84.7, 75.2, 83.5),
        (80.0, 79.8, 84.2, 74.1, 82.1), (80.9, 79.9, 84.4, 75.6, 83.8), 51.4, 41.0, 41.0)),
    ("aots", "AOTS", 7.0, "1QUP0-VED-lOF1oX_ppYWnXyBjvUzJJB7",
     "1beU5E6Mdnr_pPrgjWvdWurKAIwJSz1xf",
     _r((82.1, 79.3, 84.8), (75.2, 71.4, 78.9), (89.6, 88.6, 90.5),
        (82.9, 82.3, 87.0, 77.1, 85.1), (83.0, 82.2, 87.0, 77.3, 85.7),
        (82.7, 81.9, 86.5, 77.3, 85.2), (82.8, 81.9, 86.5, 77.3, 85.6), 40.0, 27.1, 27.1)),
    ("aotb", "AOTB", 8.3, "11Bx8n_INAha1IdpHjueGpf7BrKmCJDvK",
     "1hH-GOn4GAxHkV8ARcQzsUy8Ax6ndot-A",
     _r((83.3, 80.6, 85.9), (77.4, 73.7, 81.1), (90.9, 89.6, 92.1),
        (84.0, 83.2, 88.1, 78.0, 86.5), (84.1, 83.6, 88.5, 78.0, 86.5),
        (84.0, 83.1, 87.7, 78.5, 86.8), (84.1, 83.3, 88.0, 78.2, 86.7), 29.6, 20.5, 20.5)),
    ("aotl", "AOTL", 8.3, "1WL6QCsYeT7Bt-Gain9ZIrNNXpR2Hgh29",
     "1L1N2hkSPqrwGgnW9GyFHuG59_EYYfTG4",
     _r((83.6, 80.8, 86.3), (79.3, 75.5, 83.2), (91.1, 89.5, 92.7),
        (84.1, 83.2, 88.2, 78.2, 86.8), (84.5, 83.7, 88.8, 78.4, 87.1),
        (84.0, 82.8, 87.6, 78.6, 87.1), (84.2, 83.0, 87.8, 78.7, 87.3), 18.7, 16.0, 6.5)),
    ("r50_aotl", "R50-AOTL", 14.9, "1hS4JIvOXeqvbs-CokwV6PwZV-EvzE6x8",
     "1qJDYn3Ibpquu4ffYoQmVjg1YCbr2JQep",
     _r((85.2, 82.5, 87.9), (79.5, 76.0, 83.0), (91.7, 90.4, 93.0),
        (84.6, 83.7, 88.5, 78.8, 87.3), (85.5, 84.5, 89.5, 79.6, 88.2),
        (84.4, 83.4, 88.1, 78.7, 87.2), (85.3, 83.9, 88.8, 79.9, 88.5), 18.0, 15.1, 6.4)),
    ("swinb_aotl", "SwinB-AOTL", 65.4, "1LlhKQiXD8JyZGGs3hZiNzcaCLqyvL9tj",
     "192jCGQZdnuTsvX-CVra-KVZl2q1ZR0vW",
     _r((85.9, 82.9, 88.9), (82.1, 78.2, 85.9), (92.2, 90.6, 93.8),
        (84.7, 84.5, 89.5, 78.1, 86.7), (85.1, 85.1, 90.1, 78.4, 86.9),
        (84.7, 84.0, 88.8, 78.7, 87.1), (85.3, 84.6, 89.5, 79.3, 87.7), 9.3, 12.1, 5.2)),
)

CHECKPOINTS: tuple[OfficialCheckpoint, ...] = tuple(
    OfficialCheckpoint(
        variant=variant, stage=stage, model_name=name, gdrive_id=gid, params_m=params,
        supported=variant in SUPPORTED_VARIANTS,
        reported=reported if stage == "PRE_YTB_DAV" else None,
    )
    for variant, name, params, pre_id, main_id, reported in _ZOO
    for stage, gid in (("PRE", pre_id), ("PRE_YTB_DAV", main_id))
)


def get_checkpoint(variant: str, stage: str = "PRE_YTB_DAV") -> OfficialCheckpoint:
    """The registry entry for ``variant`` (``aott`` ... ``swinb_aotl``) and ``stage``."""
    variant_key = variant.lower().replace("-", "_")
    stage_key = stage.upper()
    if variant_key not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from: {', '.join(VARIANTS)}")
    if stage_key not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose from: {', '.join(STAGES)} "
                         "(PRE: pre-trained on static images; PRE_YTB_DAV: the final model)")
    for entry in CHECKPOINTS:
        if entry.variant == variant_key and entry.stage == stage_key:
            return entry
    raise AssertionError("registry is missing an entry")  # every pair is listed above


def describe_checkpoints(entries: Iterable[OfficialCheckpoint] = CHECKPOINTS) -> str:
    """A human-readable table of the registry (``aot-edu download list``)."""
    lines = [f"  {'variant':<11} {'stage':<12} {'file':<27} {'params':>7} "
             f"{'DAVIS17 val J&F':>16}  note"]
    for entry in entries:
        score = f"{entry.reported.davis2017_val[0]:.1f}" if entry.reported else "-"
        note = "" if entry.supported else "not built by aot-edu"
        lines.append(f"  {entry.variant:<11} {entry.stage:<12} {entry.filename:<27} "
                     f"{entry.params_m:>6.1f}M {score:>16}  {note}".rstrip())
    return "\n".join(lines)


# --- loading -------------------------------------------------------------------------------

