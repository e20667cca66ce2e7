"""Bad input: one clear line naming file, field and fix; exit code 2; never a traceback."""

import pytest

from moebench.inputs.catalog import catalog_dir

H800 = (catalog_dir("hardware") / "h800.yaml").read_text()


def _bad_profile(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _assert_one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


CASES = {
    "malformed yaml": (H800.replace("name: h800", "name: [h800"), ["malformed YAML"]),
    "missing field": (H800.replace("  hbm_bandwidth_tb_per_s:", "  hbm_bw_unused:"),
                      ["memory.hbm_bandwidth_tb_per_s", "missing"]),
    "unknown field": (H800.replace("vendor: NVIDIA", "vendor: NVIDIA\ncolour: green"),
                      ["colour", "unknown field"]),
    "wrong unit": (H800.replace("hbm_capacity_gb:", "hbm_capacity_tb:"),
                   ["hbm_capacity_tb", "unknown field"]),
    "negative": (H800.replace("{value: 989.4,", "{value: -989.4,"),
                 ["compute.bf16_dense_tflops.value", "greater than zero"]),
    "zero": (H800.replace("hbm_capacity_gb: {value: 85.52,", "hbm_capacity_gb: {value: 0,"),
             ["hbm_capacity_gb.value", "greater than zero"]),
    "nan": (H800.replace("{value: 989.4,", "{value: .nan,"), ["finite"]),
    "string": (H800.replace("{value: 989.4,", "{value: lots,"),
               ["bf16_dense_tflops.value", "expected a number"]),
    "estimate without range": (H800.replace("min_kernel_us: {value: 2.5, kind: estimate, "
                                            "low: 1.5, high: 4,",
                                            "min_kernel_us: {value: 2.5, kind: estimate,"),
                               ["min_kernel_us", "low and high"]),
    "bad kind": (H800.replace("{value: 989.4, kind: datasheet", "{value: 989.4, kind: rumour"),
                 ["bf16_dense_tflops.kind", "rumour"]),
    "object tag": ("!!python/object/apply:os.system ['echo pwned']\n", ["tag"]),
    "alias": ("a: &x [1, 2]\nb: *x\n", ["aliases"]),
    "not a mapping": ("- 1\n- 2\n", ["mapping"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_profiles_check_bad_hardware(tmp_path, cli, case):
    text, needles = CASES[case]
    path = _bad_profile(tmp_path, text)
    result = cli("profiles", "check", path)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    for needle in [path, *needles]:
        assert needle in result.output, result.output


@pytest.mark.parametrize("case", ["negative", "unknown field", "object tag", "string"])
def test_estimate_with_bad_chip_file(tmp_path, cli, case):
    text, needles = CASES[case]
    path = _bad_profile(tmp_path, text)
    result = cli("estimate", "--model", "ling-lite", "--chip", path, "--num-chips", "8")
    _assert_one_line_error(result, path, *needles)


def test_missing_file(cli, tmp_path):
    missing = str(tmp_path / "nope.yaml")
    _assert_one_line_error(cli("profiles", "show", missing), missing, "does not exist")


def test_directory_instead_of_file(cli, tmp_path):
    d = tmp_path / "dir.yaml"
    d.mkdir()
    _assert_one_line_error(cli("profiles", "show", str(d)), "directory")


def test_binary_junk(cli, tmp_path):
    path = tmp_path / "junk.yaml"
    path.write_bytes(b"\x00\x01\xff" * 100)
    _assert_one_line_error(cli("profiles", "show", str(path)), "binary")


def test_wrong_encoding(cli, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    _assert_one_line_error(cli("profiles", "show", str(path)), "UTF-8")


def test_huge_file_refused_quickly(cli, tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * 50_000_000 + b"\n")
    _assert_one_line_error(cli("profiles", "show", str(path)), "limited")


def test_unknown_catalog_name_lists_known(cli):
    _assert_one_line_error(cli("estimate", "--model", "ling-lite", "--chip", "h900",
                               "--num-chips", "8"), "unknown hardware profile", "h800")


def test_bad_model_profile(cli, tmp_path):
    text = (catalog_dir("models") / "ling-lite.yaml").read_text().replace(
        "num_layers: 28", "num_layers: -28")
    path = _bad_profile(tmp_path, text)
    _assert_one_line_error(cli("models", "show", path), "num_layers")


def test_bad_numbers_on_the_command_line(cli):
    _assert_one_line_error(cli("estimate", "--model", "ling-lite", "--chip", "h800",
                               "--num-chips", "0"), "--num-chips")
    _assert_one_line_error(cli("estimate", "--model", "ling-lite", "--chip", "a100",
                               "--num-chips", "8", "--precision", "fp8"), "no FP8")
    _assert_one_line_error(cli("models", "show", "ling-lite", "--seq-len", "0"), "--seq-len")



@pytest.mark.parametrize("option, value, needle", [
    ("--strategy", "foo", "'hetero-dp'"), ("--choose", "x", "'cheapest'"),
    ("--placement", "x", "'separate-sites'"), ("--sync-every", "0", "1")])
def test_a_bad_mix_option_is_named_by_its_option(cli, option, value, needle):
    """Mix options are named as typed, not as the scenario field they fill
    (mix_options.strategy)."""
    result = cli("estimate", "-m", "ling-lite", "--mix", "h800:8+ascend-910b:8", option, value)
    _assert_one_line_error(result, f"error: {option}: ", needle)
    assert "mix_options" not in result.output


def test_validate_names_a_bad_stack_as_the_option(cli):
    """An unknown --stack is the option's fault, not line 2 of the runs file."""
    result = cli("validate", "--stack", "nonexist")
    _assert_one_line_error(result, "error: --stack: unknown stacks profile 'nonexist'")
    assert "measured-runs.csv" not in result.output

def test_a_file_that_cannot_be_read(cli):
    # /proc/self/mem exists but reading it fails with an I/O error, even for root.
    _assert_one_line_error(cli("profiles", "show", "/proc/self/mem"), "cannot be read")


def test_a_schedule_the_release_lacks_names_a_stack_that_has_it(cli):
    """DualPipe is DeepSeek's (hai-llm), not Megatron-Core's: asked on the H800's default
    stack, the error names the shipped NVIDIA stack that implements it."""
    result = cli("estimate", "--model", "deepseek-v3", "--chip", "h800", "--num-chips", "2048",
                 "--tp", "1", "--pp", "16", "--ep", "64", "--schedule", "dualpipe")
    _assert_one_line_error(result, "--schedule", "does not implement dualpipe",
                           "--stack hai-llm@v3")


def test_a_port_that_is_not_a_dask_scheduler_is_one_line(cli, monkeypatch):
    """Whatever the address answers (here a handshake that decodes garbage into a huge
    allocation, as a non-Dask service can), the user gets one line, not a traceback."""
    distributed = pytest.importorskip("dask.distributed")

    def garbage(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.07 EiB for an array")

    monkeypatch.setattr(distributed, "Client", garbage)
    result = cli("sweep", "--vary", "num_chips=8", "--dask-scheduler", "tcp://10.0.0.5:8786")
    _assert_one_line_error(result, "--dask-scheduler", "cannot reach a Dask scheduler",
                           "MemoryError")
