"""The training recipe, piece by piece, against values derived by hand (aot_edu.training)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aot_edu.model import AOT, get_config
from aot_edu.model.encoders import freeze_stages
from aot_edu.model.identity import random_assignment
from aot_edu.training import bootstrapped_cross_entropy, plan_step, soft_jaccard_loss, vos_loss
from aot_edu.training import load_config as load_train_config
from aot_edu.training.losses import aux_loss_weight, batch_iou, hard_mining_fraction, hardest_pixels
from aot_edu.training.schedule import (
    ModelEMA,
    ema_decay,
    encoder_lr,
    param_groups,
    poly_lr,
    set_learning_rates,
)
from aot_edu.training.step import StepPlan, TrainingForward, sequence_loss, train_step

# --- losses ----------------------------------------------------------------------------------


def test_hard_mining_fraction_anneals_from_all_pixels_to_15_percent_at_half_time():
    assert hard_mining_fraction(0, 1000) == 1.0
    # a quarter of the way: r = 250 / 500 = 0.5 -> 0.5 * 0.15 + 0.5
    assert hard_mining_fraction(250, 1000) == pytest.approx(0.575)
    assert hard_mining_fraction(500, 1000) == pytest.approx(0.15)
    assert hard_mining_fraction(999, 1000) == pytest.approx(0.15)
    assert hard_mining_fraction(0, 1000, hard_mining_ratio=0.0) == pytest.approx(0.15)
    with pytest.raises(ValueError, match="top_k_percent"):
        hard_mining_fraction(0, 10, top_k_percent=0.0)


def test_hardest_pixels_keeps_the_largest_losses_and_shows_where():
    losses = torch.tensor([[[1.0, 4.0], [2.0, 3.0]]])
    values, mask = hardest_pixels(losses, 0.5)
    assert values.tolist() == [[4.0, 3.0]]
    assert mask.tolist() == [[[False, True], [False, True]]]
    values, mask = hardest_pixels(losses, 1.0)
    assert sorted(values.flatten().tolist()) == [1.0, 2.0, 3.0, 4.0] and mask.all()
    # int(0.3 * 4) = 1 pixel, never fewer than one
    assert hardest_pixels(losses, 0.3)[0].tolist() == [[4.0]]
    assert hardest_pixels(losses, 0.01)[0].tolist() == [[4.0]]


def _two_class_logits(p1: list[float]) -> torch.Tensor:
    """Logits ``[1, 2, 1, n]`` whose class-1 probabilities are ``p1``."""
    p = torch.tensor(p1, dtype=torch.float64)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))])[None, :, None, :].float()


def test_bootstrapped_cross_entropy_matches_hand_values():
    # class-1 probabilities 0.9, 0.6, 0.2, 0.5; labels 1, 1, 1, 0
    logits = _two_class_logits([0.9, 0.6, 0.2, 0.5])
    labels = torch.tensor([[[1, 1, 1, 0]]])
    pixel = [-math.log(0.9), -math.log(0.6), -math.log(0.2), -math.log(0.5)]
    assert bootstrapped_cross_entropy(logits, labels, 1.0).item() == pytest.approx(sum(pixel) / 4, rel=1e-5)
    # the 2 hardest: -log 0.2 and -log 0.5
    hard = (-math.log(0.2) - math.log(0.5)) / 2
    assert bootstrapped_cross_entropy(logits, labels, 0.5).item() == pytest.approx(hard, rel=1e-5)
    # an ignored pixel (255) has loss 0 but still counts among the pixels (official)
    labels_void = torch.tensor([[[1, 1, 255, 0]]])
    expected = (-math.log(0.9) - math.log(0.6) - math.log(0.5)) / 4
    assert bootstrapped_cross_entropy(logits, labels_void, 1.0).item() == pytest.approx(expected, rel=1e-5)


def test_unused_identities_at_minus_1e10_change_nothing():
    logits = _two_class_logits([0.9, 0.6, 0.2, 0.5])
    labels = torch.tensor([[[1, 1, 1, 0]]])
    padded = torch.cat([logits, torch.full((1, 3, 1, 4), -1e10)], dim=1)
    for loss in (bootstrapped_cross_entropy, soft_jaccard_loss):
        assert loss(padded, labels).item() == pytest.approx(loss(logits, labels).item(), abs=1e-7)


def test_soft_jaccard_matches_hand_values():
    # pixel A: label 1, p1 = 0.75; pixel B: label 0, p1 = 0.25.
    # class 1: I = 0.75, FP = 0.25, FN = 0.25 -> 1 - 0.75 / 1.25 = 0.4; class 0 the same.
    logits = _two_class_logits([0.75, 0.25])
    labels = torch.tensor([[[1, 0]]])
    assert soft_jaccard_loss(logits, labels).item() == pytest.approx(0.4, abs=1e-6)
    # only class 1 present: p1 = 0.75, 0.25 both labelled 1 -> I = 1, FP = 0, FN = 1 -> 0.5
    assert soft_jaccard_loss(logits, torch.tensor([[[1, 1]]])).item() == pytest.approx(0.5, abs=1e-6)
    # a void pixel is left out entirely
    assert soft_jaccard_loss(logits, torch.tensor([[[1, 255]]])).item() == pytest.approx(0.25, abs=1e-6)
    # a confident, correct prediction costs almost nothing
    sure = _two_class_logits([1 - 1e-7, 1e-7])
    assert soft_jaccard_loss(sure, labels).item() < 1e-5


def test_losses_are_per_sample_and_vos_loss_weighs_them_equally():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5, 6)
    labels = torch.randint(0, 4, (3, 5, 6))
    ce = bootstrapped_cross_entropy(logits, labels, 0.3)
    jac = soft_jaccard_loss(logits, labels)
    assert ce.shape == jac.shape == (3,)
    assert torch.allclose(vos_loss(logits, labels, 0.3), 0.5 * ce + 0.5 * jac)
    for b in range(3):
        alone = bootstrapped_cross_entropy(logits[b : b + 1], labels[b : b + 1], 0.3)
        assert alone.item() == pytest.approx(ce[b].item(), rel=1e-6)


def test_aux_loss_weight_decays_linearly_to_zero():
    assert aux_loss_weight(0, 1000) == 1.0
    assert aux_loss_weight(500, 1000) == pytest.approx(0.5)
    assert aux_loss_weight(1000, 1000) == 0.0 and aux_loss_weight(5000, 1000) == 0.0
    # pre-training: ratio 0.1 -> gone after 10 % of the steps
    assert aux_loss_weight(50, 1000, ratio=0.1) == pytest.approx(0.5)
    assert aux_loss_weight(100, 1000, ratio=0.1) == 0.0
    assert aux_loss_weight(3, 10, ratio=0.0) == 0.0


def test_batch_iou_per_sample():
    pred = torch.tensor([[[1, 1, 0, 2]], [[0, 0, 0, 0]]])
    truth = torch.tensor([[[1, 0, 0, 2]], [[0, 1, 0, 0]]])
    # sample 0: object 1 IoU 1/2, object 2 IoU 1 -> 0.75; sample 1: object 1 missed -> 0
    assert batch_iou(pred, truth, [2, 1]).tolist() == pytest.approx([0.75, 0.0])


# --- schedule, groups, EMA ---------------------------------------------------------------------


def test_poly_lr_warm_up_then_polynomial_decay():
    base, low = 4e-4, 2e-5
    assert poly_lr(0, 100, base, low, 0.9, 5) == pytest.approx(low)
    assert poly_lr(1, 100, base, low, 0.9, 5) == pytest.approx(low + (base - low) / 5)
    assert poly_lr(5, 100, base, low, 0.9, 5) == pytest.approx(base)
    # after the warm-up: s = 94 of S = 95 -> (1 - 94 / 96) ** 0.9
    assert poly_lr(99, 100, base, low, 0.9, 5) == pytest.approx(low + (base - low) * (2 / 96) ** 0.9)
    lrs = [poly_lr(s, 100, base, low, 0.9, 5) for s in range(5, 100)]
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False)) and min(lrs) > low
    assert poly_lr(0, 100, base, low) == pytest.approx(base)  # no warm-up


def test_encoder_lr_is_a_tenth_above_the_floor():
    assert encoder_lr(2e-4, 2e-5, 0.1) == pytest.approx(2e-5 + 1.8e-5)
    assert encoder_lr(2e-5, 2e-5, 0.1) == pytest.approx(2e-5)


@pytest.fixture(scope="module")
def tiny_model():
    model = AOT(get_config("aott").replace(droppath=0.0))
    freeze_stages(model.encoder, 2)
    model.LSTT.mask_token.requires_grad_(False)
    return model


def test_param_groups_split_encoder_decay_and_identity_bank(tiny_model):
    groups = param_groups(tiny_model, 0.07)
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    seen = [names[id(p)] for g in groups for p in g["params"]]
    trainable = [n for n, p in tiny_model.named_parameters() if p.requires_grad]
    assert sorted(seen) == sorted(trainable)  # every trainable parameter exactly once
    assert not any(n.startswith("encoder.features.0.") for n in seen)  # frozen stem
    assert "LSTT.mask_token" not in seen
    where = {names[id(p)]: g for g in groups for p in g["params"]}
    assert where["encoder.features.5.conv.0.0.weight"]["encoder"]
    assert where["encoder.features.5.conv.0.0.weight"]["weight_decay"] == 0.07
    assert where["LSTT.layers.0.linear_Q.weight"]["weight_decay"] == 0.07
    for no_decay in ("LSTT.layers.0.linear_Q.bias", "LSTT.layers.0.norm1.weight",
                     "decoder.conv_out.weight", "LSTT.layers.0.short_term_attn.relative_emb_v"):
        assert where[no_decay]["weight_decay"] == 0.0, no_decay
    assert where["patch_wise_id_bank.weight"]["identity_bank"]
    assert not where["decoder.conv_in.conv.weight"]["encoder"]


def test_set_learning_rates_encoder_ratio_and_frozen_identity_bank(tiny_model):
    optimizer = torch.optim.AdamW(param_groups(tiny_model, 0.07), lr=1.0)
    set_learning_rates(optimizer, 2e-4, 2e-5, 0.1, freeze_identity_bank=True)
    for g in optimizer.param_groups:
        if g["identity_bank"]:
            assert g["lr"] == 0.0 and g["weight_decay"] == 0.0
        elif g["encoder"]:
            assert g["lr"] == pytest.approx(3.8e-5)
        else:
            assert g["lr"] == pytest.approx(2e-4)
    set_learning_rates(optimizer, 2e-4, 2e-5, 0.1, freeze_identity_bank=False)
    bank = [g for g in optimizer.param_groups if g["identity_bank"]]
    assert {g["weight_decay"] for g in bank} == {0.07, 0.0}  # weight decays back, bias none
    assert all(g["lr"] == pytest.approx(2e-4) for g in bank)


def test_ema_decay_and_updates_follow_the_official_formula():
    assert ema_decay(100_000, 0.1) == pytest.approx(0.9999)
    model = nn.Linear(1, 1)
    model.bias.requires_grad_(False)  # frozen: copied, not averaged
    model.register_buffer("count", torch.zeros(1))
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.9)
    shadow = 0.0
    for n, w in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            model.weight.fill_(w)
            model.bias.fill_(-w)
            model.count.fill_(n)
        d = min(0.9, (1 + n) / (10 + n))  # 2/11, 3/12, 4/13, 5/14
        shadow = shadow - (1 - d) * (shadow - w)
        ema.update(model)
        assert ema.shadow["weight"].item() == pytest.approx(shadow, rel=1e-6)
        assert ema.shadow["bias"].item() == -w and ema.shadow["count"].item() == n
    copy = ModelEMA(model, decay=0.5)
    copy.load_state_dict(ema.state_dict())
    assert copy.num_updates == 4 and copy.decay == 0.9
    assert copy.shadow["weight"].item() == pytest.approx(shadow, rel=1e-6)
    target = nn.Linear(1, 1)
    target.register_buffer("count", torch.zeros(1))
    copy.copy_to(target)
    assert target.weight.item() == pytest.approx(shadow, rel=1e-6)


# --- the sequence and the step ---------------------------------------------------------------


def _clips(batch: int = 2, length: int = 3, size: int = 33):
    from aot_edu.data import SyntheticVideos, collate

    videos = SyntheticVideos(batch, length, size, num_objects=2, num_distractors=0, seed=3)
    return collate([videos[i] for i in range(batch)])


def test_sequence_loss_feeds_predictions_back_and_freezes_identities(tiny_model):
    clips = _clips()
    nums = clips["num_objects"].tolist()
    assignment = random_assignment(2, 11, torch.Generator().manual_seed(0))
    tiny_model.eval()  # no stochastic depth: the two runs below differ only in the memory
    runs = {}
    for feedback in (True, False):
        tiny_model.zero_grad()
        out = sequence_loss(tiny_model, clips["frames"], clips["masks"], nums, assignment,
                            aux_weight=0.5, use_prev_pred=feedback)
        out.loss.backward()
        runs[feedback] = out
        bank_grad = tiny_model.patch_wise_id_bank.weight.grad
        assert (bank_grad is None) == feedback  # frozen while predictions are fed back
        assert tiny_model.LSTT.layers[0].linear_V.weight.grad is not None
        assert tiny_model.decoder.conv_out.weight.grad is not None
    fed, forced = runs[True], runs[False]
    assert fed.frame_losses.shape == (3,) and fed.predictions.shape == (2, 3, 33, 33)
    # frames 0 and 1 see the same memory; frame 2's memory is frame 1's prediction or its truth
    assert torch.allclose(fed.frame_losses[:2], forced.frame_losses[:2])
    assert not torch.allclose(fed.frame_losses[2], forced.frame_losses[2])
    expected = 0.5 * fed.frame_losses[0] + fed.frame_losses[1:].mean()
    assert fed.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    tiny_model.zero_grad()


def test_sequence_loss_rejects_wrong_shapes(tiny_model):
    clips = _clips()
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        sequence_loss(tiny_model, clips["frames"][:, 0], clips["masks"], [2, 2])


def test_accumulated_micro_batches_equal_one_batch(tiny_model):
    """Two micro-batches of 2 make the same update as one batch of 4 (losses are per sample)."""
    from aot_edu.data import SyntheticVideos, collate

    videos = SyntheticVideos(4, 3, 33, num_objects=(1, 3), num_distractors=0, seed=5)
    samples = [videos[i] for i in range(4)]
    full = collate(samples)
    halves = [collate(samples[:2]), collate(samples[2:])]
    assignment = random_assignment(4, 11, torch.Generator().manual_seed(1))
    cfg = load_train_config({"optim": {"steps": 10}})
    plan = plan_step(3, cfg)
    start = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    results = []
    tiny_model.eval()
    for batches, assigns in (([full], [assignment]), (halves, [assignment[:2], assignment[2:]])):
        tiny_model.load_state_dict(start)
        optimizer = torch.optim.SGD(param_groups(tiny_model, 0.0), lr=1.0)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        stats = train_step(TrainingForward(tiny_model), optimizer, scaler, batches, assigns, plan,
                           min_lr=cfg.optim.min_lr, clip_grad_norm=1e9)
        results.append(({k: v.clone() for k, v in tiny_model.state_dict().items()}, stats))
    tiny_model.load_state_dict(start)
    (one, s1), (two, s2) = results
    assert s1["loss"] == pytest.approx(s2["loss"], rel=1e-5)
    assert s1["grad_norm"] == pytest.approx(s2["grad_norm"], rel=1e-4)
    moved = [k for k in one if not torch.equal(one[k], start[k])]
    assert moved  # the step changed the weights ...
    for key in one:  # ... and both ways the same
        assert torch.allclose(one[key], two[key], atol=1e-6, rtol=1e-4), key


def test_plan_step_follows_the_official_phases():
    cfg = load_train_config({"optim": {"steps": 100}})
    first, middle, last = plan_step(0, cfg), plan_step(50, cfg), plan_step(99, cfg)
    assert (first.fraction, first.aux_weight, first.use_prev_pred) == (1.0, 1.0, False)
    assert first.lr == pytest.approx(cfg.optim.min_lr)  # warm-up starts at the floor
    assert middle.use_prev_pred and middle.fraction == pytest.approx(0.15)
    assert middle.aux_weight == pytest.approx(0.5)
    assert last.lr > cfg.optim.min_lr and last.lr < middle.lr
    assert last.encoder_lr == pytest.approx(encoder_lr(last.lr, cfg.optim.min_lr, 0.1))


# --- starting from scratch ---------------------------------------------------------------------


def test_calibration_gives_a_random_encoder_unit_scale_activations():
    from aot_edu.inference.engine import normalize
    from aot_edu.training.initialization import calibrate_frozen_batchnorm, calibrate_projection

    torch.manual_seed(0)
    model = AOT(get_config("aott")).eval()
    images = normalize(_clips(batch=2, length=3, size=65)["frames"].flatten(0, 1))
    with torch.no_grad():
        before = model.encoder(images)[2].std().item()  # 1/16 stage
        stem = model.encoder.features[0]
        conv_out = stem[0](images)
    assert calibrate_frozen_batchnorm(model.encoder, images) == 52
    # the stem's BatchNorm now holds the mean and variance of the stem convolution's output
    assert torch.allclose(stem[1].running_mean, conv_out.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(stem[1].running_var, conv_out.var((0, 2, 3), unbiased=False), rtol=1e-4)
    with torch.no_grad():
        after = model.encoder(images)[2].std().item()
    assert before < 0.01 < 0.3 < after  # the signal no longer fades with depth
    calibrate_projection(model, images)
    with torch.no_grad():
        projected = model.encode_image(images)[-1]
    assert projected.mean((0, 2, 3)).abs().max() < 1e-4
    assert torch.allclose(projected.std((0, 2, 3)), torch.ones(256), atol=1e-3)


def test_official_initialisation():
    """Xavier-uniform LSTT/decoder/projection weights, orthogonal identity bank (gain 17^-2)."""
    from aot_edu.training.initialization import official_initialization

    torch.manual_seed(0)
    model = AOT(get_config("aott"))
    official_initialization(model)
    linear = model.LSTT.layers[0].linear_Q.weight  # 256 x 256: U(-b, b), b = sqrt(6 / 512)
    bound = (6 / 512) ** 0.5
    assert linear.abs().max() <= bound
    assert linear.std().item() == pytest.approx(bound / 3**0.5, rel=0.05)
    assert model.LSTT.layers[0].short_term_attn.relative_emb_v.abs().max() > 0  # 3-D: Xavier too
    assert model.decoder.conv_out.weight.abs().max() <= (6 / (128 + 11)) ** 0.5
    bank = model.patch_wise_id_bank.weight.reshape(256, -1).double()
    assert torch.allclose(bank @ bank.t(), torch.eye(256, dtype=torch.float64) / 17**4, atol=1e-9)


def test_locality_prior_makes_untrained_short_term_attention_look_at_the_same_place():
    from aot_edu.training.initialization import locality_prior

    torch.manual_seed(0)
    model = AOT(get_config("aots"))
    attention = model.LSTT.layers[1].short_term_attn
    before = attention.relative_emb_k.bias.clone()
    locality_prior(model, 0.0)  # 0 = the official initialisation, untouched
    assert torch.equal(attention.relative_emb_k.bias, before)
    locality_prior(model, 2.0)
    for block in model.LSTT.layers:
        bias = block.short_term_attn.relative_emb_k.bias.view(8, 15, 15)
        assert torch.equal(bias[0], bias[7])  # every head
        assert bias[0, 7, 7] == 0 and bias[0, 7, 8] == bias[0, 6, 7] == -2 and bias[0, 0, 0] == -196
    # with q = 0 (no content term) the weights are the prior: ~62 % on the query's own position
    q = torch.zeros(1, 256, 9, 9)
    k = v = torch.randn(1, 256, 9, 9)
    with torch.no_grad():
        _, weights = attention(q, k, v, need_weights=True)
    centre = weights[0, :, 40]  # query (4, 4) of the 9 x 9 map: its whole window is inside
    assert torch.allclose(centre[:, 112], torch.full((8,), 0.619), atol=1e-3)
    assert (centre.argmax(-1) == 112).all()


def test_score_videos_scores_each_object_with_the_davis_protocol():
    import numpy as np

    from aot_edu.data import SyntheticVideos
    from aot_edu.evaluation.analysis import global_scores, score_videos

    videos = SyntheticVideos(num_videos=3, num_frames=5, size=33, num_objects=(2, 3), seed=7)
    perfect = score_videos(videos, lambda frames, labels: labels)
    objects = [int(videos.video(i)[1][0].max()) for i in range(3)]
    # the DAVIS evaluation object: one J and one F row per object of each video
    assert [sum(o.sequence == name for o in perfect.objects) for name in perfect.sequences] == objects
    assert all(np.allclose(o.j, 1) and np.allclose(o.f, 1) for o in perfect.objects)
    assert global_scores(perfect) == {"J&F": 1.0, "J": 1.0, "F": 1.0, "videos": 3,
                                      "objects": sum(objects)}
    # only the given first mask, repeated: frames 1..T-2 are scored, frame 0 is not
    still = global_scores(score_videos(videos, lambda frames, labels: np.repeat(labels[:1], 5, 0)))
    assert still["J&F"] < 1.0 and still["objects"] == sum(objects)


def test_identity_separation_loss_is_a_hinge_on_pairwise_cosine():
    from aot_edu.training.losses import identity_separation_loss

    background = torch.randn(1, 4)
    spread = torch.cat([background, torch.eye(4)])  # orthogonal identities: cosine 0
    assert identity_separation_loss(spread, margin=0.3).item() == 0.0
    close = torch.cat([background, torch.tensor([[1.0, 0, 0, 0], [1.0, 0.1, 0, 0], [0, 0, 1.0, 0]])])
    cos = float(torch.nn.functional.cosine_similarity(close[1:2], close[2:3]))
    # one near-duplicate pair (counted in both orders) among 3 x 2 ordered pairs
    expected = 2 * (cos - 0.3) / 6
    assert identity_separation_loss(close, margin=0.3).item() == pytest.approx(expected, rel=1e-5)
    # the background row (index 0) never counts, however close it is
    assert identity_separation_loss(torch.cat([close[1:2], spread[1:]]), 0.3).item() == 0.0


def test_train_step_identity_separation_pushes_the_closest_identities_apart():
    """Two near-duplicate identities, only the bank learning: the hinge's gradient pushes the
    closest pair apart within a few steps."""
    from aot_edu.data import SyntheticVideos, collate
    from aot_edu.evaluation.analysis import similarity_stats
    from aot_edu.training.initialization import train_only

    model = AOT(get_config("aott").replace(droppath=0.0))  # its own: train_only changes it
    with torch.no_grad():  # make identities 1 and 2 near-duplicates
        bank = model.patch_wise_id_bank.weight
        bank[:, 2] = bank[:, 1] + 0.01 * bank[:, 2]
    train_only(model, ("identity_bank",))
    before = similarity_stats(model.patch_wise_id_bank.identity_vectors())["max"]
    videos = SyntheticVideos(2, 3, 33, num_objects=(1, 2), num_distractors=0, seed=5)
    batch = collate([videos[0], videos[1]])
    assignment = random_assignment(2, 11, torch.Generator().manual_seed(1))
    plan = StepPlan(step=0, lr=20.0, encoder_lr=20.0, fraction=1.0, aux_weight=0.0, use_prev_pred=False)
    optimizer = torch.optim.SGD(param_groups(model, 0.0), lr=0.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    model.eval()
    stats = []
    for _ in range(5):
        stats.append(train_step(TrainingForward(model), optimizer, scaler, [batch], [assignment],
                                plan, min_lr=0.0, clip_grad_norm=1e9,
                                identity_separation=1.0, identity_margin=0.3))
    after = similarity_stats(model.patch_wise_id_bank.identity_vectors())["max"]
    assert before > 0.9
    assert stats[0]["separation"] > 0
    assert after < before - 0.05


def test_a_few_steps_on_one_fixed_batch_lower_its_loss(tiny_model):
    """The whole step (forward as at test time, loss, backward, clipping, AdamW) learns: eight
    steps on one fixed batch bring that batch's loss well down."""
    from aot_edu.data import SyntheticVideos, collate

    videos = SyntheticVideos(2, 3, 33, num_objects=(1, 2), num_distractors=0, seed=7)
    batch = collate([videos[0], videos[1]])
    assignment = random_assignment(2, 11, torch.Generator().manual_seed(2))
    plan = StepPlan(step=0, lr=1e-3, encoder_lr=1e-3, fraction=1.0, aux_weight=1.0, use_prev_pred=False)
    optimizer = torch.optim.AdamW(param_groups(tiny_model, 0.0), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    tiny_model.eval()  # no stochastic depth: the same computation every step
    losses = [train_step(TrainingForward(tiny_model), optimizer, scaler, [batch], [assignment], plan,
                         min_lr=0.0, encoder_ratio=1.0)["loss"] for _ in range(8)]
    assert losses[-1] < 0.7 * losses[0], losses
