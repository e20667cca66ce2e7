"""Command-line options applied to a scenario (compare, sweep, estimate, explain)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from moebench.errors import InputError
from moebench.inputs.scenario import MAX_CHIPS, MAX_TOKENS, MixOptionsSpec, ScenarioSpec
from moebench.inputs.schema import validate, validation_problems

_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}


def split_chip_stack(entry: str, option: str = "--chips") -> tuple[str, str | None]:
    """A chip entry ``CHIP`` or ``CHIP:STACK`` (the chip on a named stack release, e.g.
    ``ascend-910b:mindspeed-llm@2.1.0``) as (chip, stack or None for the chip's default)."""
    chip, sep, stack = entry.partition(":")
    if not chip or (sep and not stack):
        raise InputError(option, None, f"expected CHIP or CHIP:STACK, got {entry!r}")
    return chip, stack or None


def chip_with_stack(chip: str, stack: str | None) -> tuple[str, str | None]:
    """``--chip`` as compare's ``--chips`` entries take it, ``CHIP:STACK`` included, with
    ``--stack``: (chip, stack); a stack named both ways must be the same one."""
    name, named = split_chip_stack(chip, "--chip")
    if named is not None and stack is not None and named != stack:
        raise InputError("--stack", None, f"--chip {chip} already names stack {named}; "
                                          f"give the stack once")
    return name, named or stack


def parse_tokens(text: str, option: str = "--tokens") -> float:
    """'1T', '500B', '1.5e12', '800M' as a number of tokens."""
    raw = text.strip().upper().replace("_", "").replace(",", "")
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:E[+-]?[0-9]+)?)([KMBGTP]?)", raw)
    if not match:
        raise InputError(option, None,
                         f"expected a count like 1T, 500B or 1.5e12, got {text!r}")
    value = float(match.group(1)) * _SUFFIX.get(match.group(2), 1.0)
    if not (value > 0 and math.isfinite(value)):
        raise InputError(option, None, f"must be a positive number, got {text!r}")
    if value > MAX_TOKENS:
        raise InputError(option, None, f"{text!r} is beyond any training run; give at most "
                                       f"{MAX_TOKENS:.0e} tokens (1000T)")
    return value


# The Python API's scalar options by type (the CLI's parser types them already): each given
# value is checked before use, so that moebench.estimate(num_chips="8") is an InputError
# naming --num-chips, not a TypeError deep inside.
WHOLE_OPTIONS = ("num_chips", "tp", "pp", "vpp", "ep", "etp", "cp", "micro_batch", "seq_len",
                 "global_batch", "zero", "shard_group", "uncertainty", "seed", "sync_every",
                 "workers")
NUMBER_OPTIONS = ("expert_imbalance", "capacity_factor", "optimizer_offload", "fx_rate",
                  "deadline_days")
TEXT_OPTIONS = ("model", "chip", "scenario", "stack", "cp_kind", "recompute", "schedule",
                "precision", "dispatcher", "graphs", "optimizer_states", "pipeline_layout",
                "baseline", "price_basis", "market", "currency", "fabric", "placement",
                "strategy", "choose", "mix")
FLAG_OPTIONS = ("ep_overlap", "fsdp", "allow_oom", "include_unavailable")


def check_option_types(given: Mapping[str, Any]) -> None:
    """Each value of ``given`` (option name to value, None for not given) of its option's type,
    or an InputError naming the option (--num-chips for num_chips)."""
    for name, value in given.items():
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if name in WHOLE_OPTIONS and (isinstance(value, bool) or not isinstance(value, int)):
            raise InputError(flag, None, f"expected a whole number, got {value!r}")
        if name in NUMBER_OPTIONS and (isinstance(value, bool)
                                       or not isinstance(value, int | float)):
            raise InputError(flag, None, f"expected a number, got {value!r}")
        if name in TEXT_OPTIONS and not isinstance(value, str):
            raise InputError(flag, None, f"expected text, got {value!r}")
        if name in FLAG_OPTIONS and not isinstance(value, bool):
            raise InputError(flag, None, f"expected True or False, got {value!r}")


def check_num_chips(num_chips: int | None, option: str = "--num-chips") -> int | None:
    """A cluster size within 1 and :data:`MAX_CHIPS`, or an InputError naming the range."""
    if num_chips is not None and not 1 <= num_chips <= MAX_CHIPS:
        raise InputError(option, None, f"must be from 1 to {MAX_CHIPS:,} chips, got "
                                       f"{num_chips:,}")
    return num_chips


def stack_everywhere(chips: list[str], baseline: str | None, stack: str | None,
                     ) -> tuple[list[str], str | None]:
    """``--stack`` on compare and sweep: every chip entry that names no stack of its own
    (CHIP, not CHIP:STACK) runs on ``stack``, and the baseline follows its entry."""
    if stack is None:
        return chips, baseline
    if not stack.strip():
        raise InputError("--stack", None, "give a stack name or YAML path")
    entries = [c if ":" in c else f"{c}:{stack}" for c in chips]
    base = baseline or chips[0]
    return entries, (f"{base}:{stack}" if ":" not in base and base in chips else base)


def apply_options(sc: ScenarioSpec, **opts: Any) -> ScenarioSpec:
    """A copy of the scenario with the command line's options applied (None = keep)."""
    data = sc.model_dump()
    for key, value in opts.items():
        if value is None:
            continue
        if key == "cny_per_usd":
            data["pricing"]["cny_per_usd"] = {
                "value": value, "kind": "estimate", "low": value, "high": value,
                "source": "command line --fx-rate"}
        elif key in ("currency", "basis"):
            data["pricing"][key] = value
            if key == "basis" and value != "market":
                data["pricing"]["market"] = None
        elif key == "market":
            # One buyer's market: its prices, its currency (unless --currency says otherwise).
            from moebench.inputs.hardware_costs import MARKET_CURRENCY

            data["pricing"].update(basis="market", market=value)
            if opts.get("currency") is None:
                data["pricing"]["currency"] = MARKET_CURRENCY[value]
        elif key == "mix_options":
            data["mix_options"].update({k: v for k, v in value.items() if v is not None})
        elif key == "mixes":
            data["mixes"] = list(dict.fromkeys([*data["mixes"], *value]))
        elif key == "settings":
            # Given settings win over the scenario's; ep_overlap is a run field of a scenario.
            for name, v in value.items():
                if name == "ep_overlap":
                    data[name] = v
                else:
                    data["stack_options"][name] = v
        elif key == "plan":
            data["plan"].update({k: v for k, v in value.items() if v is not None})
        elif key == "run_changes":
            for name, v in value.items():
                if name in ("routing", "pipeline_flushes"):
                    raise InputError("--set", f"run.{name}", "is for estimate and explain (how "
                                     "a benchmark ran); a scenario routes as a trained router "
                                     "does and runs one pipeline schedule per step")
                if name == "expert_imbalance":
                    data[name] = {**data[name], "value": v, "low": v, "high": v,
                                  "source": f"command line --set run.{name}"}
                else:
                    data[name] = v
        else:
            data[key] = value
    return validate(ScenarioSpec, data, "command line")


def chip_entries(chips: str | None, baseline: str | None, stack: str | None,
                 scenario: str) -> tuple[list[str] | None, str | None]:
    """The --chips list (None: the scenario's) and the baseline, with --stack applied to every
    entry that names no stack of its own (:func:`stack_everywhere`)."""
    from moebench.inputs.scenario import load_scenario

    chip_list = None if chips is None else [c.strip() for c in chips.split(",") if c.strip()]
    if chip_list is not None and not chip_list:
        raise InputError("--chips", None, "give at least one chip")
    if stack is None:
        return chip_list, baseline
    return stack_everywhere(chip_list or load_scenario(scenario).chips, baseline, stack)


def modules_choice(text: str | None) -> tuple[str, ...] | None:
    """The --recompute-modules list, checked (None: not given)."""
    from moebench.inputs.run import parse_modules

    return None if text is None else parse_modules(text)


def offload_modules_choice(text: str | None) -> tuple[str, ...] | None:
    """The --offload-modules list, checked: () for none (None: not given, searched)."""
    from moebench.inputs.run import parse_offload_modules

    return None if text is None else parse_offload_modules(text)


def graph_scope_choice(text: str | None, option: str = "--graph-scope"
                       ) -> tuple[str, ...] | None:
    """The --graph-scope list, checked (None: not given, the release's whole scope)."""
    from moebench.inputs.release_spec import GRAPH_SCOPES
    from moebench.inputs.run import parse_modules

    return None if text is None else parse_modules(text, option, GRAPH_SCOPES, "graph scope")


def sharding_choice(zero: int | None, fsdp: bool, shard_group: int | None) -> str | None:
    """The plan's sharding from --zero, --fsdp and --shard-group (None: searched)."""
    from moebench.inputs.run import SHARDING

    if zero is not None and fsdp:
        raise InputError("--fsdp", None, "give --fsdp or --zero, not both (--fsdp is --zero 3)")
    if zero is not None and zero not in (0, 1, 2, 3):
        raise InputError("--zero", None, f"expected 0, 1, 2 or 3, got {zero}")
    if shard_group is not None:
        if zero is not None and zero != 3:
            raise InputError("--shard-group", None, "hybrid sharding shards parameters: it "
                                                    "needs --zero 3 or --fsdp, or neither")
        return "hsdp"
    if fsdp:
        return "zero-3"
    return None if zero is None else SHARDING[zero]


def search_choice(text: str | None) -> frozenset[str] | None:
    """The --search settings, checked (None: not given)."""
    from moebench.inputs.settings import parse_search

    return None if text is None else parse_search(text)


def mix_options(fabric: str | None, placement: str | None, sync_every: int | None,
                strategy: str | None, choose: str | None) -> dict[str, Any]:
    """The mix options given on the command line, as scenario ``mix_options`` fields, checked
    here so that a bad one is named by its option (--strategy), not its scenario field."""
    given = {"fabric": fabric, "placement": placement, "sync_every_steps": sync_every,
             "strategy": strategy, "choose": choose}
    found = validation_problems(MixOptionsSpec, {k: v for k, v in given.items() if v is not None})
    if found:
        field, message = found[0]
        raise InputError(MIX_OPTION_FLAGS.get(field, field), None, message)
    return given


# The command-line option of each scenario mix_options field.
MIX_OPTION_FLAGS = {"fabric": "--fabric", "placement": "--placement",
                    "sync_every_steps": "--sync-every", "strategy": "--strategy",
                    "choose": "--choose"}


def settings_choice(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The --settings given, checked: "NAME=VALUE,..." or a mapping (True/False for on/off)."""
    from moebench.inputs.settings import parse_settings

    if isinstance(value, Mapping):
        words = {True: "on", False: "off"}
        value = ",".join(f"{k}={words[v] if isinstance(v, bool) else v}"
                         for k, v in value.items())
    elif value is not None and not isinstance(value, str):
        raise InputError("--settings", None,
                         f"expected 'NAME=VALUE,...' text or a mapping, got {value!r}")
    return parse_settings(value)


def check_compare_options(*, uncertainty: int, num_chips: int | None, seq_len: int | None,
                          global_batch: int | None, deadline_days: float | None,
                          currency: str | None, price_basis: str | None, market: str | None,
                          precision: str | None, fx_rate: float | None) -> None:
    """compare's options checked together, each bad one an InputError naming it."""
    from moebench.commands.shared.pricing import BASES
    from moebench.inputs.hardware_costs import MARKETS

    if uncertainty < 0 or uncertainty > 100_000:
        raise InputError("--uncertainty", None, f"must be 0..100000 samples, got {uncertainty}")
    for name, value in (("--num-chips", num_chips), ("--seq-len", seq_len),
                        ("--global-batch", global_batch)):
        if value is not None and value <= 0:
            raise InputError(name, None, f"must be a positive whole number, got {value}")
    check_num_chips(num_chips)
    if deadline_days is not None and num_chips is not None:
        raise InputError("--deadline-days", None, "give --num-chips or --deadline-days, not both")
    if currency is not None and currency.upper() not in ("CNY", "USD"):
        raise InputError("--currency", None, f"expected CNY or USD, got {currency!r}")
    if price_basis is not None and price_basis not in BASES:
        raise InputError("--price-basis", None,
                         f"expected one of {', '.join(BASES)}, got {price_basis!r}")
    if market is not None and market not in MARKETS:
        raise InputError("--market", None, f"expected one of {', '.join(MARKETS)}, got "
                                           f"{market!r}")
    if market is not None and price_basis not in (None, "market"):
        raise InputError("--market", None, f"prices one buyer's market; drop --price-basis "
                                           f"{price_basis} (or --market)")
    if price_basis == "market" and market is None:
        raise InputError("--price-basis", None, "market needs --market cn or us")
    if precision is not None and precision not in ("bf16", "fp8", "auto"):
        raise InputError("--precision", None, f"expected bf16, fp8 or auto, got {precision!r}")
    if fx_rate is not None and not fx_rate > 0:
        raise InputError("--fx-rate", None, f"must be a positive number, got {fx_rate}")
