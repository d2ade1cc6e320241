"""The shipped course model (aot_edu/assets): the file, its card, and that the card's numbers
are what the file does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aot_edu import build_model
from aot_edu.course.model import (
    COURSE_CARD,
    COURSE_LOG,
    COURSE_VARIANT,
    COURSE_WEIGHTS,
    STAGES,
    course_losses,
    export_fp16,
    held_out_videos,
    read_card,
    read_course_log,
    sha256,
)
from aot_edu.evaluation import analysis
from aot_edu.training import load_config
from aot_edu.training.config import config_from_dict

ROOT = COURSE_CARD.parents[2]


@pytest.fixture(scope="module")
def card() -> dict:
    return read_card()


@pytest.fixture(scope="module")
def shipped():
    return build_model(COURSE_VARIANT, weights=COURSE_WEIGHTS)


def test_the_shipped_file_is_the_cards_small_fp16_file(card):
    assert sha256(COURSE_WEIGHTS) == card["sha256"]
    assert COURSE_WEIGHTS.stat().st_size == card["bytes"] <= 20 * 1024 * 1024
    state = torch.load(COURSE_WEIGHTS, map_location="cpu", weights_only=True)
    floats = [v.dtype for v in state.values() if v.is_floating_point()]
    assert floats and set(floats) == {torch.float16}


def test_it_loads_strictly_with_build_model(shipped):
    state = torch.load(COURSE_WEIGHTS, map_location="cpu", weights_only=True)
    assert set(shipped.state_dict()) == set(state)
    for key, value in state.items():  # every tensor came from the file (fp16 -> fp32 exactly)
        torch.testing.assert_close(shipped.state_dict()[key], value.to(shipped.state_dict()[key].dtype))


def test_the_card_says_how_it_was_made(card):
    for key in ("variant", "size", "seed", "steps", "train_time_min", "machine", "command",
                "sha256", "stages", "held_out"):
        assert key in card, key
    assert card["command"] == "make train-course-model"
    # the configurations in the card are the committed ones (the command reproduces the file)
    assert list(card["stages"]) == list(STAGES)
    for stage, path in STAGES.items():
        committed = load_config(ROOT / path, check_paths=False).to_dict()
        # read back as the trainer would: keys added since the stage ran take their defaults,
        # which leave an older run unchanged
        recorded = config_from_dict(card["stages"][stage]["config"], check_paths=False).to_dict()
        committed.pop("run"), recorded.pop("run")
        assert json.loads(json.dumps(committed)) == json.loads(json.dumps(recorded)), stage
        assert card["stages"][stage]["steps"] == committed["optim"]["steps"]


def test_the_training_log_holds_every_step_of_every_stage(card):
    losses = course_losses()
    assert {k: len(v) for k, v in losses.items()} == card["steps"]
    assert list(losses) == list(STAGES)
    rows = read_course_log(COURSE_LOG)
    first, last = list(STAGES)[0], list(STAGES)[-1]
    assert rows[0]["stage"] == first and rows[-1]["stage"] == last
    assert np.mean(losses[last][-50:]) < np.mean(losses[first][:50])


def test_the_cards_baselines_are_reproduced_exactly(card):
    """Copy-first-mask and the token-grid oracle need no model: same videos, same numbers."""
    videos = held_out_videos(card)
    for name, predict in (("copy_first_mask", analysis.copy_first_mask),
                          ("token_grid_oracle", analysis.token_grid_oracle)):
        scores = analysis.score_videos(videos, predict)
        assert analysis.global_scores(scores)["J&F"] == pytest.approx(card["held_out"][name]["J&F"], abs=1e-9)


@pytest.mark.slow
def test_the_shipped_weights_reproduce_the_cards_scores(card, shipped):
    """The first 4 held-out videos, segmented again from the shipped file: the card's per-video
    J&F (float differences between machines may flip a few boundary pixels)."""
    videos = held_out_videos(card, num_videos=4)
    scores = analysis.video_scores(analysis.score_videos(videos, analysis.model_predictor(shipped)))
    np.testing.assert_allclose(scores, card["held_out"]["model"]["per_video_jf"][:4], atol=2e-3)


def test_the_identity_bank_is_the_cards(card, shipped):
    stats = analysis.identity_bank_stats(shipped)
    for key in ("mean", "max", "min", "equidistant"):
        assert stats[key] == pytest.approx(card["held_out"]["identity_bank"][key], abs=1e-5)


def test_export_fp16_halves_floats_and_keeps_integer_buffers(tmp_path):
    torch.manual_seed(0)
    model = build_model("aott")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ema.pt")
    digest = export_fp16(tmp_path / "ema.pt", tmp_path / "out.pt")
    assert digest == sha256(tmp_path / "out.pt")
    state = torch.load(tmp_path / "out.pt", weights_only=True)
    for key, value in model.state_dict().items():
        expected = value.half() if value.is_floating_point() else value
        assert state[key].dtype == expected.dtype
        torch.testing.assert_close(state[key], expected)
    build_model("aott", weights=tmp_path / "out.pt")  # strict load of the fp16 file


def test_the_card_shows_a_model_that_tracks(card):
    """What the README and notebook 05 say of the shipped model, held to the card (whose
    numbers the tests above re-measure): J&F >= 0.85 on the held-out videos, better than
    copying the first mask on every one of them, and no near-duplicate identities."""
    h = card["held_out"]
    assert h["model"]["J&F"] >= 0.85
    assert all(m > c for m, c in zip(h["model"]["per_video_jf"], h["copy_first_mask"]["per_video_jf"], strict=True))
    assert h["identity_bank"]["max"] < 0.5


@pytest.mark.slow
def test_removing_long_term_attention_costs_on_occlusion_videos(card, shipped):
    """The card's first 3 occlusion videos, with and without long-term attention (Eq. 6)."""
    from aot_edu.data import OcclusionVideos

    spec = card["held_out"]["occlusion_videos"]
    videos = OcclusionVideos(3, spec["num_frames"], spec["size"], seed=spec["seed"])
    with analysis.attention_removed(shipped, "long"):
        removed = analysis.score_model(shipped, videos)["J&F"]
    intact = analysis.score_model(shipped, videos)["J&F"]
    assert removed < intact  # without the long-term memory the hidden object is lost
