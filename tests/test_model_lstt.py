from __future__ import annotations

import math

import pytest
import torch

from aot_edu.model.lstt import (
    LSTT,
    DropPath,
    LSTTBlock,
    map_to_seq,
    seq_to_map,
    sine_position_embedding,
)
from conftest import load_golden


def test_sequence_and_map_layouts_are_inverse():
    x = torch.randn(2, 8, 3, 5)
    seq = map_to_seq(x)
    assert seq.shape == (15, 2, 8)
    assert torch.equal(seq[1 * 5 + 4, 1], x[1, :, 1, 4])  # token index y * w + x
    assert torch.equal(seq_to_map(seq, (3, 5)), x)


def test_sine_position_embedding_layout():
    pos = sine_position_embedding(4, 6)
    assert pos.shape == (1, 256, 4, 6)
    # row 0 has angle 0 on every y channel: sin -> 0 (even channels), cos -> 1 (odd channels)
    assert torch.all(pos[0, 0:128:2, 0] == 0) and torch.all(pos[0, 1:128:2, 0] == 1)
    # the last row's angle is 2*pi (up to the 1e-6 guard) on the first y channel pair
    torch.testing.assert_close(pos[0, 0, 3, 0], torch.tensor(math.sin(2 * math.pi * 3 / (3 + 1e-6))))
    # x channels vary along columns only
    assert torch.equal(pos[0, 128:, 0], pos[0, 128:, 3])


def test_sine_position_embedding_matches_the_official_one():
    golden = load_golden("aott_demo")
    ours = map_to_seq(sine_position_embedding(10, 17))
    torch.testing.assert_close(ours, golden["intermediates"]["pos_emb"], atol=1e-6, rtol=0)


def test_drop_path_drops_whole_samples_only_in_training():
    torch.manual_seed(0)
    drop = DropPath(0.5)
    x = torch.ones(6, 64, 4)
    assert torch.equal(drop.eval()(x), x)
    y = drop.train()(x)
    per_sample = y[:, :, 0].t()  # [B, HW]
    assert all(len(torch.unique(row)) == 1 for row in per_sample)
    assert set(torch.unique(y).tolist()) <= {0.0, 2.0}


def test_reference_block_attends_to_itself_and_returns_memories_and_maps():
    torch.manual_seed(0)
    block = LSTTBlock(dim=32, self_heads=2, att_heads=2, ffn_dim=64, max_dis=2).eval()
    x, pos, ide = (torch.randn(12, 1, 32) for _ in range(3))
    out, memory, maps = block(x, pos, (3, 4), id_emb=ide, need_weights=True)
    assert out.shape == (12, 1, 32)
    # the key is the shared query projection of the un-fused value norm2(x)
    torch.testing.assert_close(memory.key, block.linear_Q(memory.value))
    assert maps.long_term.shape == (1, 2, 12, 12) and maps.short_term.shape == (1, 2, 12, 25)
    # a propagated frame with the reference as memory gives the same result as the reference
    v = block.memory_value(memory.value, ide)
    again, _, _ = block(
        x, pos, (3, 4), long_term_memory=(memory.key, v),
        short_term_memory=(seq_to_map(memory.key, (3, 4)), seq_to_map(v, (3, 4))),
    )
    torch.testing.assert_close(again, out)


def test_propagated_frame_needs_memories():
    block = LSTTBlock(dim=32, self_heads=2, att_heads=2, ffn_dim=64)
    with pytest.raises(ValueError, match="needs long- and short-term memories"):
        block(torch.randn(4, 1, 32), torch.zeros(4, 1, 32), (2, 2))


def test_stack_norms_every_output_for_the_decoder():
    torch.manual_seed(0)
    lstt = LSTT(num_layers=2, dim=32, self_heads=2, att_heads=2, ffn_dim=64, max_dis=1).eval()
    assert [k for k in lstt.state_dict() if "layers" not in k] == [
        "mask_token", "decoder_norms.0.weight", "decoder_norms.0.bias",
        "decoder_norms.1.weight", "decoder_norms.1.bias",
    ]
    out = lstt(torch.randn(6, 1, 32), torch.zeros(6, 1, 32), (2, 3), id_emb=torch.randn(6, 1, 32))
    assert len(out.decoder_inputs) == 2 and len(out.memories) == 2
    for y in out.decoder_inputs:  # LayerNorm outputs: zero mean per token
        torch.testing.assert_close(y.mean(-1), torch.zeros(6, 1), atol=1e-5, rtol=0)
