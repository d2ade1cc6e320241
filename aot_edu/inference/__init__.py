"""Inference: a trained model run over a video, frame by frame (paper Sec. 3, Fig. 2a).

- :mod:`.engine` - the memories of one group of up to M objects (long-term: reference frames
  and a frame every ``delta``; short-term: the previous frame) and the input pipeline (the
  official input size, resizing, normalisation);
- :mod:`.session` - any number of objects (groups of M, merged by soft aggregation) and any
  frame size: :class:`InferenceSession`, :func:`segment`, :func:`segment_frames`;
- :mod:`.post_ensemble` - the baseline AOT replaces: each object on its own, merged by soft
  aggregation (Eq. 1), and the multi-object efficiency curve (Fig. 1c);
- :mod:`.attention_maps` - the attention maps of one run recorded for the figures (Fig. 6-7).
"""

from .engine import AOTEngine
from .session import (
    FrameResult,
    InferenceSession,
    SegmentationResult,
    SegmentedFrame,
    segment,
    segment_frames,
)

__all__ = ["AOTEngine", "FrameResult", "InferenceSession", "SegmentationResult", "SegmentedFrame",
           "segment", "segment_frames"]
