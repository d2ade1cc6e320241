"""Notebook 02: the identification mechanism - a random identity assignment, the identification
embedding (Eq. 3), attention with identities (Eq. 4) and identification decoding (Eq. 5).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from aot_edu.model import attention as att
from aot_edu.model import identity as ident

from .checking import (
    _call,
    _diagnose,
    _fixed,
    _same_shape,
    _tensor,
)
from .framework import EXERCISES, Mistake, _exercise

# --- 02 identity ---------------------------------------------------------------------------------

@_exercise(
    "random_identity_assignment", "random identity assignment", "the P of Eq. 3", "02_identity",
    "random_identity_assignment(batch: int, M: int, generator: torch.Generator | None = None) "
    "-> Tensor",
    hints=(
        "Return an index, [batch, M + 1] of torch.long: row b says which identity each object "
        "j = 0..M of sample b wears.",
        "The background (j = 0) always keeps identity 0; objects 1..M get a permutation of "
        "1..M: torch.randperm(M, generator=generator) + 1.",
        "A new permutation for every sample; then torch.cat a column of zeros in front.",
    ))
def _check_random_assignment(random_assignment: Callable) -> None:
    key = "random_identity_assignment"
    name = EXERCISES[key].name
    batch, M = 64, 10
    called = "random_identity_assignment(64, 10, generator)"

    def draw(seed: int) -> Tensor:
        out = _call(key, random_assignment, batch, M, torch.Generator().manual_seed(seed),
                    called=called)
        return _tensor(key, out, "the assignment")

    got = draw(0)
    _same_shape(key, got, torch.zeros(batch, M + 1), ("batch: one row per sample",
                                                      "M + 1: objects 0 (background) to M"),
                "the assignment",
                lambda g, e: "Did you leave out the background (object 0)?" if g == (batch, M) else None)
    if got.dtype.is_floating_point or got.dtype == torch.bool:
        raise Mistake(f"{name}: the assignment is an index: use integers (torch.long, as "
                      f"torch.randperm gives them), not {got.dtype}.")
    if not torch.equal(got[:, 0], torch.zeros(batch, dtype=got.dtype)):
        raise Mistake(f"{name}: the background (object 0, column 0) must keep identity 0 in "
                      f"every sample; yours gives it {sorted(set(got[:, 0].tolist()))[:5]}.")
    if got.min() < 0 or got.max() > M:
        raise Mistake(f"{name}: identities are 0..M = 0..{M}; yours go from {got.min().item()} "
                      f"to {got.max().item()}.")
    for b, row in enumerate(got.tolist()):
        if len(set(row)) != len(row):
            twice = sorted({i for i in row if row.count(i) > 1})
            objects = [j for j, i in enumerate(row) if i == twice[0]]
            raise Mistake(f"{name}: in sample {b} objects {objects} all wear identity {twice[0]}: "
                          f"two objects must never share an identity - draw a permutation "
                          f"(torch.randperm), not independent random numbers.")
    if all(torch.equal(got[0], row) for row in got):
        raise Mistake(f"{name}: every sample got the same assignment {got[0].tolist()}: draw a new "
                      f"permutation for every sample, or identity j would learn to mean object j.")
    if not torch.equal(got, draw(0)):
        raise Mistake(f"{name}: the same seeded generator gave two different assignments: pass "
                      f"generator=generator to torch.randperm, so that a training step can be "
                      f"reproduced.")
    if torch.equal(got, draw(1)):
        raise Mistake(f"{name}: two different generators gave the same assignment: the "
                      f"assignment must be random (use the generator you are given).")
    ones = torch.ones(batch, M + 1, 1, 1)
    if not torch.equal(ident.decode_identities(ident.assign_identities(ones, got.long()),
                                               got.long()), ones):
        raise Mistake(f"{name}: the package cannot assign and decode with it.")


def _permutation(assignment: Tensor) -> Tensor:
    """The matrix ``P`` with ``P[j, assignment[j]] = 1`` (object ``j`` wears that identity)."""
    return F.one_hot(assignment, len(assignment)).float()


def _identity_inputs(seed: int, tokens: int = 12, M: int = 5, C: int = 4):
    """One-hot masks ``Y [tokens, M+1]`` (objects 0..3 present), an assignment that is not its
    own inverse, and a bank ``D [M+1, C]``."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 1, 2, 3] * (tokens // 4))[torch.randperm(tokens, generator=generator)]
    Y = F.one_hot(labels, M + 1).float()
    assignment = torch.tensor([0, 3, 5, 1, 2, 4])[: M + 1]  # object 1 -> identity 3 -> object 3 ...
    D = torch.randn(M + 1, C, generator=generator)
    return Y, assignment, D


def _embedding_by_package(Y: Tensor, assignment: Tensor, D: Tensor) -> Tensor:
    """Eq. 3 through the package: ``assign_identities`` (Y P), then the bank's vectors."""
    identities = ident.assign_identities(Y.t()[None, :, :, None], assignment[None])[0, :, :, 0].t()
    return identities @ D


@_exercise(
    "identification_embedding", "identification embedding E = ID(Y, D) = Y P D", "Eq. 3",
    "02_identity",
    "identification_embedding(Y: Tensor, P: Tensor, D: Tensor) -> Tensor",
    hints=(
        "Shapes: Y [HW, M+1] one-hot objects, P [M+1, M+1] with P[j, i] = 1 when object j wears "
        "identity i, D [M+1, C] one vector per identity. E is [HW, C].",
        "Y @ P moves each pixel's 1 from its object's column to its identity's column.",
        "Then @ D replaces that one-hot row by the identity's vector: E = Y @ P @ D.",
    ))
def _check_identification_embedding(identification_embedding: Callable) -> None:
    key = "identification_embedding"
    Y, assignment, D = _identity_inputs(seed=21)
    P = _permutation(assignment)
    called = "identification_embedding(Y, P, D) with Y [12, 6], P [6, 6], D [6, 4]"
    got = _tensor(key, _call(key, identification_embedding, Y, P, D, called=called), "E")
    expected = _embedding_by_package(Y, assignment, D)
    _same_shape(key, got, expected, ("HW: one row per pixel", "C: the identity vector"), "E")
    inverse = torch.argsort(assignment)
    _diagnose(key, got, expected, [
        ("the objects do not wear their assigned identities: E = Y P D. Without P, object j "
         "wears identity j whatever P says.",
         lambda: Y @ D),
        ("you used P^T: row j of P says which identity object j wears, so E = Y @ P @ D (with "
         "P^T object j would wear the identity of the object that wears identity j).",
         lambda: _embedding_by_package(Y, inverse, D)),
    ])


@_exercise(
    "att_id", "attention with identities AttID", "Eq. 4", "02_identity",
    "att_id(Q: Tensor, K: Tensor, V: Tensor, Y: Tensor, P: Tensor, D: Tensor) -> Tensor",
    hints=(
        "AttID(Q, K, V | Y) = Att(Q, K, V + ID(Y, D)): the memory's values carry its identities.",
        "Q [n, C] are the query frame's tokens, K and V [m, C] the memory's, Y [m, M+1] the "
        "memory's masks: the identities belong to the memory.",
        "Use your two earlier functions: attention(Q, K, V + identification_embedding(Y, P, D)).",
    ))
def _check_att_id(att_id: Callable) -> None:
    key = "att_id"
    Y, assignment, D = _identity_inputs(seed=31, tokens=12, C=8)
    P = _permutation(assignment)
    Q, K, V = _fixed(5, 8, seed=32), _fixed(12, 8, seed=33), _fixed(12, 8, seed=34)
    called = "att_id(Q, K, V, Y, P, D) with Q [5, 8], K and V [12, 8], Y [12, 6], D [6, 8]"
    got = _tensor(key, _call(key, att_id, Q, K, V, Y, P, D, called=called), "the output")

    def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return att.scaled_dot_product_attention(q[None], k[None], v[None])[0][0]

    E = _embedding_by_package(Y, assignment, D)
    expected = attend(Q, K, V + E)
    _same_shape(key, got, expected, ("n: query tokens", "C: channels"), "the output",
                lambda g, e: "One row per memory token: the output has one row per query."
                if g[0] == K.shape[0] else None)
    _diagnose(key, got, expected, [
        ("the identities went into the keys: ID is added to the values, V + ID. Keys decide "
         "where to look (image features); values carry what is found (here: which object).",
         lambda: attend(Q, K + E, V)),
        ("the identities are in both keys and values: only the values carry them, "
         "Att(Q, K, V + ID).",
         lambda: attend(Q, K + E, V + E)),
        ("V is missing: the values are V + ID, the image features plus the identities.",
         lambda: attend(Q, K, E)),
        ("the identities are not the assigned ones: ID(Y, D) = Y P D, with the same P that "
         "decodes the query frame (Eq. 5); without P the memory and the query would not share "
         "identities.",
         lambda: attend(Q, K, V + Y @ D)),
        ("the identities are assigned with P^T: ID(Y, D) = Y @ P @ D.",
         lambda: attend(Q, K, V + _embedding_by_package(Y, torch.argsort(assignment), D))),
        ("the identities were not attended: no ID is added to the result after the "
         "attention; it goes into the values, Att(Q, K, V + ID).",
         lambda: attend(Q, K, V)),
    ])


@_exercise(
    "identification_decoding", "identification decoding", "Eq. 5", "02_identity",
    "identification_decoding(L: Tensor, P: Tensor) -> Tensor",
    hints=(
        "L [HW, M+1] holds each pixel's logit for every identity; the answer is [HW, M+1]: each "
        "pixel's probability for every object.",
        "Object j's logit is the logit of the identity it wears (P[j, i] = 1): column j of "
        "L @ P.T. The same P that embedded the memory (Eq. 3) - that is how memory and query "
        "share identities.",
        "Then a softmax over the objects, the last axis: each pixel's probabilities sum to 1.",
    ))
def _check_identification_decoding(identification_decoding: Callable) -> None:
    key = "identification_decoding"
    name = EXERCISES[key].name
    _, assignment, _ = _identity_inputs(seed=41)
    P = _permutation(assignment)
    L = _fixed(12, 6, seed=42, scale=2.0)
    called = "identification_decoding(L, P) with L [12, 6], P [6, 6]"
    got = _tensor(key, _call(key, identification_decoding, L, P, called=called), "Y'")

    def decode(assign: Tensor) -> Tensor:
        logits = ident.decode_identities(L.t()[None, :, :, None], assign[None])[0, :, :, 0].t()
        return torch.softmax(logits, dim=-1)

    expected = decode(assignment)
    _same_shape(key, got, expected, ("HW: one row per pixel", "M + 1: objects"), "Y'")
    identity = torch.arange(len(assignment))
    _diagnose(key, got, expected, [
        ("the softmax runs over the wrong axis: each pixel's probabilities over the objects must "
         "sum to 1 (softmax over the last axis); yours sum to 1 over the pixels.",
         lambda: torch.softmax(L @ P.t(), dim=0)),
        ("these are logits, not probabilities: apply the softmax over the objects.",
         lambda: L @ P.t()),
        ("the identities are not shared between memory and query: you decoded with P^T's "
         "inverse mapping (L @ P). Object j wears identity i where P[j, i] = 1 in the memory, "
         "so its logit here is L[:, i]: L @ P.T.",
         lambda: decode(torch.argsort(assignment))),
        ("the identities are not shared between memory and query: you decoded as if object j "
         "wore identity j (P = I), but the memory gave it the identity P says. Decode with the "
         "same P.",
         lambda: decode(identity)),
    ])
    if not torch.allclose(got.sum(-1), torch.ones(len(L)), atol=1e-5):
        raise Mistake(f"{name}: each pixel's probabilities must sum to 1.")
