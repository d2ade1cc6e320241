from __future__ import annotations

import torch

from aot_edu.model.decoder import FPNDecoder


def test_decoder_upsamples_to_quarter_resolution_with_identity_logits():
    decoder = FPNDecoder(in_dim=256 * 2, encoder_dims=(24, 32, 96)).eval()
    inputs = [torch.randn(1, 256, 10, 17), torch.randn(1, 256, 10, 17)]
    shortcuts = [torch.randn(1, 24, 37, 65), torch.randn(1, 32, 19, 33), torch.randn(1, 96, 10, 17)]
    with torch.no_grad():
        logits = decoder(inputs, shortcuts)
    assert logits.shape == (1, 11, 37, 65)
    assert list(decoder.state_dict())[:4] == [
        "conv_in.conv.weight", "conv_in.conv.bias", "conv_in.gn.weight", "conv_in.gn.bias",
    ]


def test_skip_connections_reach_the_output():
    torch.manual_seed(0)
    decoder = FPNDecoder(in_dim=256, encoder_dims=(8, 8, 8)).eval()
    inputs = [torch.randn(1, 256, 3, 3)]
    s = [torch.randn(1, 8, 9, 9), torch.randn(1, 8, 5, 5), torch.randn(1, 8, 3, 3)]
    base = decoder(inputs, s)
    s4 = [s[0] + 1.0, s[1], s[2]]
    assert not torch.allclose(decoder(inputs, s4), base)
