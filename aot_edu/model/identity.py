"""The identification mechanism (paper Sec. 3.2, Eq. 3-5).

AOT gives every object in a video an *identity*: one of ``M`` learnable vectors of an identity
bank ``D`` (``M = 10`` plus one for the background). Masks of N objects are turned into one
embedding by looking up each pixel's identity (Eq. 3), so all objects travel through the
transformer *together* and cost what one object costs. The decoder predicts, for every pixel,
a probability over the ``M + 1`` identities, which is read back as a probability over objects
with the same assignment (Eq. 5).

- Eq. 3, identification embedding: ``E = ID(Y, D) = Y P D`` for one-hot masks ``Y [HW, N]``,
  where ``P`` is a random permutation matrix choosing which identity each object gets
  (``P = I`` at test time, the official evaluation's choice).
- Eq. 4, attention with identities: ``AttID(Q, K, V | Y) = Att(Q, K, V + ID(Y, D))``: the
  embedding is added to the values of the memory frames (the LSTT does this, see
  ``LSTTBlock.memory_value``).
- Eq. 5, identification decoding: ``Y' = softmax(P L^T)`` where ``L`` holds the decoder's
  identity logits; with the permutation stored as an index this is a gather.

The *patch-wise* identity bank is what the official models use: instead of one vector per
identity and pixel, each identity owns a 17x17 patch of vectors applied as a strided
convolution (kernel 17, stride 16, padding 8) that maps the full-resolution one-hot mask directly
onto the 1/16 token grid. For a patch covered by a single object the embedding is the bias plus
the sum of that identity's 289 vectors - :meth:`IdentityBank.identity_vectors`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def one_hot_labels(labels: Tensor, num_identities: int) -> Tensor:
    """Label map ``[B, H, W]`` or ``[B, 1, H, W]`` (values 0..M) -> one-hot ``[B, M+1, H, W]``.

    Labels outside ``0..num_identities-1`` get an all-zero column, as in the official code.
    """
    if labels.dim() == 4:
        labels = labels[:, 0]
    classes = torch.arange(num_identities, device=labels.device, dtype=labels.dtype)
    return (labels[:, None] == classes[None, :, None, None]).float()


def random_assignment(
    batch: int, num_identities: int, generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """The random ``P`` of Eq. 3: an identity for every object, as an index ``[B, M+1]``.

    ``assignment[b, j]`` is the identity given to object ``j`` of sample ``b``; the background
    (``j = 0``) always keeps identity 0, objects get a random permutation of ``1..M``.
    """
    perms = [torch.randperm(num_identities - 1, generator=generator) + 1 for _ in range(batch)]
    zero = torch.zeros(batch, 1, dtype=torch.long)
    return torch.cat([zero, torch.stack(perms)], dim=1).to(device)


def identity_assignment(batch: int, num_identities: int, device: torch.device | str = "cpu") -> Tensor:
    """``P = I``: object ``j`` uses identity ``j`` (test time)."""
    return torch.arange(num_identities, device=device).expand(batch, num_identities).clone()


def assign_identities(one_hot: Tensor, assignment: Tensor) -> Tensor:
    """``Y P``: move object ``j``'s mask to identity channel ``assignment[:, j]``.

    ``one_hot [B, M+1, H, W]`` (objects) -> ``[B, M+1, H, W]`` (identities).
    """
    index = assignment[:, :, None, None].expand_as(one_hot)
    return torch.zeros_like(one_hot).scatter_(1, index, one_hot)


def decode_identities(identity_logits: Tensor, assignment: Tensor) -> Tensor:
    """Eq. 5 (before the softmax): object ``j``'s logit is its identity's logit.

    ``identity_logits [B, M+1, h, w]`` -> object logits ``[B, M+1, h, w]``.
    """
    index = assignment[:, :, None, None].expand_as(identity_logits)
    return identity_logits.gather(1, index)


class IdentityBank(nn.Conv2d):
    """Patch-wise identity bank: ``M + 1`` identities, each a 17x17 patch of C-dim vectors.

    A strided convolution from the one-hot identity map ``[B, M+1, H, W]`` (input resolution
    ``16k + 1``) to the identity embedding ``[B, C, h, w]`` on the 1/16 grid (Eq. 3). It is a
    plain ``Conv2d`` so its state-dict keys are the official ``patch_wise_id_bank.weight``
    ``[C, M+1, 17, 17]`` and ``.bias [C]``.
    """

    def __init__(
        self, max_obj_num: int = 10, dim: int = 256, kernel: int = 17, stride: int = 16,
        padding: int = 8,
    ) -> None:
        super().__init__(max_obj_num + 1, dim, kernel_size=kernel, stride=stride, padding=padding)
        self.num_identities = max_obj_num + 1

    def embed(self, identity_one_hot: Tensor, used: int | None = None) -> Tensor:
        """Eq. 3: identity embedding ``[B, C, h, w]`` of a one-hot identity map.

        ``used``: if only identities ``0..used-1`` can be non-zero (test time, identity
        assignment), convolve just those input channels - the others add exact zeros.
        """
        if used is None or used >= self.num_identities:
            return self(identity_one_hot)
        return F.conv2d(
            identity_one_hot[:, :used], self.weight[:, :used], self.bias, self.stride, self.padding
        )

    def identity_vectors(self) -> Tensor:
        """``[M+1, C]``: the embedding of a patch covered entirely by one identity.

        This is the "identity vector" whose cosine similarities paper Fig. 4 shows.
        """
        return (self.weight.sum(dim=(2, 3)) + self.bias[:, None]).t()
