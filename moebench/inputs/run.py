"""The run: what is trained and with which software settings (not the chip, not the model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from moebench.errors import InputError
from moebench.inputs.hardware import Chip

Precision = Literal["bf16", "fp8"]
RECOMPUTE = ("none", "selective", "full")
# Selective recompute chosen per module, as Megatron-Core's --recompute-granularity selective
# --recompute-modules (megatron/core/transformer/transformer_config.py, ``recompute_modules``):
# core_attn the core attention; moe_act the MoE MLP activation function; layernorm the
# input_layernorm and pre_mlp_layernorm; mla_up_proj the MLA up projections and RoPE; mlp the
# dense MLP; moe the MoE layer; shared_experts the shared experts. moe_act, layernorm and
# mla_up_proj discard their outputs and recompute them ("output-discarding checkpointing"); the
# others keep their inputs and rerun their forward. moebench's moe_act also covers the
# activation of the shared experts and of dense layers, as its ``selective`` always has.
RECOMPUTE_MODULES = ("core_attn", "moe_act", "layernorm", "mla_up_proj", "mlp", "moe",
                     "shared_experts")
# What moebench's ``selective`` has always recomputed (norms, activations, MLA up-projections);
# Megatron's own default module list is ["core_attn"].
SELECTIVE_MODULES = ("layernorm", "moe_act", "mla_up_proj")


# Megatron-LM's --offload-modules (fine-grained activation offloading): each offloads its
# module's input, saved for backward, to host memory (docs/source/api-guide/
# fine_grained_activation_offloading.md).
OFFLOAD_MODULES = ("attn_norm", "qkv_linear", "core_attn", "attn_proj", "mlp_norm", "expert_fc1",
                   "moe_act")


def parse_offload_modules(text: str, option: str = "--offload-modules") -> tuple[str, ...]:
    """Activation-offload modules (:data:`OFFLOAD_MODULES`), or ``none``: ()."""
    if text.strip() == "none":
        return ()
    return parse_modules(text, option, OFFLOAD_MODULES)


def module_mask(names: tuple[str, ...] | list[str],
                choices: tuple[str, ...] = RECOMPUTE_MODULES) -> int:
    """Bit i set for module choices[i]."""
    return sum(1 << choices.index(n) for n in set(names))


def module_names(mask: int, choices: tuple[str, ...] = RECOMPUTE_MODULES) -> list[str]:
    """The modules of a mask, in ``choices`` order."""
    return [n for i, n in enumerate(choices) if mask >> i & 1]


def parse_modules(text: str | list[str] | tuple[str, ...], option: str = "--recompute-modules",
                  choices: tuple[str, ...] = RECOMPUTE_MODULES, what: str = "") -> tuple[str, ...]:
    """Names from ``core_attn,moe_act`` (commas, spaces, '+' or ';'), checked against
    ``choices`` (``what`` they are, in errors: recompute or offload module by default)."""
    items = text if isinstance(text, list | tuple) else \
        text.replace("+", ",").replace(";", ",").replace(" ", ",").split(",")
    names = tuple(dict.fromkeys(n.strip() for n in items if n.strip()))
    unknown = [n for n in names if n not in choices]
    what = what or ("offload module" if choices is OFFLOAD_MODULES else "recompute module")
    if unknown or not names:
        raise InputError(option, None, f"unknown {what} {unknown[0]!r}; expected "
                         f"{', '.join(choices)}" if unknown else
                         f"give one or more of {', '.join(choices)}")
    return names


SELECTIVE_MASK = module_mask(SELECTIVE_MODULES)
# Recompute searched, lightest first, each a superset of the one before (so never faster and
# never holding more, which the search's exact pruning relies on): none; selective; selective
# plus the whole MLP half of every layer (mlp in dense layers, moe in MoE layers); full.
RECOMPUTE_SEARCHED = ((0, 0), (1, SELECTIVE_MASK), (1, SELECTIVE_MASK | module_mask(
    ("mlp", "moe"))), (2, 0))
# 1F1B (interleaved when vpp > 1), DualPipe (DeepSeek-V3), zero-bubble ZB1P / ZB-H1 (Qi et
# al., arXiv 2401.10241: the weight-gradient half of each backward fills the bubble), and
# DualPipeV (deepseek-ai/DualPipe, dualpipe/dualpipev.py: DualPipe "cut in half", a V-shape in
# which each of the pp ranks holds two of the 2 pp stages, stage i and stage 2 pp - 1 - i).
SCHEDULES = ("1f1b", "dualpipe", "zb1p", "dualpipev")
DUALPIPEV = SCHEDULES.index("dualpipev")
# How training state is sharded over the data-parallel group (Rajbhandari et al., ZeRO,
# arXiv 1910.02054; PyTorch FSDP2): zero-0 replicates everything (DDP); zero-1 shards the
# optimizer states (Megatron's distributed optimizer); zero-2 also the gradients; zero-3 also
# the parameters (FSDP's full shard); hsdp is zero-3 within a shard group, replicated across
# groups (FSDP's hybrid shard).
SHARDING = ("zero-0", "zero-1", "zero-2", "zero-3", "hsdp")
OPTIMIZER_STATES = ("fp32", "bf16", "pure-bf16")
# How a run's router places a token's top-k experts: "random", each drawn apart (a trained
# router; Megatron-Core's --moe-router-force-load-balancing draws random logits), or
# "contiguous", k consecutive experts, token t taking experts t k to t k + k - 1 (mod E):
# NeMo AutoModel's FakeBalancedGate, which its benchmarks run (components/moe/layers.py).
ROUTINGS = ("random", "contiguous")
# Context parallelism: a ring passing K/V chunks (Megatron's, overlapped with attention), or
# Ulysses all-to-alls that regroup the sequence by heads (DeepSpeed-Ulysses, arXiv 2309.14509).
CP_KINDS = ("ring", "ulysses")

# Mixed-precision training state per parameter, Megatron-Core distributed optimizer defaults
# (Korthikanti et al. 2022; Megatron-LM docs): BF16 weights (2 B) and FP32 main gradients (4 B)
# on every rank holding the parameter; FP32 master weight + Adam m and v (12 B) sharded over the
# data-parallel group (ZeRO-1).
WEIGHT_BYTES = 2.0
GRAD_BYTES = 4.0
OPTIMIZER_BYTES = 12.0
# BF16 Adam moments (Megatron-Core's precision-aware optimizer, --exp-avg-dtype bf16
# --exp-avg-sq-dtype bf16; TorchTitan/torchao low-precision optimizers) keep the FP32 master:
# 4 + 2 + 2 bytes.
OPTIMIZER_BYTES_BF16_STATES = 8.0
# Pure-BF16 training (a model built in BF16 and stepped as it is, as PyTorch-native trainers run
# it: NeMo AutoModel's MoE models, torch.optim.Adam on FSDP2's BF16 shards): the BF16 weights
# are the master, Adam m and v BF16, 2 + 2 bytes, and the gradients stay BF16 (2 bytes).
OPTIMIZER_BYTES_PURE_BF16 = 4.0
# Parameters are all-gathered in BF16 (Megatron default); the gradient reduction's precision is
# the stack's (collectives.grad_reduce).
PARAM_GATHER_BYTES = 2.0


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Settings of one training run that are neither chip nor model."""

    seq_len: int
    """Tokens per sequence."""
    global_batch: int
    """Sequences per optimizer step."""
    precision: Precision = "bf16"
    """GEMM precision: fp8 runs GEMMs (and MoE dispatch) in FP8, the rest in BF16."""
    expert_imbalance: float = 1.0
    """Busiest EP rank's token load over the mean (1.0 = balanced, as benchmark runs force)."""
    tp_across_domains: bool = False
    """Allow tensor parallelism to span scale-up domains (off, as frameworks advise)."""
    capacity_factor: float | None = None
    """Drop-and-pad routing: every expert takes exactly this many times its mean load (tokens
    beyond it are dropped, slots below it padded), so the dispatcher needs no host sync.
    None: dropless routing (the load imbalance applies)."""
    routing: str = "random"
    """How the router places a token's experts (:data:`ROUTINGS`): random, or contiguous (a
    benchmark's fake balanced gate), which sends each token to the fewest ranks and domains."""
    pipeline_flushes: int = 1
    """Pipeline schedule runs per optimizer step: 1 (Megatron-Core: every micro-batch of the
    step in one schedule), or more where a trainer accumulates gradients by running the
    schedule again (NeMo AutoModel's benchmark: global batch / (local batch x DP)), each run
    filling and draining the pipeline and exchanging its data-parallel state anew."""
    optimizer_states: str = "fp32"
    """Adam moment precision: fp32 (12 bytes of optimizer state per parameter), bf16 (8: BF16
    moments beside the FP32 master) or pure-bf16 (4: no FP32 master, BF16 gradients)."""

    @property
    def optimizer_bytes(self) -> float:
        """Optimizer-state bytes per parameter: FP32 master weight plus Adam m and v (the
        moments alone under pure BF16)."""
        return {"bf16": OPTIMIZER_BYTES_BF16_STATES,
                "pure-bf16": OPTIMIZER_BYTES_PURE_BF16}.get(self.optimizer_states, OPTIMIZER_BYTES)

    @property
    def pure_bf16(self) -> bool:
        """BF16 weights stepped in place: no FP32 master, BF16 gradients."""
        return self.optimizer_states == "pure-bf16"

    @property
    def grad_bytes(self) -> float:
        """Bytes of the gradient the optimizer reads per parameter: FP32, BF16 under pure BF16."""
        return WEIGHT_BYTES if self.pure_bf16 else GRAD_BYTES

    def __post_init__(self) -> None:
        if self.seq_len <= 0:
            raise InputError(
                "--seq-len", None, f"must be a positive whole number, got {self.seq_len}"
            )
        if self.pipeline_flushes < 1:
            raise InputError("--set", "run.pipeline_flushes",
                             f"must be a whole number of at least 1, got {self.pipeline_flushes}")
        if self.routing not in ROUTINGS:
            raise InputError("--set", "run.routing",
                             f"expected random or contiguous, got {self.routing!r}")
        if self.optimizer_states not in OPTIMIZER_STATES:
            raise InputError("--optimizer-states", None, f"expected fp32, bf16 or pure-bf16, got "
                                                          f"{self.optimizer_states!r}")
        if self.global_batch <= 0:
            raise InputError(
                "--global-batch", None, f"must be a positive whole number, got {self.global_batch}"
            )
        if self.precision not in ("bf16", "fp8"):
            raise InputError("--precision", None, f"expected bf16 or fp8, got {self.precision!r}")
        if not (1.0 <= self.expert_imbalance < 100.0):
            raise InputError(
                "--expert-imbalance", None,
                f"must be at least 1.0 and below 100, got {self.expert_imbalance}")
        if self.capacity_factor is not None and not (0.0 < self.capacity_factor <= 64.0):
            raise InputError(
                "--capacity-factor", None,
                f"must be above 0 and at most 64, got {self.capacity_factor}")

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.global_batch


def resolve_precision(requested: str, chip: Chip) -> Precision:
    """``auto`` picks FP8 where the chip has it; FP8 on a chip without it is an input error."""
    if requested == "auto":
        return "fp8" if chip.supports_fp8 else "bf16"
    if requested == "fp8" and not chip.supports_fp8:
        raise InputError(
            "--precision", None,
            f"{chip.name} has no FP8 tensor path; use bf16 or auto",
        )
    if requested not in ("bf16", "fp8"):
        raise InputError("--precision", None, f"expected bf16, fp8 or auto, got {requested!r}")
    return requested  # type: ignore[return-value]


RUN_SET_FIELDS = {"seq_len": int, "global_batch": int, "expert_imbalance": float,
                  "routing": str, "pipeline_flushes": int}
