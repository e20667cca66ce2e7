"""Pipeline bubbles: the idle time of the schedule, in seconds per step.

With t the wall time of one micro-batch through a pipeline rank's layers, and a micro-batch's
share F = 1/3 forward, B = 2/3 full backward, W = 1/3 weight-gradient backward:

* 1F1B: (p - 1) micro-batch times, divided by v when interleaved with v chunks per rank
  (Narayanan et al., arXiv 2104.04473, sec. 2.2).
* DualPipe (DeepSeek-V3 Table 2): (p/2 - 1)(F&B + B - 3W), with the overlapped forward and
  backward pair F&B taken as F + B, and B = 2F, W = B/2: (p/2 - 1) x 2/3 of a micro-batch.
* ZB1P (zero-bubble, Qi et al., arXiv 2401.10241; deepseek-ai/DualPipe README table):
  (p - 1)(F + B - 2W) with the same memory as 1F1B: (p - 1) x 1/3 of a micro-batch.
* DualPipeV (deepseek-ai/DualPipe README, "Pipeline Bubbles and Memory Usage Comparison"):
  (PP/2 - 1)(F&B + B - 3W) for PP stages on PP/2 devices, F, B and W being one stage's (one
  chunk's) times. moebench's pp counts devices, so PP = 2p and a chunk is half of a rank's
  layers: (p - 1) x 2/3 x t/2 = (p - 1) x 1/3 of a micro-batch, ZB1P's bubble on the same
  ranks, with DualPipe's all-to-all overlap and one copy of the parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moebench.engine.context import StepContext

# (F + B) + B - 3W over F + B, with F = 1/3, B = 2/3, W = 1/3 of a micro-batch.
DUALPIPE_BUBBLE_PER_STAGE_PAIR = 2.0 / 3.0
# (F + B - 2W) over F + B with the same shares.
ZB1P_BUBBLE_PER_STAGE = 1.0 / 3.0
# DualPipeV: (F&B + B - 3W) of one chunk, half a rank's micro-batch: 2/3 x 1/2 per rank.
DUALPIPEV_BUBBLE_PER_RANK = DUALPIPE_BUBBLE_PER_STAGE_PAIR / 2.0


def bubble(ctx: StepContext, t_mb: Any) -> Any:
    """Bubble seconds per step, given one micro-batch's wall time on the slowest stage."""
    pp, vpp = ctx.pp, ctx.vpp
    one_f1b = (pp - 1) / vpp * t_mb
    dual = np.maximum(pp / 2 - 1, 0) * DUALPIPE_BUBBLE_PER_STAGE_PAIR * t_mb
    dual_v = (pp - 1) * DUALPIPEV_BUBBLE_PER_RANK * t_mb
    zero_bubble = (pp - 1) * ZB1P_BUBBLE_PER_STAGE * t_mb
    return np.where(ctx.dualpipe, dual, np.where(
        ctx.dualpipev, dual_v, np.where(ctx.plans.schedule == 2, zero_bubble, one_f1b)))
