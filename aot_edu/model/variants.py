"""The AOT variants (paper Sec. 4, Table 3d): what shapes each one, as plain data.

Kept apart from the modules (and from torch) so that a variant's name, its paper title and its
memory schedule can be read cheaply: the command line lists them without loading PyTorch.

Naming: ``max_obj_num`` is the official configuration's name for M, the number of identities
in the identity bank (paper Sec. 3.2: M = 10); aot-edu keeps the official names wherever a
configuration or a checkpoint key is matched against the official code, and says so here once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

NEVER = 9999  # the official "no long-term memory update" gap
# The bound on the long-term memory that ``aot-edu segment`` applies to a long video, in frames:
# AOT-L (a frame every 5) reaches it after about 250 frames. The official code has no bound.
LONG_VIDEO_MEMORY = 50


@dataclass(frozen=True)
class AOTConfig:
    """Everything that shapes one AOT variant."""

    name: str
    title: str  # the paper's name, e.g. "AOT-T"
    encoder: str = "mobilenetv2"
    encoder_dims: tuple[int, int, int, int] = (24, 32, 96, 1280)
    lstt_layers: int = 1
    dim: int = 256
    self_heads: int = 8
    att_heads: int = 8
    ffn_dim: int = 1024
    max_obj_num: int = 10
    max_dis: int = 7  # short-term window 15x15
    dilation: int = 1
    id_bank_kernel: int = 17
    id_bank_stride: int = 16
    id_bank_padding: int = 8
    align_corners: bool = True
    long_term_gap_test: int = NEVER
    long_term_gap_train: int = 2  # official TRAIN_LONG_TERM_MEM_GAP: 9999 for AOT-T/S/B
    short_term_skip: int = 1
    # The paper's ablations (Table 3), all at AOT's setting by default:
    short_term_frames: int = 1  # n, frames t-1 .. t-n in short-term attention (3c); 0 = none
    sine_embedding: bool = True  # sine position embedding in self-attention (3e, "Self")
    relative_embedding: bool = True  # relative position terms in short-term attention (3e, "Rel")
    droppath: float = 0.1  # stochastic depth while training
    paper_params: str = ""  # as printed in the paper (Table 3d)
    official_name: str = ""  # name in the official repository and checkpoint files

    def replace(self, **changes) -> AOTConfig:
        return dataclasses.replace(self, **changes)


_MOBILENET = dict(encoder="mobilenetv2", encoder_dims=(24, 32, 96, 1280))
_RESNET50 = dict(encoder="resnet50", encoder_dims=(256, 512, 1024, 1024))

VARIANTS: dict[str, AOTConfig] = {
    "aott": AOTConfig("aott", "AOT-T", **_MOBILENET, long_term_gap_train=NEVER,
                      lstt_layers=1, paper_params="5.7M", official_name="AOTT"),
    "aots": AOTConfig("aots", "AOT-S", **_MOBILENET, long_term_gap_train=NEVER,
                      lstt_layers=2, paper_params="7.0M", official_name="AOTS"),
    "aotb": AOTConfig("aotb", "AOT-B", **_MOBILENET, long_term_gap_train=NEVER,
                      lstt_layers=3, paper_params="8.3M", official_name="AOTB"),
    "aotl": AOTConfig(
        "aotl", "AOT-L", **_MOBILENET, lstt_layers=3, long_term_gap_test=5, paper_params="8.3M",
        official_name="AOTL",
    ),
    "r50_aotl": AOTConfig(
        "r50_aotl", "R50-AOT-L", **_RESNET50, lstt_layers=3, long_term_gap_test=5, paper_params="14.9M",
        official_name="R50_AOTL",
    ),
}

_ALIASES = {"aot-t": "aott", "aot-s": "aots", "aot-b": "aotb", "aot-l": "aotl",
            "r50-aot-l": "r50_aotl", "r50aotl": "r50_aotl", "r50_aot_l": "r50_aotl"}


def get_config(variant: str | AOTConfig) -> AOTConfig:
    """The configuration of a variant name (``aott``, ``aots``, ``aotb``, ``aotl``, ``r50_aotl``)."""
    if isinstance(variant, AOTConfig):
        return variant
    key = str(variant).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in VARIANTS:
        hint = " (Swin-B is not part of aot-edu)" if "swin" in key else ""
        raise ValueError(
            f"unknown AOT variant {variant!r}{hint}; choose one of {', '.join(VARIANTS)}"
        )
    return VARIANTS[key]
