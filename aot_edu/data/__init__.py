"""Data: frames and masks on disk, the datasets and where they come from, synthetic videos and
training samples.

- :mod:`.io` - read/write frames and label-map PNGs (DAVIS palette), the void label.
- :mod:`.video` - video files (PyAV) and frame folders read one frame at a time, and
  :class:`VideoWriter` (mp4 / webm / gif).
- :mod:`.sources` - the one registry of datasets (DAVIS 2016/2017, YouTube-VOS 2018/2019):
  where each comes from, its folder, how it is evaluated; :func:`download_dataset`.
- :mod:`.datasets` - DAVIS and YouTube-VOS readers giving :class:`VideoSequence`,
  :func:`open_dataset` and :func:`write_davis_layout`.
- :mod:`.synthetic` - textured multi-object videos with look-alike distractors or objects,
  and an occlusion video (an object passes behind an occluder).
- :mod:`.transforms` - the training augmentations (scale, balanced crop, flip, pad, merge).
- :mod:`.training` - training clips (static images, DAVIS, YouTube-VOS) and :func:`collate`.
"""

from aot_edu._lazy import lazy_exports

# Names resolve on first use, so that the registry (:mod:`.sources`, plain data) is read without
# importing torch: the command line's start-up (``aot-edu --help``).
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".datasets": ["DAVIS", "SequenceFrame", "VideoSequence", "YouTubeVOS", "open_dataset",
                  "read_youtubevos_meta", "write_davis_layout"],
    ".io": ["VOID_LABEL", "davis_palette", "list_frames", "read_frames", "read_mask", "write_mask"],
    ".sources": ["DATASETS", "download_dataset", "get_dataset"],
    ".synthetic": ["OcclusionVideos", "SyntheticImages", "SyntheticVideos", "render_occlusion_video", "render_video"],
    ".training": ["DAVISTrain", "StaticClips", "StaticTrain", "TrainVideo", "VOSTrain",
                  "YouTubeVOSTrain", "collate", "find_static_pairs", "make_sample"],
    ".video": ["FrameFolder", "VideoReadError", "VideoSource", "VideoWriter", "open_video",
               "read_video_frame"],
})
