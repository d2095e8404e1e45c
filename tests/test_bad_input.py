"""Bad input gets one line (what is wrong, how to fix it) and a non-zero exit; every row of issue #4.

Each row is checked in-process (fast, the default suite) for its message, and the whole table again
through a real `python run.py` process (slow marker) for the one-line, exit-2 contract. Two representative
rows also run as processes in the default suite.
"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT, TINY, compose_config

from reslab.errors import UserError
from reslab.job import train
from reslab.overrides import preflight


def write_mnist(folder: Path, truncate: bool = False, garbage: bool = False) -> None:
    """Tiny IDX .gz files in the real format (8 train / 4 test images), optionally damaged."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", 8), ("t10k", 4)):
        images = struct.pack(">IIII", 0x803, n, 28, 28) + bytes(n * 28 * 28)
        labels = struct.pack(">II", 0x801, n) + bytes(range(n))
        for kind, payload in (("images-idx3", images), ("labels-idx1", labels)):
            data = gzip.compress(payload)
            if garbage:
                data = b"this is not gzip data at all"
            elif truncate and kind == "images-idx3":
                data = data[: len(data) // 2]
            (folder / f"{prefix}-{kind}-ubyte.gz").write_bytes(data)


def setup_files(case: str, tmp: Path) -> None:
    if case == "truncated data file":
        write_mnist(tmp / "data" / "mnist", truncate=True)
    elif case == "corrupt data file":
        write_mnist(tmp / "data" / "mnist", garbage=True)
    elif case == "wrong-checksum archive":
        (tmp / "data").mkdir()
        with tarfile.open(tmp / "data" / "cifar-10-python.tar.gz", "w:gz") as tar:
            tar.add(__file__, arcname="cifar-10-batches-py/readme.txt")


# (row, overrides relative to a tiny synthetic run; {tmp} is a fresh folder, {ro} a read-only path,
#  message fragment)
CASES = [
    ("depth 7", ["depth=7"], "depth=7 is not 6n+2 with n >= 1; the nearest valid depth is 8"),
    ("depth 0", ["depth=0"], "depth=0 is not 6n+2"),
    ("depth -8", ["depth=-8"], "depth=-8 is not 6n+2"),
    ("depth 21", ["depth=21"], "nearest valid depths are 20 or 26"),
    ("unknown shortcut", ["model.shortcut=C"], "unknown model.shortcut='C'"),
    ("unknown precision", ["runtime.precision=fp8"], "unknown runtime.precision='fp8'"),
    ("unknown compile mode", ["runtime.compile=fastest"], "unknown runtime.compile='fastest'"),
    ("unknown CUDA-graph setting", ["runtime.cuda_graph=yes"], "unknown runtime.cuda_graph='yes'"),
    ("CUDA graph without a GPU", ["runtime.cuda_graph=true"], "runtime.cuda_graph=true needs a CUDA GPU"),
    ("batch size 0", ["dataset.batch_size=0"], "dataset.batch_size=0 is out of range: it must be a positive"),
    ("batch size -1", ["dataset.batch_size=-1"], "dataset.batch_size=-1 is out of range"),
    ("max_steps 0", ["trainer.max_steps=0"], "trainer.max_steps=0 is out of range: it must be a positive number"),
    ("negative lr", ["optim.lr=-0.1"], "optim.lr=-0.1 is out of range: it must be a positive learning rate"),
    (
        "images that exhaust memory",
        ["dataset.synthetic_train=100000000"],
        "synthetic images 2574.9) but",
    ),
    (
        "width that exhausts memory",
        ["model.width=20000"],
        "GiB is free on the cpu; lower dataset.batch_size, model.width",
    ),
    ("milestone past the end", ["schedule.milestones=[0.5,1.5]"], "each must be a fraction of trainer.max_steps"),
    ("data dir not writable", ["dataset=mnist", "data_dir={ro}/data"], "not writable"),
    ("data missing offline", ["dataset=mnist", "dataset.download=false", "data_dir={tmp}/data"], "not found"),
    ("truncated data file", ["dataset=mnist", "dataset.download=false", "data_dir={tmp}/data"], "truncated or corrupt"),
    ("corrupt data file", ["dataset=mnist", "dataset.download=false", "data_dir={tmp}/data"], "truncated or corrupt"),
    ("wrong-checksum archive", ["dataset=cifar10", "dataset.download=false", "data_dir={tmp}/data"], "md5"),
]
PREFLIGHT_CASES = [
    ("unknown model", ["model=foo"], "unknown model 'foo'; choose one of: plain, residual, residual_b"),
    ("unknown model in a sweep", ["-m", "model=plain,resnet"], "unknown model 'resnet'"),
    ("unknown dataset", ["dataset=cifar11"], "unknown dataset 'cifar11'; choose one of: cifar10, cifar100"),
    (
        "unknown logger",
        ["logger=[tensorboard,wandb]"],
        "unknown logger 'wandb'; choose one of: csv, mlflow, tensorboard",
    ),
    ("read-only output dir", ["hydra.run.dir={ro}/out"], "cannot write the output directory"),
    ("read-only sweep dir", ["-m", "hydra.sweep.dir={ro}/sweep"], "set hydra.sweep.dir=<a writable path>"),
    ("depth not a number", ["depth=abc"], "depth=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    ("steps not a number", ["trainer.max_steps=ten"], "could not be converted to Integer"),
    ("misspelt key", ["trainer.max_stpes=10"], "Key 'max_stpes' not in 'TrainerConfig'"),
    ("out of range in a sweep", ["-m", "optim.lr=0.1,-1"], "optim.lr=-1.0 is out of range"),
    ("several values without -m", ["depth=20,56"], "depth=20,56 lists several values: add -m"),
    ("zero instrument interval", ["callbacks.grad_norms.every_n_steps=0"], "must be a positive number of steps"),
    ("config shown for a sweep", ["--cfg", "job", "-m", "depth=8,14"], "--cfg and --info show one composed config"),
    ("search without -m", ["hparams_search=lr"], "hparams_search runs a search of many jobs: add -m"),
    (
        "unknown strategy",
        ["trainer.strategy=ddp_spawn"],
        "unknown trainer.strategy='ddp_spawn'; choose one of: auto, ddp",
    ),
    ("zero threads", ["runtime.threads=0"], "runtime.threads=0: choose auto or a positive number of threads"),
    (
        "batch that does not split across devices",
        ["trainer=ddp", "dataset.batch_size=33"],
        "dataset.batch_size=33 does not split evenly across trainer.devices=2",
    ),
]
READ_ONLY = "/proc/reslab"  # not writable even for root


def fill(args: list[str], tmp: Path) -> list[str]:
    return [a.format(tmp=tmp, ro=READ_ONLY) for a in args]


@pytest.mark.parametrize("case,args,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_in_process(case, args, message, tmp_path):
    setup_files(case, tmp_path)
    cfg = compose_config(TINY + fill(args, tmp_path), output_dir=tmp_path / "job")
    with pytest.raises(UserError) as err:
        train(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("case,args,message", PREFLIGHT_CASES, ids=[c[0] for c in PREFLIGHT_CASES])
def test_bad_input_before_hydra(case, args, message, tmp_path):
    with pytest.raises(UserError) as err:
        preflight(fill(args, tmp_path))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_a_checkpoint_of_another_depth_is_refused_in_one_line(tmp_path, run_env):
    cfg = compose_config(TINY + ["model=plain"], output_dir=tmp_path / "plain")
    train(cfg)
    ckpt = tmp_path / "plain" / "checkpoints" / "last.ckpt"
    proc = run(["depth=14", "model=plain", f"resume={ckpt}"], tmp_path, run_env)
    assert proc.returncode == 2
    assert one_line(proc).startswith(f"reslab: error: checkpoint {ckpt} is from a different experiment: depth=8")


def run(args: list[str], tmp: Path, env: dict) -> subprocess.CompletedProcess:
    argv = [*TINY, *fill(args, tmp)]
    if not any(a.startswith("hydra.") for a in argv):
        argv.append(f"hydra.sweep.dir={tmp}/sweep" if "-m" in argv else f"hydra.run.dir={tmp}/run")
    return subprocess.run(
        [sys.executable, "run.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("case,args,message", [CASES[3], PREFLIGHT_CASES[0]], ids=["depth 21", "unknown model"])
def test_bad_input_process_prints_one_line_and_exits_2(case, args, message, tmp_path, run_env):
    proc = run(args, tmp_path, run_env)
    assert proc.returncode == 2 and message in one_line(proc) and proc.stdout.strip() == ""


@pytest.mark.slow
@pytest.mark.parametrize("case,args,message", CASES + PREFLIGHT_CASES, ids=[c[0] for c in CASES + PREFLIGHT_CASES])
def test_every_bad_input_as_a_process(case, args, message, tmp_path, run_env):
    setup_files(case, tmp_path)
    proc = run(args, tmp_path, run_env)
    assert proc.returncode == 2
    line = one_line(proc)
    assert line.startswith("reslab: error: ") and message in line
