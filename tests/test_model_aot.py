"""Variants: official state-dict layouts and the paper's parameter counts (Table 3d)."""

from __future__ import annotations

import pytest
import torch

from aot_edu import VARIANTS, build_model
from aot_edu.model import AOT, count_parameters, get_config, state_dict_layout
from conftest import official_layout

OFFICIAL_FILES = {"aott": "AOTT", "aots": "AOTS", "aotb": "AOTB", "aotl": "AOTL", "r50_aotl": "R50_AOTL"}
# Parameter counts as the official code counts them (frozen BatchNorm buffers excluded).
OFFICIAL_PARAMETERS = {
    "aott": 5_734_099, "aots": 6_998_235, "aotb": 8_262_371, "aotl": 8_262_371,
    "r50_aotl": 14_909_923,
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_state_dict_has_exactly_the_official_keys_shapes_and_order(variant):
    expected, footer = official_layout(OFFICIAL_FILES[variant])
    ours = state_dict_layout(variant)
    assert list(ours) == list(expected)
    assert {k: tuple(v) for k, v in ours.items()} == expected
    assert footer["parameters (nn.Parameter, model.parameters())"] == OFFICIAL_PARAMETERS[variant]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_parameter_counts_match_the_paper(variant):
    with torch.device("meta"):
        model = AOT(get_config(variant))
    count = count_parameters(model)
    assert count == OFFICIAL_PARAMETERS[variant]
    assert f"{count / 1e6:.1f}M" == VARIANTS[variant].paper_params


def test_variant_configurations_follow_the_paper():
    layers = {name: cfg.lstt_layers for name, cfg in VARIANTS.items()}
    assert layers == {"aott": 1, "aots": 2, "aotb": 3, "aotl": 3, "r50_aotl": 3}
    assert VARIANTS["aotl"].long_term_gap_test == 5 and VARIANTS["aotl"].long_term_gap_train == 2
    assert VARIANTS["aott"].long_term_gap_test == 9999
    # Official configs/models: only AOT-L and R50-AOT-L set TRAIN_LONG_TERM_MEM_GAP = 2; the
    # default (AOT-T/S/B) is 9999, i.e. no long-term memory update while training either.
    gaps = {name: cfg.long_term_gap_train for name, cfg in VARIANTS.items()}
    assert gaps == {"aott": 9999, "aots": 9999, "aotb": 9999, "aotl": 2, "r50_aotl": 2}
    for cfg in VARIANTS.values():
        assert (cfg.max_obj_num, cfg.dim, cfg.att_heads, cfg.self_heads) == (10, 256, 8, 8)


def test_aliases_and_unknown_variants():
    assert get_config("AOT-L").name == "aotl"
    assert get_config("R50-AOT-L").name == "r50_aotl"
    with pytest.raises(ValueError, match="unknown AOT variant 'aotx'.*aott, aots, aotb, aotl, r50_aotl"):
        build_model("aotx")
    with pytest.raises(ValueError, match="Swin-B is not part"):
        build_model("swinb_aotl")


def test_model_is_not_called_directly():
    model = build_model("aott")
    assert not model.training
    with pytest.raises(TypeError, match="segment"):
        model(torch.zeros(1, 3, 33, 33))


def test_build_model_loads_an_official_checkpoint_file_unchanged(tmp_path):
    torch.manual_seed(0)
    reference = AOT(get_config("aott")).state_dict()
    path = tmp_path / "AOTT_PRE_YTB_DAV.pth"
    # as the official trainer saves it under DataParallel: a wrapper and a `module.` prefix
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.items()}, "optimizer": {}}, path)
    model = build_model("aott", weights=path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key


def test_checkpoint_of_another_variant_is_refused_and_named():
    from aot_edu.model import CheckpointError

    state = {k: torch.zeros(1).expand(s) for k, s in state_dict_layout("aott").items()}
    with pytest.raises(CheckpointError, match="looks like an AOT-T checkpoint; build the model with variant 'aott'"):
        build_model("aotl", weights=state)


def test_truncated_checkpoint_file_is_refused(tmp_path):
    from aot_edu.model import CheckpointError

    path = tmp_path / "AOTT_PRE_YTB_DAV.pth"
    torch.save({"state_dict": AOT(get_config("aott")).state_dict()}, path)
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="truncated or corrupt.*download checkpoint aott"):
        build_model("aott", weights=path)



def test_table3_options_change_only_what_they_name():
    """The ablations' architecture options (paper Table 3): each changes its own parameters."""
    base = set(state_dict_layout("aott"))
    no_short = set(state_dict_layout(get_config("aott").replace(short_term_frames=0)))
    assert base - no_short == {k for k in base if ".short_term_attn." in k}
    assert no_short <= base
    no_rel = set(state_dict_layout(get_config("aott").replace(relative_embedding=False)))
    assert base - no_rel == {k for k in base if ".relative_emb_" in k}
    two_frames = state_dict_layout(get_config("aott").replace(short_term_frames=2))
    assert two_frames == state_dict_layout("aott")  # n frames share the window's parameters
    small = state_dict_layout(get_config("aotb").replace(max_dis=3, lstt_layers=2, max_obj_num=5))
    assert small["LSTT.layers.0.short_term_attn.relative_emb_v"] == (8, 32, 49)
    assert "LSTT.layers.2.norm1.weight" not in small
    assert small["decoder.conv_in.conv.weight"][1] == 256 * 3
    assert small["decoder.conv_out.weight"][0] == 6


def test_without_sine_embedding_self_attention_gets_no_positions():
    model = AOT(get_config("aott").replace(sine_embedding=False))
    assert torch.count_nonzero(model.position_embedding((3, 4), 2)) == 0
    assert model.position_embedding((3, 4), 2).shape == (12, 2, 256)
    assert torch.count_nonzero(AOT(get_config("aott")).position_embedding((3, 4), 2)) > 0
