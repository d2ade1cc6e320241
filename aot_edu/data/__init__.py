"""Data: frames and masks on disk, the evaluation datasets, and training samples."""

from .io import davis_palette, list_frames, read_frames, read_mask, write_mask

__all__ = ["davis_palette", "list_frames", "read_frames", "read_mask", "write_mask"]
