"""aot_edu.data.io: frames and masks from disk, and the clear errors for what a user gets wrong."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aot_edu.data import list_frames, read_frames, read_mask, write_mask
from aot_edu.data.io import natural_key


def save_frames(folder, names, size=(24, 32), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def blob_labels(size=(60, 80)):
    labels = np.zeros(size, np.uint8)
    labels[10:30, 10:30] = 1
    labels[35:55, 40:70] = 2
    labels[5:20, 50:75] = 3
    return labels


# --- masks -----------------------------------------------------------------------------------

def test_legitimate_masks_read_exactly(tmp_path):
    labels = blob_labels()
    write_mask(tmp_path / "p.png", labels)  # palette
    assert np.array_equal(read_mask(tmp_path / "p.png"), labels)
    odd = np.select([labels == 1, labels == 2, labels == 3], [3, 7, 200], 0).astype(np.uint8)
    Image.fromarray(odd, mode="L").save(tmp_path / "l.png")  # grayscale, any label values
    assert np.array_equal(read_mask(tmp_path / "l.png"), odd)
    Image.fromarray((labels > 0).astype(np.uint8) * 255, mode="L").save(tmp_path / "d16.png")
    assert np.array_equal(read_mask(tmp_path / "d16.png"), labels > 0)  # DAVIS 2016 0/255
    many = np.zeros((60, 80), np.uint8)  # a dozen small objects, DAVIS style
    for k in range(12):
        many[(k // 4) * 20 + 2:(k // 4) * 20 + 8, (k % 4) * 20 + 2:(k % 4) * 20 + 8] = k + 1
    Image.fromarray(many, mode="L").save(tmp_path / "many.png")
    assert np.array_equal(read_mask(tmp_path / "many.png"), many)


def test_antialiased_mask_is_refused_with_a_fix(tmp_path):
    binary = np.zeros((60, 80), np.uint8)
    yy, xx = np.mgrid[:60, :80]
    binary[(yy - 30) ** 2 + (xx - 40) ** 2 < 20 ** 2] = 255
    # a bilinear resize turns the 0/255 edge into a band of grey values
    smooth = Image.fromarray(binary, mode="L").resize((213, 161), Image.BILINEAR)
    assert len(np.unique(np.array(smooth))) > 20
    smooth.save(tmp_path / "aa.png")
    with pytest.raises(ValueError, match="anti-aliased") as info:
        read_mask(tmp_path / "aa.png")
    assert "Threshold" in str(info.value) and "nearest" in str(info.value)
    # nearest-neighbour resizing, the fix the message gives, reads fine
    Image.fromarray(binary, mode="L").resize((213, 161), Image.NEAREST).save(tmp_path / "nn.png")
    assert set(np.unique(read_mask(tmp_path / "nn.png"))) == {0, 1}


def test_jpeg_mask_is_refused(tmp_path):
    Image.fromarray(blob_labels() * 80, mode="L").save(tmp_path / "mask.jpg")
    with pytest.raises(ValueError, match="JPEG mask is lossy.*PNG"):
        read_mask(tmp_path / "mask.jpg")


def test_exif_orientation_is_applied_to_frames_and_masks(tmp_path):
    frame = np.zeros((20, 30, 3), np.uint8)
    frame[:, :15] = 255  # left half white
    labels = np.zeros((20, 30), np.uint8)
    labels[:, :15] = 1
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to view
    Image.fromarray(frame).save(tmp_path / "f.jpg", exif=exif, quality=100)
    Image.fromarray(labels, mode="L").save(tmp_path / "m.png", exif=exif)
    upright = read_frames([tmp_path / "f.jpg"])[0]
    mask = read_mask(tmp_path / "m.png")
    assert upright.shape == (30, 20, 3) and mask.shape == (30, 20)
    assert upright[:15].mean() > 200 and upright[15:].mean() < 50  # left became top
    assert mask[:15].all() and not mask[15:].any()


# --- frame folders ---------------------------------------------------------------------------

def test_frames_sort_naturally():
    names = ["frame10.jpg", "frame2.jpg", "frame0.jpg", "frame1.jpg", "Frame3.jpg"]
    assert sorted(names, key=natural_key) == [
        "frame0.jpg", "frame1.jpg", "frame2.jpg", "Frame3.jpg", "frame10.jpg"]


def test_list_frames_natural_order_skips_hidden_and_excluded(tmp_path):
    folder = save_frames(tmp_path / "f", ["frame0.JPG", "frame1.JPG", "frame10.JPG", "frame2.JPG"])
    (folder / "._frame0.JPG").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    write_mask(folder / "mask.png", np.ones((24, 32), np.uint8))
    paths = list_frames(folder, exclude=[folder / "mask.png"])
    assert [p.name for p in paths] == ["frame0.JPG", "frame1.JPG", "frame2.JPG", "frame10.JPG"]
    assert read_frames(paths).shape == (4, 24, 32, 3)


def test_duplicate_stems_are_named(tmp_path):
    folder = save_frames(tmp_path / "f", ["00000.jpg", "00001.jpg", "00001.png", "00002.jpg"])
    with pytest.raises(ValueError, match=r"00001\.jpg and 00001\.png"):
        list_frames(folder)


def test_masks_among_frames_are_refused(tmp_path):
    folder = save_frames(tmp_path / "f", ["00000.jpg", "00001.jpg"])
    write_mask(folder / "mask.png", np.ones((24, 32), np.uint8))
    with pytest.raises(ValueError, match="mask.png is a label map"):
        list_frames(folder)
    masks = tmp_path / "masks"
    for t in range(3):
        write_mask(masks / f"{t:05d}.png", np.ones((24, 32), np.uint8))
    with pytest.raises(ValueError, match="folder of masks"):
        list_frames(masks)


def test_grayscale_png_video_is_read_as_rgb(tmp_path):
    folder = tmp_path / "gray"
    folder.mkdir()
    for t in range(2):
        Image.fromarray(np.full((24, 32), 40 * t, np.uint8), mode="L").save(folder / f"{t}.png")
    frames = read_frames(folder)
    assert frames.shape == (2, 24, 32, 3) and frames[1].max() == 40


def test_unreadable_file_is_named(tmp_path):
    folder = save_frames(tmp_path / "f", ["00000.jpg"])
    (folder / "00001.jpg").write_text("not an image")
    with pytest.raises(ValueError, match=r"00001\.jpg: not a readable image"):
        read_frames(folder)


def test_mixed_sizes_name_the_odd_frame(tmp_path):
    folder = save_frames(tmp_path / "f", ["00000.jpg", "00001.jpg"])
    save_frames(folder, ["00002.jpg"], size=(30, 32))
    with pytest.raises(ValueError, match=r"00002\.jpg is 32x30 .* 00000\.jpg"):
        read_frames(folder)


def test_video_file_gets_an_extraction_hint(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(ValueError, match="ffmpeg -i"):
        list_frames(tmp_path / "clip.mp4")
    with pytest.raises(FileNotFoundError, match="frame folder not found"):
        list_frames(tmp_path / "missing")


def test_write_mask_leaves_no_partial_file(tmp_path):
    write_mask(tmp_path / "out" / "00000.png", blob_labels())
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["00000.png"]


def test_frame_sizes_are_checked_from_headers_and_truncated_files_named(tmp_path):
    from aot_edu.data.io import frame_sizes_agree, read_frame

    folder = save_frames(tmp_path / "f", ["00000.jpg", "00001.jpg"])
    assert frame_sizes_agree(list_frames(folder)) == (24, 32)
    save_frames(folder, ["00002.jpg"], size=(24, 40))
    with pytest.raises(ValueError, match=r"00002\.jpg is 40x24"):
        frame_sizes_agree(list_frames(folder))
    data = (folder / "00001.jpg").read_bytes()
    (folder / "00001.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"00001\.jpg: could not be read"):
        read_frame(folder / "00001.jpg")


def test_truncated_png_frame_and_mask_name_their_file(tmp_path):
    """PIL's "image file is truncated" names no file; every reader adds it (issue 21)."""
    from aot_edu.data.io import frame_sizes_agree, read_frame

    folder = save_frames(tmp_path / "f", ["00000.png"], size=(64, 64))
    data = (folder / "00000.png").read_bytes()
    (folder / "00001.png").write_bytes(data[: len(data) // 2])
    for read in (read_frame, lambda p: frame_sizes_agree([p])):
        with pytest.raises(ValueError, match=r"00001\.png: could not be read \(image file is "
                                             r"truncated\); re-export or remove it"):
            read(folder / "00001.png")
    noise = np.random.default_rng(0).integers(0, 4, (64, 64), dtype=np.uint8)
    write_mask(tmp_path / "m.png", noise)  # palette: incompressible, so the cuts hit pixels
    data = (tmp_path / "m.png").read_bytes()
    for cut in (400, len(data) - 30):  # inside the palette (Image.open fails) / the pixels
        (tmp_path / "cut.png").write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"cut\.png: the mask could not be read \(.*\); "
                                             "save it again as a PNG"):
            read_mask(tmp_path / "cut.png")
    assert (tmp_path / "cut.png").read_bytes() == data[:cut]  # the file is left as it was


def test_unwritable_output_folder_is_named_with_a_fix(tmp_path, monkeypatch):
    import os

    from aot_edu.data.io import check_writable_folder

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match=r"^--out .*a_file/masks: .*a_file is a file, so no "
                                         "folder can be made there; give a path whose parents"):
        check_writable_folder(tmp_path / "a_file" / "masks", "--out")
    check_writable_folder(tmp_path / "new" / "masks", "--out")  # creatable: fine
    assert not (tmp_path / "new").exists()  # and nothing was created
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a non-root user would see
    with pytest.raises(ValueError, match=r"^--out .*new/masks: no permission to create "
                                         r".*new/masks in .*; give a folder you can write to"):
        check_writable_folder(tmp_path / "new" / "masks", "--out")


def test_sixteen_bit_mask_above_255_gets_the_documented_fix(tmp_path):
    labels = blob_labels().astype(np.uint16)
    labels[labels == 3] = 300
    Image.fromarray(labels).save(tmp_path / "m16.png")  # a 16-bit grayscale PNG
    with pytest.raises(ValueError) as info:
        read_mask(tmp_path / "m16.png")
    assert str(info.value) == (
        f"{tmp_path / 'm16.png'}: the mask holds label values up to 300, but PNG masks (read by "
        "`aot-edu segment` and written as palette PNGs) hold labels 0..255. Renumber the objects "
        "1, 2, 3, ... and save an 8-bit PNG, or call the Python API, aot_edu.segment(frames, "
        "first_mask, model), which takes any integer labels")
    labels[labels == 300] = 3  # renumbered, the same 16-bit file reads
    Image.fromarray(labels).save(tmp_path / "m16.png")
    assert np.array_equal(read_mask(tmp_path / "m16.png"), blob_labels())
