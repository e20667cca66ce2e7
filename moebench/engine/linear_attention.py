"""Work per token of a Gated DeltaNet (linear-attention) layer: FLOPs, activations and state.

The layer's recurrence S_t = a_t S_{t-1} (I - b_t k_t k_t^T) + b_t v_t k_t^T keeps one
d_k x d_v state per value head; training runs it chunk by chunk (the WY form of Yang et al.,
"Parallelizing Linear Transformers with the Delta Rule over Sequence Length", arXiv 2406.06484,
sec. 3, with the gating of arXiv 2412.06464), as the flash-linear-attention kernels do
(fla/ops/gated_delta_rule/chunk.py, chunk size 64). The work per token is therefore constant
in the sequence length: no s/2 term as in softmax attention.

Notation: n_v value heads (queries and keys are repeated to n_v heads before the kernel),
d_k and d_v head widths, C the chunk size.
"""

from __future__ import annotations

from moebench.inputs.linear_attention import LinearAttention

DELTA_RULE_CHUNK = 64
"""Chunk size C of the flash-linear-attention delta-rule kernels (chunk_local_cumsum(g, 64))."""


def delta_rule_flops(lin: LinearAttention, chunk: int = DELTA_RULE_CHUNK) -> float:
    """Forward FLOPs per token of the chunked gated delta rule, all heads:
    n_v (6 d_k d_v + 2 C (3 d_k + 2 d_v)).

    Per chunk of C tokens and head: K K^T (2 C^2 d_k), the WY factors W = A K and U = A V
    (2 C^2 d_k + 2 C^2 d_v), the state read U - W S and update S += K^T (U - W S) (2 C d_k d_v
    each), the inter-chunk output Q S (2 C d_k d_v), and the intra-chunk scores Q K^T
    (2 C^2 d_k) applied to the new values (2 C^2 d_v). Per token that is 6 d_k d_v, the state
    size, and 2 C (3 d_k + 2 d_v) for the C x C blocks (full tiles; the causal mask saves
    nothing on tensor cores). The triangular solve for A (about 2 C^2 / 3 per token and head,
    under 2% here) and the elementwise gating are left out.
    """
    dk, dv = lin.key_head_dim, lin.value_head_dim
    return float(lin.num_value_heads * (6 * dk * dv + 2 * chunk * (3 * dk + 2 * dv)))


def conv_flops(lin: LinearAttention) -> float:
    """Forward FLOPs per token of the causal depthwise convolution: 2 x channels x kernel."""
    return 2.0 * lin.conv_dim * lin.conv_kernel_size


def linear_attention_core_flops(lin: LinearAttention) -> float:
    """Forward FLOPs per token of the non-GEMM part of the layer (recurrence and convolution);
    its projections count with the weight GEMMs."""
    return delta_rule_flops(lin) + conv_flops(lin)


def linear_attention_activations(lin: LinearAttention, hidden: int,
                                 chunk: int = DELTA_RULE_CHUNK) -> tuple[int, int, int]:
    """(GEMM inputs, other, recomputable) activation elements per token kept for backward.

    GEMM inputs: the norm output (h, input of both in-projections) and the gated-norm output
    (n_v d_v, input of out_proj). Other: the residual input (h); the convolution's input
    (2 n_k d_k + n_v d_v, its SiLU is recomputed from it); what the kernel saves (FLA's
    ChunkGatedDeltaRuleFunction: q and k repeated to n_v heads, v, the decay g and write
    strength beta, and the inverted C x C block A: n_v (2 d_k + d_v + 2 + C)); b and a (2 n_v);
    the gate z and the kernel output for the gated norm (2 n_v d_v). Selective recompute drops
    the norm output, as for softmax attention.
    """
    nv = lin.num_value_heads
    kernel = nv * (2 * lin.key_head_dim + lin.value_head_dim + 2 + chunk)
    gemm_in = hidden + lin.value_dim
    other = hidden + lin.conv_dim + kernel + 2 * nv + 2 * lin.value_dim
    return gemm_in, other, hidden


def recurrent_state_elements(lin: LinearAttention, chunk: int = DELTA_RULE_CHUNK) -> float:
    """Chunk-boundary states per token: n_v d_k d_v / C.

    The kernel materializes the state S (n_v x d_k x d_v) at every chunk boundary, frees it after
    the forward and recomputes it in the backward (FLA saves only q, k, v, g, beta and A), so it
    is working memory of the one layer being computed, not a stored activation.
    """
    return lin.num_value_heads * lin.key_head_dim * lin.value_head_dim / chunk
