"""`make bench` runs end to end and writes what the README reads from it (timings themselves are not tested)."""

from __future__ import annotations

import json

from conftest import TINY

from reslab import bench
from reslab.models import build_net


def test_the_benchmark_runs_across_epoch_ends_and_writes_its_json(tmp_path):
    out = tmp_path / "bench.json"
    # 384 training images at batch 32 are 10 batches per epoch; 14 steps cross an epoch end on every path.
    overrides = [o for o in TINY if not o.startswith(("depth=", "trainer.max_steps", "trainer.val_every"))]
    assert (
        bench.main(
            [
                "--depths",
                "8",
                "--models",
                "residual",
                "--steps",
                "12",
                "--warmup",
                "2",
                "--repeats",
                "1",
                "--out",
                str(out),
                *overrides,
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["peak_gflop_s"] > 0 and report["machine"]["cores"] >= 1
    assert [(r["model"], r["depth"]) for r in report["rows"]] == [("residual", 8)]
    for row in report["rows"]:
        assert {name: len(times) for name, times in row["seconds_per_step"].items()} == {
            "loop": 1,
            "full": 1,
            "bare": 1,
        }
        assert row["ratio"] == row["reslab_img_s"] / row["loop_img_s"]
        assert row["instrument_cost"] == 1 - row["reslab_img_s"] / row["reslab_no_instruments_img_s"]
        assert 0 < row["fraction_of_peak"] and row["channels_last"] is True and row["compile"] is None


def test_multiply_adds_are_counted_layer_by_layer():
    net = build_net(8, "A", in_channels=1, num_classes=10, width=4)
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


def test_profile_writes_where_the_time_went(tmp_path):
    overrides = [o for o in TINY if not o.startswith(("depth=", "trainer.max_steps", "trainer.val_every"))]
    assert (
        bench.main(
            [
                "--depths",
                "8",
                "--models",
                "residual",
                "--steps",
                "4",
                "--warmup",
                "2",
                "--repeats",
                "1",
                "--paths",
                "bare",
                "--out",
                str(tmp_path / "b.json"),
                "--profile",
                str(tmp_path / "prof"),
                *overrides,
            ]
        )
        == 0
    )
    text = (tmp_path / "prof" / "residual-8.txt").read_text()
    first = text.splitlines()[0]
    assert first.endswith("ms per step under the profiler, 4 steps") and float(first.split()[0]) > 0
    assert "aten::convolution" in text and "Self CPU time total" in text
