"""Data: frames and masks on disk, the evaluation datasets, synthetic videos and training samples.

- :mod:`.io` - read/write frames and label-map PNGs (DAVIS palette).
- :mod:`.datasets` - DAVIS 2016/2017 and YouTube-VOS readers giving :class:`VideoSequence`,
  and :func:`write_davis_layout`.
- :mod:`.synthetic` - textured multi-object videos with look-alike distractors.
- :mod:`.transforms` - the training augmentations (scale, balanced crop, flip, pad, merge).
- :mod:`.training` - training clips (static images, DAVIS, YouTube-VOS) and :func:`collate`.
"""

from .datasets import (
    DAVIS,
    SequenceFrame,
    VideoSequence,
    YouTubeVOS,
    read_youtubevos_meta,
    write_davis_layout,
)
from .io import davis_palette, list_frames, read_frames, read_mask, write_mask

__all__ = [
    "DAVIS",
    "SequenceFrame",
    "VideoSequence",
    "YouTubeVOS",
    "davis_palette",
    "list_frames",
    "read_frames",
    "read_mask",
    "read_youtubevos_meta",
    "write_davis_layout",
    "write_mask",
]
