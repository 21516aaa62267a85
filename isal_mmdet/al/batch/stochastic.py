"""Stochastic batches (Kirsch et al., TMLR 2023, "Stochastic Batch Acquisition"): sample the
batch without replacement with probability ∝ rank^-β instead of taking the top-k. Rank-based,
so it works alike for every strategy's scores, signed (ISAL) or not; each image's draw is a
SHA-256 hash of (seed, id), so the batch depends on neither pool order nor ranks (CRC32, the
random strategy's hash, is affine in its input: the draws of two ids of one seed are not
independent, which biases a weighted draw)."""
from __future__ import annotations

import hashlib
import math
from typing import Annotated

from ...registry import BATCH_STAGES
from ..arguments import Interval
from .base import BatchStage


@BATCH_STAGES.register_module(name='stochastic')
@BATCH_STAGES.register_module()
class Stochastic(BatchStage):
    """Args:
        beta (float >= 0): the sharpness; ``rank^-beta``. 0 draws uniformly (the ``random``
            strategy's own draw for the same seed), large values tend to the top-k.
            Default 1 (Kirsch et al.'s choice).
    """

    def __init__(self, beta: Annotated[float, Interval(0)] = 1.0):
        self.beta = beta

    def pick(self, ranked, scores, n, ctx):
        # Gumbel-top-k: the n largest log-weight + Gumbel noise are a draw without replacement
        keys = {}
        for r, i in enumerate(ranked):
            digest = hashlib.sha256(f'stochastic:{ctx.seed}:{i}'.encode()).digest()
            u = (int.from_bytes(digest[:8], 'big') + 0.5) / 2 ** 64
            keys[i] = -self.beta * math.log(r + 1) - math.log(-math.log(u))
        return sorted(ranked, key=lambda i: -keys[i])[:n]
