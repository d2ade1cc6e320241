"""Data: frames and masks on disk, the evaluation datasets, synthetic videos and training samples.

- :mod:`.io` - read/write frames and label-map PNGs (DAVIS palette).
- :mod:`.video` - video files (PyAV) and frame folders read one frame at a time, and
  :class:`VideoWriter` (mp4 / webm / gif).
- :mod:`.datasets` - DAVIS 2016/2017 and YouTube-VOS readers giving :class:`VideoSequence`,
  and :func:`write_davis_layout`.
- :mod:`.synthetic` - textured multi-object videos with look-alike distractors or objects,
  and an occlusion video (an object passes behind an occluder).
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
from .synthetic import SyntheticImages, SyntheticVideos, render_occlusion_video, render_video
from .training import (
    DAVISTrain,
    StaticClips,
    StaticTrain,
    TrainVideo,
    VOSTrain,
    YouTubeVOSTrain,
    collate,
    find_static_pairs,
    make_sample,
)
from .video import (
    FrameFolder,
    VideoReadError,
    VideoSource,
    VideoWriter,
    open_video,
    read_video_frame,
)

__all__ = [
    "DAVIS",
    "DAVISTrain",
    "FrameFolder",
    "SequenceFrame",
    "StaticClips",
    "StaticTrain",
    "SyntheticImages",
    "SyntheticVideos",
    "TrainVideo",
    "VOSTrain",
    "VideoReadError",
    "VideoSequence",
    "VideoSource",
    "VideoWriter",
    "YouTubeVOS",
    "YouTubeVOSTrain",
    "collate",
    "davis_palette",
    "find_static_pairs",
    "list_frames",
    "make_sample",
    "open_video",
    "read_frames",
    "read_mask",
    "read_video_frame",
    "read_youtubevos_meta",
    "render_occlusion_video",
    "render_video",
    "write_davis_layout",
    "write_mask",
]
