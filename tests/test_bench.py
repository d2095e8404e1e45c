"""`reslab bench` runs end to end and writes what docs/performance.md reads from it; its theoretical peak follows from
the CPU's flags and clock or the GPU's datasheet (timings themselves are not tested: speeds vary)."""

from __future__ import annotations

import json

import pytest
from conftest import TINY

from reslab import bench, cli
from reslab.bench.gpu_datasheets import lookup
from reslab.bench.peak import Clock, cpu_peak, gpu_peak, parse_clock, physical_cores
from reslab.cli import bench as bench_command
from reslab.models import CifarNet


def run_bench(*args: str) -> int:
    """``reslab bench`` on residual-8 with the tiny preset's data (384 images at batch 32: 10 steps an epoch)."""
    return bench_command.main(["--depths", "8", "--models", "residual", "--repeats", "1", *args, "--", *TINY])


@pytest.mark.slow
def test_the_benchmark_runs_across_epoch_ends_and_writes_its_json(tmp_path):
    out = tmp_path / "bench.json"
    # 12 timed steps after 2 warm-up steps cross an epoch end on every path.
    assert run_bench("--steps", "12", "--warmup", "2", "--out", str(out)) == 0
    report = json.loads(out.read_text())
    assert report["matmul_gflop_s"] > 0 and report["machine"]["torch_threads"] >= 1
    assert report["peak_gflop_s"] == report["peak"]["gflop_s"]
    assert [(r["model"], r["depth"]) for r in report["rows"]] == [("residual", 8)]
    for row in report["rows"]:
        assert {name: len(times) for name, times in row["seconds_per_step"].items()} == {
            "loop": 1,
            "full": 1,
            "bare": 1,
        }
        assert row["ratio"] == row["reslab_img_s"] / row["loop_img_s"]
        assert row["instrument_cost"] == 1 - row["reslab_img_s"] / row["reslab_no_instruments_img_s"]
        assert row["fraction_of_matmul"] == row["achieved_gflop_s"] / report["matmul_gflop_s"] > 0
        if report["peak_gflop_s"] is not None:
            assert row["fraction_of_peak"] == row["achieved_gflop_s"] / report["peak_gflop_s"] > 0
        assert row["channels_last"] is True and row["compile"] is None


def test_multiply_adds_are_counted_layer_by_layer():
    net = CifarNet(8, "A", in_channels=1, num_classes=10, width=4)
    # stem 1->4 at 14x14; stage1 two 4->4 convs at 14x14; stage2 4->8 (stride 2) and 8->8 at 7x7;
    # stage3 8->16 (stride 2) and 16->16 at 4x4; fc 16->10. MACs of a 3x3 conv: H*W*out*in*9.
    expected = (
        14 * 14 * 4 * 1 * 9
        + 2 * 14 * 14 * 4 * 4 * 9
        + 7 * 7 * 8 * 4 * 9
        + 7 * 7 * 8 * 8 * 9
        + 4 * 4 * 16 * 8 * 9
        + 4 * 4 * 16 * 16 * 9
        + 16 * 10
    )
    assert bench.macs_per_image(net, (1, 14, 14)) == expected
    assert net.training  # counting runs in eval mode and hands the net back in train mode


@pytest.mark.slow
def test_profile_writes_where_the_time_went(tmp_path):
    profile = ["--profile", str(tmp_path / "prof")]
    assert (
        run_bench("--steps", "4", "--warmup", "2", "--paths", "bare", "--out", str(tmp_path / "b.json"), *profile) == 0
    )
    text = (tmp_path / "prof" / "residual-8.txt").read_text()
    first = text.splitlines()[0]
    assert first.endswith("ms per step under the profiler, 4 steps") and float(first.split()[0]) > 0
    assert "aten::convolution" in text and "Self CPU time total" in text


def fake_cpuinfo(flags: str, logical: int = 2, cores: int = 2, vendor: str = "GenuineIntel", family: int = 6) -> str:
    """A /proc/cpuinfo text: ``logical`` processors on ``cores`` physical cores of one package."""
    blocks = [
        f"processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nphysical id\t: 0\n"
        f"core id\t\t: {i % cores}\ncpu MHz\t\t: 2596.142\nflags\t\t: {flags}\n"
        for i in range(logical)
    ]
    return "\n".join(blocks)


BASE = "fpu sse sse2 avx fma avx2"
CLOCK = Clock(3.0, "test")


@pytest.mark.parametrize(
    ("flags", "dtype", "flop_per_cycle", "says"),
    [
        (BASE + " avx512f", "fp32", 64, "AVX-512: 16 fp32 lanes × 2 FMA units (assumed) × 2"),
        (BASE, "fp32", 32, "AVX2/FMA: 8 fp32 lanes × 2 FMA units (assumed) × 2"),
        ("fpu sse sse2 avx", "fp32", 16, "AVX, no FMA"),
        ("fpu sse sse2", "fp32", 8, "SSE, no FMA"),
        (BASE + " avx512f avx512_bf16", "bf16", 128, "AVX512_BF16: 16 fp32 lanes × 2 bf16 products each"),
        (BASE + " avx512f avx512_bf16 amx_tile amx_bf16", "bf16", 1024, "AMX-BF16"),
        (BASE + " avx512f avx512_bf16 amx_tile amx_bf16", "fp32", 64, "AVX-512"),
    ],
)
def test_cpu_peak_is_cores_times_clock_times_flops_per_cycle_from_the_flags(flags, dtype, flop_per_cycle, says):
    peak = cpu_peak(dtype, fake_cpuinfo(flags), CLOCK, threads=2)
    assert peak.gflop_s == pytest.approx(2 * 3.0 * flop_per_cycle)
    assert peak.derivation.startswith(f"2 cores × 3.00 GHz × {flop_per_cycle} FLOP/cycle ({says}")
    assert f"= {peak.gflop_s:.1f} GFLOP/s {dtype}, theoretical; clock: test" in peak.derivation
    facts = peak.as_dict()
    assert facts["basis"] == "theoretical" and facts["flop_per_cycle_per_core"] == flop_per_cycle
    assert facts["cores"] == 2 and facts["clock_ghz"] == 3.0
    assert facts["fma_units"] == 2 and facts["fma_units_basis"] == "assumed"


def test_cpu_peak_counts_the_cores_torch_uses_and_states_its_assumptions():
    avx512 = BASE + " avx512f"
    # SMT: 4 logical processors on 2 cores; torch's 4 threads share 2 cores' vector units.
    assert physical_cores(fake_cpuinfo(avx512, logical=4, cores=2)) == 2
    assert cpu_peak("fp32", fake_cpuinfo(avx512, logical=4, cores=2), CLOCK, threads=4).facts["cores"] == 2
    assert cpu_peak("fp32", fake_cpuinfo(avx512, logical=4, cores=4), CLOCK, threads=1).gflop_s == 3.0 * 64
    one_unit = cpu_peak("fp32", fake_cpuinfo(avx512), CLOCK, threads=2, fma_units=1)
    assert one_unit.gflop_s == 2 * 3.0 * 32 and "16 fp32 lanes × 1 FMA unit (given) × 2" in one_unit.derivation


def test_zen4_avx512_counts_as_one_fma_unit():
    amd = {"vendor": "AuthenticAMD", "family": 25}
    zen4 = cpu_peak("fp32", fake_cpuinfo(BASE + " avx512f", **amd), CLOCK, threads=2)
    assert zen4.facts["flop_per_cycle_per_core"] == 32 and zen4.facts["fma_units"] == 1
    assert "1 FMA unit (Zen 4: a 512-bit FMA is two 256-bit halves)" in zen4.derivation
    zen4_bf16 = cpu_peak("bf16", fake_cpuinfo(BASE + " avx512f avx512_bf16", **amd), CLOCK, threads=2)
    assert zen4_bf16.facts["flop_per_cycle_per_core"] == 64
    zen3 = cpu_peak("fp32", fake_cpuinfo(BASE, **amd), CLOCK, threads=2)  # AVX2: two 256-bit FMA pipes
    assert zen3.facts["flop_per_cycle_per_core"] == 32 and zen3.facts["fma_units"] == 2
    zen5 = cpu_peak("fp32", fake_cpuinfo(BASE + " avx512f", vendor="AuthenticAMD", family=26), CLOCK, threads=2)
    assert zen5.facts["flop_per_cycle_per_core"] == 64


def test_without_native_bf16_or_a_clock_there_is_no_peak_and_it_says_why():
    emulated = cpu_peak("bf16", fake_cpuinfo(BASE + " avx512f"), CLOCK, threads=2)
    assert emulated.gflop_s is None and "emulated" in emulated.derivation and emulated.as_dict()["basis"] is None
    arm = cpu_peak("fp32", "processor\t: 0\nFeatures\t: fp asimd\n", CLOCK, threads=1)
    assert arm.gflop_s is None and "no x86 vector flags" in arm.derivation
    no_clock = cpu_peak("fp32", fake_cpuinfo(BASE), None, threads=2)
    assert no_clock.gflop_s is None and "no clock" in no_clock.derivation


def test_the_clock_is_the_maximum_where_listed_else_the_current_one():
    cpuinfo = fake_cpuinfo(BASE)
    assert parse_clock(cpuinfo, cpufreq_max_khz="3700000\n") == Clock(3.7, parse_clock(cpuinfo, "3700000").source)
    assert parse_clock(cpuinfo, cpufreq_max_khz="3700000").source.startswith("max, from /sys/")
    lscpu = "Model name: AMD EPYC\nCPU max MHz:                   3500.0000\nCPU min MHz: 400.0000\n"
    assert parse_clock(cpuinfo, None, lscpu) == Clock(3.5, "max, from lscpu 'CPU max MHz'")
    current = parse_clock(cpuinfo, None, "Model name: AMD EPYC\n")
    assert current.ghz == pytest.approx(2.596142) and current.source.startswith("current, from /proc/cpuinfo")
    assert parse_clock("flags : sse\n") is None


@pytest.mark.parametrize(
    ("device_name", "model"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA A100-SXM4-80GB", "A100 SXM"),
        ("NVIDIA A100-PCIE-40GB", "A100 PCIe"),
        ("NVIDIA A100 80GB PCIe", "A100 PCIe"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA A10G", None),
        ("NVIDIA H100 NVL", None),
        ("Tesla T4", None),
    ],
)
def test_gpus_are_looked_up_by_name(device_name, model):
    row = lookup(device_name)
    assert (row.model if row else None) == model


def test_gpu_peak_is_the_dense_datasheet_figure_or_none_for_an_unknown_gpu():
    bf16 = gpu_peak("bf16", "NVIDIA H100 80GB HBM3")
    assert bf16.gflop_s == pytest.approx(989.4e3)
    assert bf16.derivation == "H100 SXM datasheet, tensor cores, dense: 989.4 TFLOP/s bf16, theoretical"
    tf32 = gpu_peak("tf32", "NVIDIA A100-SXM4-40GB")
    assert tf32.gflop_s == pytest.approx(156e3) and "cudnn.allow_tf32" in tf32.derivation
    assert gpu_peak("fp32", "NVIDIA L4").gflop_s == pytest.approx(30.3e3)
    unknown = gpu_peak("bf16", "NVIDIA Imaginary X1")
    assert unknown.gflop_s is None and "no datasheet figure for 'NVIDIA Imaginary X1'" in unknown.derivation
    assert unknown.as_dict()["basis"] is None and unknown.as_dict()["gpu"] == "NVIDIA Imaginary X1"


@pytest.mark.slow
def test_reslab_bench_writes_the_peak_its_derivation_and_the_matmul_rate(tmp_path, capsys):
    out = tmp_path / "bench.json"
    overrides = [o for o in TINY if not o.startswith(("depth=", "trainer.max_steps", "trainer.val_every"))]
    argv = ["bench", "--depths", "8", "--models", "residual", "--steps", "2", "--warmup", "1", "--repeats", "1"]
    argv += ["--paths", "loop", "--cpu-clock-ghz", "3", "--fma-units", "1", "--out", str(out), *overrides]
    assert cli.main(argv) == 0
    report = json.loads(out.read_text())
    printed = capsys.readouterr().out.splitlines()
    peak = report["peak"]
    assert f"peak: {peak['derivation']}" in printed and peak["dtype"] == "fp32" and peak["device"] == "cpu"
    assert peak["clock_ghz"] == 3.0 and peak["clock_source"] == "given (--cpu-clock-ghz)"
    assert peak["fma_units"] == 1 and peak["fma_units_basis"] == "given"
    if peak["flop_per_cycle_per_core"] is not None:  # an x86 CPU
        assert peak["basis"] == "theoretical"
        assert peak["gflop_s"] == pytest.approx(peak["cores"] * 3.0 * peak["flop_per_cycle_per_core"])
        assert f"{peak['gflop_s']:.1f} GFLOP/s fp32, theoretical" in peak["derivation"]
    matmul = report["matmul"]
    assert matmul["best_gflop_s"] >= matmul["median_gflop_s"] > 0 and matmul["dtype"] == "fp32"
    assert matmul["timer"].startswith("torch.utils.benchmark.Timer") and matmul["runs"] >= 1
    assert any(line.startswith(f"matmul: {matmul['n']}² fp32 product, best ") for line in printed)
    (row,) = report["rows"]
    assert row["fraction_of_matmul"] == row["achieved_gflop_s"] / matmul["best_gflop_s"]
    assert row["reslab_img_s"] is None and row["ratio"] is None and row["loop_img_s"] > 0


def test_a_user_error_is_one_line_and_exit_status_2(capsys):
    assert cli.main(["bench", "--depths", "8", "--out", "unused.json", "debug=tiny", "trainer.accelerator=tpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reslab bench: error: unknown trainer.accelerator='tpu'")


@pytest.mark.slow
def test_loop_overrides_reach_the_hand_loop_alone(tmp_path, monkeypatch):
    import reslab.bench.step as bench_cli

    seen = {}
    real = {"loop": bench_cli.time_plain_loop, "reslab": bench_cli.time_reslab}

    def loop(cfg, *args):
        seen["loop"] = cfg.model.width
        return real["loop"](cfg, *args)

    def reslab(cfg, *args, **kwargs):
        seen["reslab"] = cfg.model.width
        return real["reslab"](cfg, *args, **kwargs)

    monkeypatch.setattr(bench_cli, "time_plain_loop", loop)  # wrapped, still timed: only the config is watched
    monkeypatch.setattr(bench_cli, "time_reslab", reslab)
    out = tmp_path / "bench.json"
    argv = ("--paths", "loop", "full", "--steps", "2", "--warmup", "1", "--loop-overrides", "model.width=8")
    assert run_bench(*argv, "--out", str(out)) == 0
    assert seen == {"loop": 8, "reslab": 4}  # debug=tiny's width for reslab's path
    assert json.loads(out.read_text())["rows"][0]["loop_overrides"] == ["model.width=8"]
