"""Pipeline layouts: which layers, embedding, loss (LM head) and MTP sit on which rank.

Three kinds, one per plan (:data:`LAYOUTS`):

* ``balanced``, searched: the layout a planner picks so that the LM head, loss and MTP cost no
  more than the layers they displace (Megatron-LM ``--pipeline-model-parallel-layout`` or
  ``--decoder-first/last-pipeline-num-layers``); the slowest stage does max(its layers, the
  whole model's work / pp), the bound any layout of whole layers can at best reach. It is never
  slower than ``even`` with the same memory, so the search offers it alone.
* ``even``: Megatron-LM's default, ceil(L / (pp v)) layers per virtual stage, the embedding on
  the first rank, the LM head, loss and MTP on top of the last rank's layers.
* ``given``: a layout written out, in one of three forms:

  - Megatron-LM's layout string (``--pipeline-model-parallel-layout``,
    megatron/core/transformer/pipeline_parallel_layout.py): virtual stages separated by ``|``,
    ``E`` the embedding, ``t`` a decoder layer, ``m`` an MTP layer, ``L`` the loss and LM head,
    ``x*n`` and ``(...)*n`` repetitions; e.g. ``Et*3|(tt|)*29m|L``. Virtual stage i runs on rank
    i mod pp, so the string holds pp x vpp stages.
  - Layers per rank, ``4,8,8,8,8,8,8,6`` (MindSpeed-LLM ``--num-layer-list``); the embedding on
    the first rank, the loss and MTP on the last.
  - ``first=N,last=M`` (Megatron-LM ``--decoder-first-pipeline-num-layers`` and
    ``--decoder-last-pipeline-num-layers``): the other ranks share the rest evenly.

A layout enters the step model as four layer counts per plan (:class:`StageCounts`): on the
first rank, on the rank with the loss, on the fullest rank, and on MTP's rank when MTP sits apart
from the loss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from moebench.errors import InputError

LAYOUTS = ("balanced", "even", "given")
BALANCED, EVEN, GIVEN = range(3)
OPTION = "--pipeline-layout"


@dataclass(frozen=True)
class WrittenLayout:
    """A layout as written, in one of four forms: ``string`` (a Megatron layout: decoder layers
    per virtual stage, stage i on rank i mod pp), ``ranks`` (layers per rank), ``first_last``
    (``stages`` holds the two counts) and ``account`` (``stages`` holds 1 or 0 for the
    embedding and the loss, each taking a layer's slot in an even split)."""

    text: str
    form: str
    stages: tuple[int, ...]
    head_stage: int
    mtp_stage: int
    num_layers: int

    def fits(self, pp: int, vpp: int, dualpipev: bool = False) -> bool:
        """Whether this layout can be laid on pp ranks of vpp virtual stages each (DualPipeV:
        only layers per rank, its V starting and ending on rank 0)."""
        if dualpipev:
            return self.form == "ranks" and len(self.stages) == pp
        if self.form == "first_last":
            return vpp == 1 and pp >= 2 and _first_last_counts(self, pp) is not None
        if self.form == "account":
            return (self.num_layers + sum(self.stages)) % (pp * vpp) == 0
        if self.form == "string":
            return len(self.stages) == pp * vpp
        return vpp == 1 and len(self.stages) == pp

    def ranks(self, pp: int, vpp: int, dualpipev: bool = False
              ) -> tuple[tuple[int, ...], int, int]:
        """(layers per rank, the loss's rank, MTP's rank) on pp ranks (:meth:`fits` first)."""
        last = pp - 1
        if self.form == "first_last":
            counts = _first_last_counts(self, pp)
            assert counts is not None
            return counts, last, last
        if self.form == "account":
            # Megatron-LM: (L + E + L) / (pp vpp) slots per virtual stage; the first virtual
            # stage (rank 0) and the last (rank pp-1) each build one decoder layer fewer.
            embedding, loss = self.stages
            slots = (self.num_layers + embedding + loss) // (pp * vpp) * vpp
            per_rank = [slots] * pp
            per_rank[0] -= embedding
            per_rank[last] -= loss
            return tuple(per_rank), last, last
        if self.form == "string":
            folded = tuple(sum(self.stages[r::pp]) for r in range(pp))
            return folded, self.head_stage % pp, self.mtp_stage % pp
        head = 0 if dualpipev else self.head_stage
        return self.stages, head, head

    def requirement(self) -> str:
        """What plan the layout needs, for a one-line error."""
        if self.form == "first_last":
            return "pp >= 2 whose middle ranks share the other layers evenly, and vpp 1"
        if self.form == "account":
            return (f"pp x vpp dividing its {self.num_layers + sum(self.stages)} slots, "
                    "not dualpipe or dualpipev")
        if self.form == "string":
            return f"pp x vpp = its {len(self.stages)} virtual stages, not dualpipe or dualpipev"
        return f"pp = its {len(self.stages)} ranks and vpp 1, not dualpipe"


def _first_last_counts(layout: WrittenLayout, pp: int) -> tuple[int, ...] | None:
    first, last = layout.stages
    rest, middle = layout.num_layers - first - last, pp - 2
    if rest < 0 or (middle == 0 and rest) or (middle and rest % middle):
        return None
    return (first, *([rest // middle] * middle if middle else []), last)


ACCOUNT = {"account=embedding+loss": (1, 1), "account=embedding": (1, 0),
           "account=loss": (0, 1)}
FORMS = ("balanced, even, a Megatron layout such as Et*3|(tt|)*29m|L, layers per rank such as "
         "4,8,8,6, first=N,last=M, or account=embedding+loss")


def layout_syntax_error(text: str) -> str | None:
    """Why ``text`` is no pipeline layout (before the model is known), or None."""
    compact = text.replace(" ", "")
    if compact in ("balanced", "even", "even_where_divisible") or compact in ACCOUNT \
            or re.fullmatch(r"first=\d+,last=\d+", compact) \
            or re.fullmatch(r"\d+(,\d+)+", compact):
        return None
    if compact and re.fullmatch(r"[EtmL|]+", _expand(compact)):
        return None
    return f"cannot read layout {text!r}: expected {FORMS}"


def parse_layout(text: str, num_layers: int, mtp_depth: int) -> WrittenLayout:
    """A written-out layout, checked against the model (every layer placed once, as many MTP
    layers as the model has), or an InputError naming the fix."""
    text = text.strip()
    compact = text.replace(" ", "")
    m = re.fullmatch(r"first=(\d+),last=(\d+)", compact)
    if m is not None:
        first, last = int(m[1]), int(m[2])
        if first + last > num_layers:
            raise InputError(OPTION, None, f"first={first},last={last} exceed the model's "
                                           f"{num_layers} layers")
        return WrittenLayout(text, "first_last", (first, last), 1, 1, num_layers)
    if compact in ACCOUNT:
        return WrittenLayout(text, "account", ACCOUNT[compact], 0, 0, num_layers)
    if re.fullmatch(r"[\d,]+", compact):
        counts = tuple(int(v) for v in compact.split(",") if v)
        if len(counts) < 2 or sum(counts) != num_layers:
            raise InputError(OPTION, None, f"layers per rank {text!r} must list 2 or more "
                                           f"ranks and add up to the model's {num_layers} layers")
        last = len(counts) - 1
        return WrittenLayout(text, "ranks", counts, last, last, num_layers)
    flat = _expand(compact)
    if not re.fullmatch(r"[EtmL|]+", flat):
        raise InputError(OPTION, None, f"cannot read layout {text!r}: expected {FORMS}")
    placed = {c: flat.count(c) for c in "EtmL"}
    if (placed["t"], placed["m"], placed["E"], placed["L"]) != (num_layers, mtp_depth, 1, 1):
        raise InputError(OPTION, None, f"layout {text!r} places {placed['t']} layers, "
                                       f"{placed['m']} MTP, {placed['E']} E and {placed['L']} L; "
                                       f"the model needs {num_layers} layers, {mtp_depth} MTP, "
                                       "one E and one L")
    stages = flat.split("|")
    if not stages[0].startswith("E"):
        raise InputError(OPTION, None, f"layout {text!r} must start with E (the embedding)")
    head = next(i for i, s in enumerate(stages) if "L" in s)
    mtp = next((i for i, s in enumerate(stages) if "m" in s), head)
    return WrittenLayout(text, "string", tuple(s.count("t") for s in stages), head, mtp,
                         num_layers)


def _expand(text: str) -> str:
    """Repetitions written out: ``(tt|)*2`` -> ``tt|tt|``, ``t*3`` -> ``ttt``."""
    group = re.compile(r"\(([^()]*)\)\*(\d+)")
    while group.search(text):
        text = group.sub(lambda g: g[1] * int(g[2]), text)
    return re.sub(r"([EtmL])\*(\d+)", lambda g: g[1] * int(g[2]), text)


def uniform_layers(pp: np.ndarray, chunks: np.ndarray, num_layers: int) -> np.ndarray:
    """Layers on the fullest rank of an even split: ceil(L / (pp c)) in each of its c chunks
    (never more than L)."""
    return np.minimum(np.ceil(num_layers / (pp * chunks)) * chunks, num_layers)


def balanced_ends(pp: np.ndarray, chunks: np.ndarray, even: np.ndarray, num_layers: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) ranks' decoder layers in a balanced layout of one chunk per rank: where
    pp ceil(L/pp) exceeds L, the ranks one layer short are the first (the embedding, and the
    most micro-batches in flight) and the last (the LM head, loss and MTP), as planners place
    them (Megatron-LM's --account-for-embedding/loss-in-pipeline-split; the DeepSeek-V3 layouts
    of Megatron-Bridge, e.g. ``Et*3|...|tmL``). Interleaved and DualPipeV plans keep the even
    split (their rank 0 holds several chunks)."""
    short = np.where(chunks == 1, pp * even - num_layers, 0)
    return even - (short >= 1), even - (short >= 2)


@dataclass(frozen=True)
class StageCounts:
    """Decoder layers per plan on the ranks that can be the slowest or the fullest."""

    kind: np.ndarray | int
    """Index into :data:`LAYOUTS` (per plan, or one for all)."""
    first: np.ndarray
    """On rank 0, with the embedding."""
    head: np.ndarray
    """On the rank with the loss and the LM head (and MTP unless :attr:`mtp_apart`)."""
    fullest: np.ndarray
    """On the fullest rank."""
    mtp_apart: np.ndarray | float
    """On MTP's rank when it is not the loss's; -1 where they share one."""


def shape_key(pp: np.ndarray, vpp: np.ndarray, dualpipev: np.ndarray) -> np.ndarray:
    """One integer per distinct (pp, vpp, DualPipeV) pipeline shape, which a written layout is
    laid on once."""
    return (pp * 4096 + vpp) * 2 + dualpipev


def stage_counts(pp: np.ndarray, vpp: np.ndarray, chunks: np.ndarray, kind: np.ndarray | None,
                 written: WrittenLayout | None, num_layers: int) -> StageCounts:
    """The layer counts of every plan: an even split, except where a plan's layout is the
    written one (once per distinct pipeline shape, not per plan; DualPipeV has 2 chunks)."""
    even = uniform_layers(pp.astype(float), chunks.astype(float), num_layers)
    first, head = balanced_ends(pp, chunks, even, num_layers)
    if kind is None:
        return StageCounts(0, first, head, even, -1.0)
    bal = kind == BALANCED
    first, head = np.where(bal, first, even), np.where(bal, head, even)
    if written is None or not np.any(kind == GIVEN):
        return StageCounts(kind, first, head, even, -1.0)
    fullest = even.copy()
    mtp = np.full(len(even), -1.0)
    given = kind == GIVEN
    v = (chunks == 2) & (vpp == 1)
    key = shape_key(pp, vpp, v)
    for k in np.unique(key[given]):
        sel = given & (key == k)
        i = int(np.flatnonzero(sel)[0])
        counts, h, m = written.ranks(int(pp[i]), int(vpp[i]), bool(v[i]))
        first[sel], head[sel], fullest[sel] = counts[0], counts[h], max(counts)
        mtp[sel] = counts[m] if m != h else -1.0
    return StageCounts(kind, first, head, fullest, mtp)
