from __future__ import annotations

import pytest
import torch
import torchvision

from aot_edu.model.encoders import (
    FrozenBatchNorm2d,
    MobileNetV2Encoder,
    ResNet50Encoder,
    build_encoder,
    freeze_stages,
    use_batch_statistics,
)


@pytest.mark.parametrize(
    "name, dims", [("mobilenetv2", (24, 32, 96, 1280)), ("resnet50", (256, 512, 1024, 1024))]
)
def test_four_maps_at_1_4_1_8_1_16_1_16(name, dims):
    encoder = build_encoder(name).eval()
    with torch.no_grad():
        maps = encoder(torch.randn(1, 3, 145, 257))
    assert [m.shape[1] for m in maps] == list(dims)
    assert [tuple(m.shape[-2:]) for m in maps] == [(37, 65), (19, 33), (10, 17), (10, 17)]


def test_mobilenet_output_stride_16_by_dilation():
    f = MobileNetV2Encoder().features
    assert f[14].conv[1][0].stride == (1, 1) and f[14].conv[1][0].dilation == (1, 1)
    for block in (15, 16, 17):
        assert f[block].conv[1][0].dilation == (2, 2) and f[block].conv[1][0].padding == (2, 2)
    assert not hasattr(MobileNetV2Encoder(), "classifier")
    assert not hasattr(ResNet50Encoder(), "layer4") and not hasattr(ResNet50Encoder(), "fc")


def test_frozen_batchnorm_is_a_fixed_affine_map_stored_in_buffers():
    bn = FrozenBatchNorm2d(3)
    bn.running_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    bn.weight.copy_(torch.tensor([2.0, 1.0, 1.0]))
    bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    x = torch.randn(2, 3, 4, 4)
    expected = (x - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + 1e-5)
    expected = expected * bn.weight[:, None, None] + bn.bias[:, None, None]
    torch.testing.assert_close(bn.train()(x), expected)  # training mode changes nothing
    assert list(bn.parameters()) == []
    state = dict(bn.state_dict(), num_batches_tracked=torch.tensor(5))
    FrozenBatchNorm2d(3).load_state_dict(state)  # torchvision weights carry this counter


def test_batch_statistics_normalise_by_the_batch_while_training_only():
    encoder = build_encoder("mobilenetv2")
    keys = list(encoder.state_dict())
    assert use_batch_statistics(encoder) == 52
    bn = encoder.features[0][1]
    before = bn.running_mean.clone()
    x = torch.randn(4, 32, 5, 5) * 3 + 2
    y = bn.train()(x)
    # training mode: zero mean, unit variance per channel over the batch (weight 1, bias 0)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(32), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(32), atol=1e-3, rtol=0)
    # running averages move by 0.1 towards the batch's statistics ...
    torch.testing.assert_close(bn.running_mean, 0.9 * before + 0.1 * x.mean(dim=(0, 2, 3)))
    # ... and evaluation uses them, as the frozen layer would
    frozen = FrozenBatchNorm2d(32)
    frozen.load_state_dict(bn.state_dict())
    torch.testing.assert_close(bn.eval()(x), frozen(x))
    assert list(encoder.state_dict()) == keys  # official keys, loadable as before
    use_batch_statistics(encoder, enabled=False)
    torch.testing.assert_close(bn.train()(x), frozen(x))


def test_imagenet_weights_offline_warn_and_keep_random_init(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.warns(UserWarning, match="randomly initialised"):
        MobileNetV2Encoder(pretrained=True)


def test_imagenet_weights_load_through_torchvision_api(monkeypatch):
    reference = torchvision.models.mobilenet_v2(weights=None)
    monkeypatch.setattr(
        torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.__class__, "get_state_dict",
        lambda self, progress=True: reference.state_dict(),
    )
    encoder = MobileNetV2Encoder(pretrained=True)
    assert torch.equal(encoder.features[0][0].weight, reference.features[0][0].weight)
    assert torch.equal(encoder.features[3].conv[1][1].running_var, reference.features[3].conv[1][1].running_var)


def test_freeze_the_first_two_stages():
    encoder = MobileNetV2Encoder()
    freeze_stages(encoder, 2)
    assert not any(p.requires_grad for p in encoder.features[0:4].parameters())
    assert all(p.requires_grad for p in encoder.features[4:].parameters())
    resnet = ResNet50Encoder()
    freeze_stages(resnet, 2)
    assert not resnet.conv1.weight.requires_grad and not resnet.layer1[0].conv1.weight.requires_grad
    assert resnet.layer2[0].conv1.weight.requires_grad
