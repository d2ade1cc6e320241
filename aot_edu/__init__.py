"""aot-edu: an educational reproduction of AOT (Yang, Wei & Yang, NeurIPS 2021).

Public API (stable; notebooks, the CLI and outside scripts use it):

- :func:`build_model` -- build a variant (``aott``, ``aots``, ``aotb``, ``aotl``, ``r50_aotl``),
  optionally loading an official checkpoint unchanged.
- :func:`segment` -- semi-supervised video object segmentation of a clip from its first mask.
- :func:`segment_frames` -- the same, frame by frame as each is predicted (long videos, streams).

The package is layered (``ARCHITECTURE.md``): ``paths`` -> ``download`` -> ``model`` -> ``data``
-> ``inference`` -> ``evaluation`` -> ``training`` -> ``viz``, ``video`` -> ``course`` -> ``cli``,
each importing only from below itself.
"""

from aot_edu._lazy import lazy_exports

__version__ = "0.1.0"

# Resolved on first use: ``aot-edu --help`` imports this package and must not load torch.
__getattr__, __dir__, _exports = lazy_exports(__name__, {
    ".inference.session": ["SegmentationResult", "segment", "segment_frames"],
    ".model.variants": ["VARIANTS", "AOTConfig"],
    ".model.weights": ["build_model"],
}, submodules=("cli", "course", "data", "download", "evaluation", "inference", "model", "paths",
               "training", "video", "viz"))
__all__ = [*_exports, "__version__"]
