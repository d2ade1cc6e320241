"""The identification mechanism: Eq. 3 (random assignment P, embedding Y P D), Eq. 5 (decoding)."""

from __future__ import annotations

import torch

from aot_edu.model.identity import (
    IdentityBank,
    assign_identities,
    decode_identities,
    identity_assignment,
    one_hot_labels,
    random_assignment,
)


def test_one_hot_labels_ignores_out_of_range_labels():
    labels = torch.tensor([[[0, 1], [2, 255]]])
    one_hot = one_hot_labels(labels, 3)
    assert one_hot.shape == (1, 3, 2, 2)
    assert one_hot[0, :, 1, 1].sum() == 0  # void / >M: no identity
    assert one_hot[0, 2, 1, 0] == 1 and one_hot.sum() == 3


def test_random_assignment_is_a_permutation_keeping_the_background():
    a = random_assignment(4, 11, torch.Generator().manual_seed(0))
    assert a.shape == (4, 11)
    assert torch.all(a[:, 0] == 0)
    for row in a:
        assert sorted(row.tolist()) == list(range(11))
    again = random_assignment(4, 11, torch.Generator().manual_seed(0))
    assert torch.equal(a, again)
    assert not torch.equal(a, identity_assignment(4, 11))


def test_decoding_with_the_same_assignment_inverts_it():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 4, (2, 5, 7), generator=g)
    one_hot = one_hot_labels(labels, 11)
    a = random_assignment(2, 11, g)
    identities = assign_identities(one_hot, a)
    # object j's mask now sits in identity channel a[j]
    assert torch.equal(identities[0, a[0, 2]], one_hot[0, 2])
    assert torch.equal(decode_identities(identities, a), one_hot)


def test_identity_bank_is_the_official_patch_wise_conv():
    bank = IdentityBank()
    assert bank.weight.shape == (256, 11, 17, 17) and bank.bias.shape == (256,)
    emb = bank.embed(torch.zeros(1, 11, 145, 257))
    assert emb.shape == (1, 256, 10, 17)


def test_embedding_only_the_used_identities_equals_the_full_conv():
    torch.manual_seed(0)
    bank = IdentityBank()
    one_hot = one_hot_labels(torch.randint(0, 4, (1, 33, 49)), 11)
    torch.testing.assert_close(bank.embed(one_hot, used=4), bank(one_hot), atol=1e-5, rtol=1e-5)


def test_identity_vectors_are_the_embedding_of_a_covered_patch():
    torch.manual_seed(0)
    bank = IdentityBank()
    mask = torch.full((1, 65, 65), 3)  # everything is object 3
    emb = bank(one_hot_labels(mask, 11))  # [1, 256, 5, 5]
    torch.testing.assert_close(emb[0, :, 2, 2], bank.identity_vectors()[3], atol=1e-4, rtol=1e-5)
