"""The Python API: the functions the commands call, with the CLI's option names, returning
typed records with ``.to_frame()``; the CLI's JSON is the same answer."""

from __future__ import annotations

import json

import pytest

import moebench
from moebench.errors import InputError
from tests.test_measured_runs import GOOD, HEADER


def test_estimate_is_the_cli_estimate(cli):
    est = moebench.estimate(model="ling-plus", chip="h800", num_chips=1024)
    out = json.loads(cli("estimate", "--model", "ling-plus", "--chip", "h800", "--num-chips",
                         "1024", "-f", "json").output)
    assert est.step_time_s == pytest.approx(out["step_time_s"], rel=1e-12)
    assert est.plan == out["plan"]
    df = est.to_frame()
    assert len(df) == 1 and df.loc[0, "plan.tp"] == est.plan["tp"]
    assert df.loc[0, "mfu"] == pytest.approx(est.mfu)


def test_estimate_takes_options_as_the_cli_spells_them():
    """Lists as "a,b" or as a sequence, --set as strings or a mapping, --zero and --fsdp."""
    a = moebench.estimate(model="qwen3-30b-a3b", chip="h800", num_chips=16, tp=1, pp=1, ep=8,
                          recompute="selective", recompute_modules=["moe_act", "layernorm"],
                          zero=1, set={"scale_out.bandwidth_gb_per_s": 25})
    b = moebench.estimate(model="qwen3-30b-a3b", chip="h800", num_chips=16, tp=1, pp=1, ep=8,
                          recompute="selective", recompute_modules="moe_act,layernorm",
                          zero=1, set=["scale_out.bandwidth_gb_per_s=25"])
    assert a.step_time_s == b.step_time_s and a.plan["sharding"] == "zero-1"
    assert set(a.plan["recompute_modules"]) == {"moe_act", "layernorm"}


def test_bad_input_raises_input_error_naming_the_option():
    with pytest.raises(InputError) as err:
        moebench.estimate(model="ling-plus", chip="h800", num_chips=1024, zero=5)
    assert err.value.where == "--zero" and "expected 0, 1, 2 or 3" in str(err.value)
    with pytest.raises(InputError):
        moebench.compare(price_basis="barter")



@pytest.mark.parametrize("call, option", [
    (lambda: moebench.estimate(model="ling-lite", chip="h800", num_chips="8"), "--num-chips"),
    (lambda: moebench.estimate(model="ling-lite", chip="h800", num_chips=8, seq_len=4096.5),
     "--seq-len"),
    (lambda: moebench.estimate(model="ling-lite", chip=["h800"], num_chips=8), "--chip"),
    (lambda: moebench.estimate(model="ling-lite", chip="h800", num_chips=8, fsdp=1), "--fsdp"),
    (lambda: moebench.explain(model="ling-lite", chip="h800", num_chips=8, tp="2"), "--tp"),
    (lambda: moebench.compare(num_chips=True), "--num-chips"),
    (lambda: moebench.compare(fx_rate="7"), "--fx-rate"),
    (lambda: moebench.sweep({"num_chips": [8]}, workers=1.5), "--workers"),
    (lambda: moebench.estimate_mix("h800:8+ascend-910b:8", model="ling-lite", sync_every="9"),
     "--sync-every"),
])
def test_a_value_of_the_wrong_type_is_named_by_its_option(call, option):
    """The API checks its scalar options' types as the CLI's parser does: a string for a count
    (or 4096.5 tokens, or a list for a chip) is an InputError naming the option."""
    with pytest.raises(InputError) as err:
        call()
    assert err.value.where == option


@pytest.mark.parametrize("call, option", [
    (lambda: moebench.compare(chips=5), "--chips"),
    (lambda: moebench.compare(chips=["h800", 5]), "--chips"),
    (lambda: moebench.compare(model=3), "--model"),
    (lambda: moebench.compare(mix=7), "--mix"),
    (lambda: moebench.compare(set=5), "--set"),
    (lambda: moebench.compare(set={1: 2}), "--set"),
    (lambda: moebench.compare(search=5), "--search"),
    (lambda: moebench.compare(settings=5), "--settings"),
    (lambda: moebench.sweep(5), "--vary"),
    (lambda: moebench.sweep({"seq_len": True}), "--vary"),
    (lambda: moebench.sweep(["seq_len=4096"], model=[1]), "--model"),
    (lambda: moebench.estimate(model="ling-lite", chip="h800", num_chips=8,
                               recompute_modules=5), "--recompute-modules"),
    (lambda: moebench.explain(model="ling-lite", chip="h800", num_chips=8, graph_scope=[1]),
     "--graph-scope"),
])
def test_a_list_option_of_the_wrong_type_is_named_by_its_option(call, option):
    """Options that take text or a list of text (chips, models, mixes, --set, --search, ...)
    name themselves when given anything else: each of these was a TypeError from inside."""
    with pytest.raises(InputError) as err:
        call()
    assert err.value.where == option

def test_compare_is_the_cli_compare(cli):
    cmp = moebench.compare(chips=["h800", "ascend-910b"], tokens="500B")
    out = json.loads(cli("compare", "--chips", "h800,ascend-910b", "--tokens", "500B",
                         "-f", "json").output)
    df = cmp.to_frame()
    assert list(df["entry"]) == ["h800", "ascend-910b"]
    for row, r in zip(out["rows"], df.to_dict("records"), strict=True):
        assert r["days"] == pytest.approx(row["days"], rel=1e-12)
        assert r["break_even_price_ratio"] == pytest.approx(row["break_even_price_ratio"])
        assert r["plan.tp"] == row["plan"]["tp"]



def test_compare_takes_one_mix_as_text_or_a_list():
    """mix="A:n+B:m" is one mixed cluster, as a one-item list is (the text was read as a list
    of its characters: "--mix: expected CHIP:COUNT ..., got 'h'")."""
    one = moebench.compare(mix="h800:8+ascend-910b:8", model="ling-lite", num_chips=16,
                           chips="h800")
    listed = moebench.compare(mix=["h800:8+ascend-910b:8"], model="ling-lite", num_chips=16,
                              chips="h800")
    assert list(one.to_frame()["entry"]) == ["h800", "h800:8+ascend-910b:8"]
    assert list(one.to_frame()["days"]) == list(listed.to_frame()["days"])


def test_estimate_mix_is_the_cli_mix_estimate(cli):
    """moebench.estimate_mix is `estimate --mix`: the same configurations and step times, one
    frame row each (the chosen strategy marked), and a bad mix option named as the option."""
    est = moebench.estimate_mix("h800:8+ascend-910b:8", model="ling-lite", tp=1)
    out = json.loads(cli("estimate", "--model", "ling-lite", "--mix", "h800:8+ascend-910b:8",
                         "--tp", "1", "-f", "json").output)
    listed = [*out["strategies"], *out["alone"], *([out["apart"]] if out["apart"] else [])]
    df = est.to_frame()
    assert [c.removesuffix(" (chosen)") for c in df["configuration"]] == \
        [o["configuration"] for o in listed]
    assert df["step_time_s"].tolist() == pytest.approx([o["step_time_s"] for o in listed])
    assert (df["configuration"] == f"{est.chosen} (chosen)").sum() == 1
    assert {t["chip"] for t in out["types"]} == {"h800", "ascend-910b"}
    with pytest.raises(InputError) as err:
        moebench.estimate_mix("h800:8+ascend-910b:8", model="ling-lite", strategy="foo")
    assert err.value.where == "--strategy"


def test_explain_is_the_cli_explain(cli):
    """moebench.explain is `explain`: the same plan and time split; its frame one row per
    item, the time rows' shares adding up to the step."""
    ex = moebench.explain(model="ling-lite", chip="h800", num_chips=64)
    out = json.loads(cli("explain", "--model", "ling-lite", "--chip", "h800", "--num-chips",
                         "64", "-f", "json").output)
    assert ex.estimate.plan == out["estimate"]["plan"]
    assert [r["seconds"] for r in ex.time_split] == \
        pytest.approx([r["seconds"] for r in out["time_split"]])
    df = ex.to_frame()
    time = df[df["section"] == "time"]
    assert len(time) == len(out["time_split"])
    assert time["share"].sum() == pytest.approx(1.0, abs=1e-6)
    assert set(df["section"]) == {"time", "memory", "sensitivity +10%"}

@pytest.mark.slow
def test_validate_and_its_frame(tmp_path):
    path = tmp_path / "my-runs.csv"
    path.write_text(f"{HEADER}\n{GOOD}\n")
    v = moebench.validate(path)
    df = v.to_frame()
    assert list(df["id"]) == ["mine"]
    # speed error = predicted / measured - 1, against the 9,299 tokens/s the row gives
    assert df.loc[0, "measured"] == 9299
    assert df.loc[0, "calibrated_error"] == pytest.approx(v.runs[0].calibrated_error)


def test_sweep_takes_a_mapping_and_returns_its_frame(cli):
    s = moebench.sweep({"num_chips": [256, 512]}, chips="h800", model="qwen3-30b-a3b")
    df = s.to_frame()
    assert list(df["num_chips"]) == [256, 512] and s.varied == {"num_chips": [256, 512]}
    # A value as --vary writes it, or one number, is the same grid (text was split into its
    # characters before: "256,512" swept 2, 5, 6, 5, 1 and 2 chips).
    text = moebench.sweep({"num_chips": "256,512"}, chips="h800", model="qwen3-30b-a3b")
    assert text.varied == s.varied
    assert list(text.to_frame()["step_time_s"]) == list(df["step_time_s"])
    one = moebench.sweep({"num_chips": 512}, chips="h800", model="qwen3-30b-a3b")
    assert one.varied == {"num_chips": [512]}
    out = json.loads(cli("sweep", "--chips", "h800", "--model", "qwen3-30b-a3b", "--vary",
                         "num_chips=256,512", "-f", "json").output)
    assert [r["step_time_s"] for r in out["rows"]] == pytest.approx(list(df["step_time_s"]))


def test_the_readme_python_examples_run(capsys):
    """Every ```python block of the README's "Use from Python" section runs as written."""
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "ascend-910b" in out and "break_even_price_ratio" in out
