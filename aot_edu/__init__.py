"""aot-edu: an educational reproduction of AOT (Yang, Wei & Yang, NeurIPS 2021).

Public API (stable; notebooks, the CLI and outside scripts use it):

- :func:`build_model` -- build a variant (``aott``, ``aots``, ``aotb``, ``aotl``, ``r50_aotl``),
  optionally loading an official checkpoint unchanged.
- :func:`segment` -- semi-supervised video object segmentation of a clip from its first mask.
- :func:`segment_frames` -- the same, frame by frame as each is predicted (long videos, streams).
"""

__version__ = "0.1.0"

from .engine import SegmentationResult, segment, segment_frames
from .model import VARIANTS, AOTConfig, build_model

__all__ = ["AOTConfig", "SegmentationResult", "VARIANTS", "build_model", "segment", "segment_frames",
           "__version__"]
