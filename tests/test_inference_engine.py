"""The inference engine: size rule, label handling, object groups, memories, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aot_edu import build_model, segment
from aot_edu.inference.engine import (
    UNUSED_LOGIT,
    AOTEngine,
    mask_unused_identities,
    official_input_size,
    prepare_frame,
    resize_labels,
)
from aot_edu.inference.session import InferenceSession, segment_frames
from aot_edu.model.identity import one_hot_labels, random_assignment
from conftest import random_frames


@pytest.fixture(scope="module")
def model(random_aott):
    return random_aott


def test_unused_identities_get_the_unused_logit():
    logits = torch.randn(2, 11, 3, 3)
    out = mask_unused_identities(logits, [2, 0])
    assert torch.equal(out[0, :3], logits[0, :3]) and (out[0, 3:] == UNUSED_LOGIT).all()
    assert torch.equal(out[1, :1], logits[1, :1]) and (out[1, 1:] == UNUSED_LOGIT).all()
    assert (mask_unused_identities(logits.half(), [2, 0])[0, 3:] == -1e4).all()  # fits in fp16


def blocks_mask(h, w, labels):
    """Vertical stripes, one per label, on a background band at the top."""
    mask = np.zeros((h, w), dtype=np.int64)
    edges = np.linspace(0, w, len(labels) + 1).astype(int)
    for label, a, b in zip(labels, edges[:-1], edges[1:], strict=True):
        mask[h // 4 :, a:b] = label
    return mask


@pytest.mark.parametrize(
    "size, expected",
    [((480, 854), (481, 849)), ((1080, 1920), (577, 1041)), ((720, 1280), (577, 1041)),
     ((360, 640), (353, 641)), ((145, 257), (145, 257)), ((481, 849), (481, 849))],
)
def test_official_size_rule(size, expected):
    assert official_input_size(*size) == expected


def test_labels_come_back_in_the_first_masks_values(model):
    frames = random_frames()
    first = blocks_mask(65, 97, [3, 7])
    result = segment(frames, first, model, return_probs=True)
    assert isinstance(result.masks, np.ndarray) and result.masks.dtype == np.uint8
    assert result.masks.shape == (4, 65, 97)
    assert np.array_equal(result.masks[0], first)
    assert set(np.unique(result.masks)) <= {0, 3, 7}
    assert result.labels == [3, 7]
    assert result.probs.shape == (4, 3, 65, 97)
    torch.testing.assert_close(result.probs.sum(1), torch.ones(4, 65, 97))
    # frame 0: one-hot of the given mask, objects in ascending label order
    assert torch.equal(result.probs[0, 2], torch.as_tensor(first == 7).float())
    # masks are the argmax of the probabilities, mapped back to label values
    argmax = result.probs[1:].argmax(1).numpy()
    assert np.array_equal(np.array([0, 3, 7])[argmax], result.masks[1:])


def test_any_frame_size_runs_at_the_official_size_and_returns_the_frame_size(model):
    frames = torch.as_tensor(random_frames(3, 50, 70))
    first = torch.as_tensor(blocks_mask(50, 70, [1]))
    result = segment(frames, first, model, return_probs=True)
    assert result.input_size == (49, 65)
    assert isinstance(result.masks, torch.Tensor) and result.masks.shape == (3, 50, 70)
    assert result.probs.shape == (3, 2, 50, 70)


def test_resizing_helpers():
    frame = torch.zeros(50, 70, 3, dtype=torch.uint8)
    assert prepare_frame(frame, (49, 65)).shape == (1, 3, 49, 65)
    labels = torch.arange(4).repeat_interleave(2)[None, None].expand(1, 8, 8)
    assert torch.equal(resize_labels(labels, (8, 4))[0, 0], torch.tensor([0, 1, 2, 3]))


def test_more_than_ten_objects_merge_like_the_official_soft_aggregation(model):
    frames = torch.as_tensor(random_frames(2, 65, 97, seed=1))
    labels = torch.as_tensor(blocks_mask(65, 97, list(range(1, 14))))  # 13 objects
    session = InferenceSession(model)
    with torch.inference_mode():
        session.add_reference(frames[0], labels)
        result = session.propagate(frames[1])
        assert [e.num_objects for e in session.engines] == [[10], [3]]
        # official merge: per group softmax over its 11 identities (unused ones at -1e10),
        # background = product, clamp to [1e-5, 1 - 1e-5], logit
        enc = session._encode(frames[1])
        probs = [torch.softmax(e.decode(enc, (65, 97)), dim=1) for e in session.engines]
        merged = torch.cat(
            [probs[0][:, :1] * probs[1][:, :1], probs[0][:, 1:], probs[1][:, 1:]], dim=1
        )
        expected = torch.logit(merged.clamp(1e-5, 1 - 1e-5))
    assert result.logits.shape == (1, 21, 65, 97)
    torch.testing.assert_close(result.logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(result.probs, torch.softmax(expected, 1)[:, :14], atol=1e-6, rtol=1e-5)


def test_second_group_sees_objects_11_to_13_as_1_to_3(model):
    frame = torch.as_tensor(random_frames(1, 65, 97)[0])
    labels = torch.as_tensor(blocks_mask(65, 97, list(range(1, 14))))
    session = InferenceSession(model)
    with torch.inference_mode():
        session.add_reference(frame, labels)
        alone = AOTEngine(model, long_term_gap=9999)
        local = torch.where(labels > 10, labels - 10, 0)
        alone.add_reference_frame(session._encode(frame), one_hot_labels(local[None], 11), [3])
    torch.testing.assert_close(session.engines[1].long_term[0][1], alone.long_term[0][1])


def test_segment_with_twelve_objects_returns_all_labels(model):
    result = segment(random_frames(3), blocks_mask(65, 97, list(range(1, 13))), model, return_probs=True)
    assert result.probs.shape[1] == 13 and result.info["groups"] == 2
    torch.testing.assert_close(result.probs[1:].sum(1), torch.ones(2, 65, 97), atol=2e-4, rtol=0)


@pytest.mark.parametrize("gap, bound, expected", [
    (2, None, [1, 2, 2, 3, 3, 4, 4]),  # a memory frame every 2 frames, unbounded
    (2, 3, [1, 2, 2, 3, 3, 3, 3]),
    (1, 1, [1] * 7),  # the bound is exact: 1 keeps the reference frame only
    (1, 2, [2] * 7),
    (1, 3, [2, 3, 3, 3, 3, 3, 3]),
])
def test_long_term_memory_grows_every_gap_frames_and_the_bound_is_exact(model, gap, bound, expected):
    frames = torch.as_tensor(random_frames(8))
    labels = torch.as_tensor(blocks_mask(65, 97, [1, 2]))
    session = InferenceSession(model, long_term_gap=gap, max_long_term_frames=bound)
    counts = []
    with torch.inference_mode():
        session.add_reference(frames[0], labels)
        reference = session.engines[0].long_term[0][0].clone()
        for t in range(1, 8):
            session.update_memory(session.propagate(frames[t]).labels)
            counts.append(session.engines[0].long_term_frames)
    assert counts == expected
    hw = reference.shape[0]
    assert torch.equal(session.engines[0].long_term[0][0][-hw:], reference)  # the reference is kept, last


def test_variant_default_gap_and_validation(model):
    assert InferenceSession(model).long_term_gap == 9999
    assert InferenceSession(build_model("aotl")).long_term_gap == 5
    with pytest.raises(ValueError, match="long_term_gap"):
        InferenceSession(model, long_term_gap=0)


def test_objects_that_appear_later_join_as_reference_frames(model):
    frames = torch.as_tensor(random_frames(4))
    first = torch.as_tensor(blocks_mask(65, 97, [1]))
    session = InferenceSession(model, long_term_gap=9999)
    with torch.inference_mode():
        session.add_reference(frames[0], first)
        session.update_memory(session.propagate(frames[1]).labels)
        pred = session.propagate(frames[2]).labels.clone()
        pred[:10, :10] = 2  # a new object's first mask, pasted over the prediction
        session.add_reference(frames[2], pred)
        engine = session.engines[0]
        assert session.num_objects == 2 and engine.num_objects == [2]
        assert engine.long_term_frames == 2 and engine.reference_frames == 2
        nxt = session.propagate(frames[3])
    assert nxt.probs.shape[1] == 3


def test_training_engine_with_random_identities_backpropagates(model):
    model.train()
    try:
        g = torch.Generator().manual_seed(0)
        images = torch.randn(2, 3, 65, 97)
        labels = torch.randint(0, 3, (2, 65, 97), generator=g)
        labels[1][labels[1] == 2] = 0  # sample 1 has a single object
        engine = AOTEngine(model, long_term_gap=2)
        assignment = random_assignment(2, 11, g)
        enc = model.encode_image(images)
        engine.add_reference_frame(enc, one_hot_labels(labels, 11), [2, 1], assignment=assignment)
        engine.propagate(model.encode_image(images.flip(-1)))
        logits = engine.decode(enc, (65, 97))
        assert torch.all(logits[1, 2:] == -1e10) and torch.all(logits[0, 3:] == -1e10)
        loss = logits[:, :2].logsumexp(1).mean()
        loss.backward()
        assert model.patch_wise_id_bank.weight.grad is not None
        assert model.LSTT.layers[0].linear_V.weight.grad is not None
    finally:
        model.zero_grad()
        model.eval()


@pytest.mark.parametrize(
    "frames, mask, match",
    [
        (np.zeros((2, 3, 65, 97), np.uint8), None, "channel-first"),
        (np.zeros((2, 65, 97), np.uint8), None, r"\[T, H, W, 3\].*grayscale.*np.repeat"),
        (np.zeros((2, 65, 97, 1), np.uint8), None, r"grayscale.*np.repeat\(frames, 3"),
        (np.zeros((2, 65, 97, 4), np.uint8), None, r"RGBA.*frames\[\.\.\., :3\]"),
        (np.zeros((2, 65, 97, 3), np.float32), None, "0..1 floats"),
        (np.full((2, 65, 97, 3), 200.0), None, "uint8"),
        (np.zeros((2, 65, 97, 3), np.uint8), np.ones((60, 97), np.int64), "resize the mask"),
        (np.zeros((2, 65, 97, 3), np.uint8), np.zeros((65, 97), np.int64), "empty"),
        (np.zeros((2, 65, 97, 3), np.uint8), -np.ones((65, 97), np.int64), ">= 0"),
        (np.zeros((2, 65, 97, 3), np.uint8), np.full((65, 97), 0.5), "integer labels"),
        (np.zeros((2, 65, 97, 3), np.uint8), np.zeros((65, 97, 3), np.uint8), "RGB mask"),
    ],
)
def test_bad_input_gets_a_clear_error(model, frames, mask, match):
    if mask is None:
        mask = blocks_mask(65, 97, [1])
    with pytest.raises(ValueError, match=match):
        segment(frames, mask, model)


def test_wrong_model_type_is_named(model):
    with pytest.raises(TypeError, match="build_model"):
        segment(random_frames(2), blocks_mask(65, 97, [1]), torch.nn.Linear(2, 2))


def test_boolean_mask_is_one_object(model):
    result = segment(random_frames(2), blocks_mask(65, 97, [1]) > 0, model)
    assert result.labels == [1]


def test_mask_dtype_is_the_smallest_that_holds_the_labels(model):
    frames = random_frames(2)
    assert segment(frames, blocks_mask(65, 97, [1, 255]), model).masks.dtype == np.uint8
    assert segment(frames, blocks_mask(65, 97, [1, 256]), model).masks.dtype == np.int16
    assert segment(torch.as_tensor(frames), torch.as_tensor(blocks_mask(65, 97, [3, 7])),
                   model).masks.dtype == torch.uint8


def test_huge_label_values_are_mapped_without_a_lookup_table(model):
    """Labels up to 10**9 used to allocate a lookup table of max_label + 1 entries (GBs)."""
    first = blocks_mask(65, 97, [5, 10**9])
    result = segment(random_frames(2), first, model)
    assert result.labels == [5, 10**9] and result.masks.dtype == np.int32
    assert np.array_equal(result.masks[0], first)
    assert set(np.unique(result.masks[1])) <= {0, 5, 10**9}


def test_mask_without_background_pixels(model):
    first = blocks_mask(65, 97, [2, 4])
    first[first == 0] = 2  # every pixel belongs to an object
    result = segment(random_frames(2), first, model, return_probs=True)
    assert result.labels == [2, 4] and result.probs.shape[1] == 3
    assert np.array_equal(result.masks[0], first)


def test_negative_stride_views_are_accepted(model):
    """frames[..., ::-1] (OpenCV's BGR -> RGB) and flipped masks are views torch cannot wrap."""
    frames, first = random_frames(3), blocks_mask(65, 97, [1, 2])
    flipped = segment(frames[:, ::-1, :, ::-1], first[::-1], model)
    expected = segment(np.ascontiguousarray(frames[:, ::-1, :, ::-1]), np.ascontiguousarray(first[::-1]), model)
    assert np.array_equal(flipped.masks, expected.masks)


def test_segment_frames_streams_the_same_masks_as_segment(model):
    frames, first = random_frames(4), blocks_mask(65, 97, [3, 7])
    expected = segment(frames, first, model, return_probs=True)
    seen = []

    def one_at_a_time():
        for t in range(len(frames)):
            seen.append(t)
            yield frames[t]

    for step in segment_frames(one_at_a_time(), first, model, return_probs=True):
        assert seen[-1] == step.index  # the mask comes before the next frame is read
        assert np.array_equal(step.mask.numpy(), expected.masks[step.index])
        torch.testing.assert_close(step.probs, expected.probs[step.index])
    assert seen == [0, 1, 2, 3] and not model.training


@pytest.mark.parametrize("bound", [0, -1, 2.5, True])
def test_bad_long_term_bound_is_refused(model, bound):
    with pytest.raises(ValueError, match="max_long_term_frames must be a whole number >= 1"):
        segment(random_frames(2), blocks_mask(65, 97, [1]), model, max_long_term_frames=bound)


def test_empty_and_mixed_size_frame_lists_get_the_projects_words(model):
    """numpy's 'need at least one array to stack' / 'all input arrays must have the same
    shape' were what segment([]) and a list of mixed-size frames said (issue 21)."""
    first = blocks_mask(65, 97, [1])
    with pytest.raises(ValueError, match=r"^frames is an empty list: give at least the first "
                                         r"frame \(uint8 RGB \[H, W, 3\]\)$"):
        segment([], first, model)
    frames = list(random_frames(3))
    frames[2] = frames[2][:60]
    with pytest.raises(ValueError, match=r"^frames\[2\] is 97x60 \(WxH\) but frame 0 is 97x65; "
                                         "all frames of a video must have the same size"):
        segment(frames, first, model)
    frames[2] = frames[2][..., 0]  # a grayscale frame among RGB ones
    with pytest.raises(ValueError, match=r"^frames\[2\] has shape \(60, 97\) but frames\[0\] "
                                         r"has \(65, 97, 3\)"):
        segment(frames, first, model)
    with pytest.raises(ValueError, match=r"^frame 1 is 97x60 \(WxH\) but frame 0 is 97x65"):
        list(segment_frames(iter([frames[0], frames[0][:60]]), first, model))
    assert not model.training  # restored after the error


def test_labels_the_png_masks_cannot_hold_work_in_the_api(model):
    """The CLI's PNG masks stop at 255 (tests/test_cli.py); the API takes label 300."""
    result = segment(random_frames(2), blocks_mask(65, 97, [1, 300]), model)
    assert result.labels == [1, 300] and result.masks.dtype == np.int16


# --- objects that appear later ---------------------------------------------------------------

def test_a_later_mask_adds_its_object_from_that_frame_on(model):
    frames = random_frames(5)
    first, later = blocks_mask(65, 97, [5, 9]), np.zeros((65, 97), np.int64)
    later[2:12, 40:60] = 2  # a smaller label than those tracked: channel order must follow
    result = segment(frames, {0: first, 3: later}, model, return_probs=True)
    assert result.labels == [2, 5, 9] and result.info["entry_frames"] == {5: 0, 9: 0, 2: 3}
    assert result.probs.shape == (5, 4, 65, 97)
    assert not (result.masks[:3] == 2).any()
    assert (result.probs[:3, 1] == 0).all()  # channel 1 = label 2, absent before frame 3
    assert np.array_equal(result.masks[3] == 2, later == 2)  # the given mask, exactly
    torch.testing.assert_close(result.probs[3].argmax(0).numpy(),
                               np.searchsorted([0, 2, 5, 9], result.masks[3]))
    assert (result.probs[4, 1] > 0).all()  # tracked (softmax) after it entered
    torch.testing.assert_close(result.probs.sum(1), torch.ones(5, 65, 97))


def test_later_objects_follow_the_official_youtube_vos_order(model):
    """Same masks as the benchmark path (evaluate.predict_sequence: propagate, paste the new
    object over the argmax, add the merged frame as a reference) for a mask of new objects."""
    from aot_edu.data import SequenceFrame
    from aot_edu.evaluation.benchmark import predict_sequence

    frames, first = random_frames(5), blocks_mask(65, 97, [1, 2])
    later = np.zeros((65, 97), np.uint8)
    later[0:10, 10:50] = 3

    class Sequence(list):
        name = "later"

    sequence = Sequence(
        SequenceFrame(t, f"{t:05d}", frames[t], {0: first.astype(np.uint8), 2: later}.get(t), ())
        for t in range(5))
    with torch.inference_mode():
        official = [p.labels for p in predict_sequence(sequence, model.eval())]
    ours = segment(frames, {0: first, 2: later}, model).masks
    assert np.array_equal(np.stack(official), ours)


def test_a_later_mask_re_anchors_an_object_already_tracked(model):
    frames, first = random_frames(4), blocks_mask(65, 97, [1, 2])
    later = np.zeros((65, 97), np.int64)
    later[0:8, 0:30] = 2
    masks = segment(frames, {0: first, 2: later}, model).masks
    assert np.array_equal(masks[2] == 2, later == 2)  # its predicted pixels elsewhere cleared


def test_a_later_object_that_opens_a_new_group_of_ten(model):
    first = blocks_mask(65, 97, list(range(1, 11)))
    later = np.zeros((65, 97), np.int64)
    later[0:10, 0:20] = 11
    result = segment(random_frames(4), {0: first, 2: later}, model)
    assert result.info["groups"] == 2 and result.labels == list(range(1, 12))
    assert not (result.masks[:2] == 11).any() and (result.masks[2] == 11).sum() == 200


def test_segment_frames_says_which_labels_enter_where(model):
    later = np.zeros((65, 97), np.int64)
    later[0:8, 0:30] = 4
    steps = list(segment_frames(iter(random_frames(3)), {0: blocks_mask(65, 97, [1]), 1: later},
                                model))
    assert [s.entered for s in steps] == [(1,), (4,), ()]


@pytest.mark.parametrize(
    "masks, match",
    [
        ({2: "later"}, r"^the masks must include frame 0, where tracking starts \(got frames 2\)"),
        ({0: "first", -1: "later"}, "keyed by frame index, a whole number >= 0; got key -1"),
        ({0: "first", 1.5: "later"}, "got key 1.5"),
        ({0: "first", 4: "later"}, r"^masks were given for frame 4 but the video has 3 frames "
                                   r"\(0..2\)"),
        ({0: "first", 1: "small"}, r"^masks\[1\] is \(60, 97\) but the frames are \(65, 97\)"),
        ({0: "first", 2: "empty"}, r"^masks\[2\] is empty \(all background\)"),
    ],
)
def test_bad_later_masks_get_a_clear_error(model, masks, match):
    arrays = {"first": blocks_mask(65, 97, [1]), "later": blocks_mask(65, 97, [2]),
              "small": blocks_mask(60, 97, [2]), "empty": np.zeros((65, 97), np.int64)}
    with pytest.raises(ValueError, match=match):
        segment(random_frames(3), {t: arrays[name] for t, name in masks.items()}, model)


def test_a_mask_past_the_end_of_a_stream_fails_after_the_last_frame(model):
    later = blocks_mask(65, 97, [2])
    steps = segment_frames(iter(random_frames(3)), {0: blocks_mask(65, 97, [1]), 7: later}, model)
    seen = []
    with pytest.raises(ValueError, match=r"^masks were given for frame 7 but the video ends at "
                                         r"frame 2 \(3 frames\)"):
        for step in steps:
            seen.append(step.index)
    assert seen == [0, 1, 2]  # every frame was delivered first


@pytest.mark.parametrize("frames", [0, 2, 3])
def test_short_term_memory_holds_the_latest_n_frames(frames):
    """Table 3c: with ``short_term_frames = n`` the engine hands the last n frames (newest
    first) to short-term attention; n = 0 runs without short-term attention at all."""
    torch.manual_seed(0)
    model = build_model(build_model("aott").config.replace(short_term_frames=frames))
    session = InferenceSession(model, long_term_gap=9999)
    video = random_frames(5)
    with torch.inference_mode():
        session.add_reference(video[0], torch.from_numpy(blocks_mask(65, 97, [1, 2])))
        engine = session.engines[0]
        for t in range(1, 5):
            if frames > 1:
                keys = engine.short_term[0][0]
                assert keys.dim() == 5 and keys.shape[:2] == (1, min(t, frames))
            result = session.propagate(video[t])
            assert result.labels.shape == (65, 97)
            session.update_memory(result.labels)
    if frames > 1:  # newest first: the first slot holds the frame just added
        torch.testing.assert_close(engine.short_term[0][0][:, 0], engine.short_term_queue[-1][0][0])
