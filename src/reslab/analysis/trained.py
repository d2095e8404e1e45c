"""A finished run brought back for analysis: its config, its net (as trained, or as initialised) and its data.

Everything comes from the job directory alone: ``config.yaml`` (the resolved config the job ran with),
``metrics.json`` (status and identity) and ``checkpoints/last.ckpt`` (the final weights). Whatever would make an
analysis wrong or meaningless is refused with one line: no checkpoint, a checkpoint of another experiment or of an
earlier step, a run that did not finish or diverged, data of another shape than the net's.

Analyses run in fp32 with batch norm in evaluation mode (the running statistics as trained), whatever precision the
run trained in: they compare small differences, and bf16's 8-bit mantissa would drown some of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from reslab.errors import UserError
from reslab.results.runs import Run, job_dirs, load_sweep


@dataclass
class TrainedRun:
    """One finished job directory, with what the analyses need from it."""

    run: Run
    data_dir: str | None = None  # overrides the run's own data_dir (relative to where it was launched)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def label(self) -> str:
        """The run's arm as the report labels it (``plain``, ``residual (model.norm=none)``)."""
        return self.run.arm

    @property
    def shortcut(self) -> str:
        return self.run.shortcut

    @property
    def depth(self) -> int:
        return self.run.depth

    @property
    def seed(self) -> int:
        return self.run.seed

    @property
    def is_residual(self) -> bool:
        return self.cfg.model.shortcut != "none"

    @cached_property
    def cfg(self) -> DictConfig:
        return OmegaConf.load(self.path / "config.yaml")

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"

    @cached_property
    def checkpoint(self) -> dict:
        from reslab.training.checkpoint_io import load_checkpoint

        return load_checkpoint(self.checkpoint_path)

    @property
    def step(self) -> int:
        return int(self.checkpoint.get("global_step", -1))

    def build(self) -> nn.Module:
        """The run's net, freshly initialised exactly as its training began (same seed, same order of draws)."""
        import lightning as L

        from reslab.build import build_net

        L.seed_everything(self.cfg.seed, verbose=False)  # as reslab.build.build_job: the seed, then the net
        return build_net(self.cfg, self.info.in_channels, self.info.num_classes).to(self.device).eval()

    def net(self, state: str = "trained") -> nn.Module:
        """The net in fp32 evaluation mode on the analysis device: ``trained`` (the final weights and BN running
        statistics) or ``init`` (the weights it started from; BN statistics still to be estimated, see
        `estimate_bn_statistics`)."""
        net = self.build()
        if state == "init":
            return net
        prefix = "net."
        weights = {
            k[len(prefix) :].replace("_orig_mod.", ""): v
            for k, v in self.checkpoint["state_dict"].items()
            if k.startswith(prefix)
        }
        try:
            net.load_state_dict(weights)
        except RuntimeError as e:
            first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
            raise UserError(
                f"checkpoint {self.checkpoint_path} does not fit the net its config.yaml describes ({first}); "
                f"the run's files are from different runs: retrain it (retrain=true)"
            ) from None
        return net.to(self.device).eval()

    @cached_property
    def info(self):
        from reslab.data import dataset_info

        return dataset_info(self.cfg.dataset.name)

    @cached_property
    def datamodule(self):
        """The run's data, split as in training (same split seed, same downsampling), never downloaded here."""
        from reslab.data import ImageDataModule

        d = self.cfg.dataset
        kwargs = {k: v for k, v in OmegaConf.to_container(d, resolve=True).items() if k != "_target_"}
        kwargs.update(data_dir=self.data_dir or self.cfg.data_dir, download=False, shuffle_seed=self.cfg.seed)
        dm = ImageDataModule(**kwargs)
        dm.setup("fit")
        return dm

    def images(self, split: str, count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``count`` images of ``split`` (train, val, test; all if None), normalised as in training,
        in fp32 on the analysis device, with their labels. No augmentation."""
        x, y = getattr(self.datamodule, split)
        if count is not None:
            x, y = x[:count], y[:count]
        x = self.datamodule.normalize(x.to(self.device))
        return x.contiguous().float(), y.to(self.device)

    def check_data(self) -> None:
        """The data's shape must be the one the net was trained on (the run's dataset, at its size)."""
        x, _ = self.images("test", 1)
        if not self.checkpoint_path.is_file():  # an analysis of fresh nets (signal): the net is built for this data
            return
        stem = self.checkpoint["state_dict"].get("net.stem.conv.weight")
        if stem is not None and x.shape[1] != stem.shape[1]:
            raise UserError(
                f"{self.path.name}: the data has {x.shape[1]} channels but the net was trained on {stem.shape[1]}; "
                f"pass the run's own dataset with --data-dir"
            )


@torch.no_grad()
def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> tuple[float, float]:
    """Mean cross-entropy and error of ``net`` on (x, y), in batches of ``batch`` images (speed only)."""
    import torch.nn.functional as F

    wrong, loss = 0, 0.0
    for i in range(0, len(y), batch):
        logits = net(x[i : i + batch]).float()
        wrong += int((logits.argmax(1) != y[i : i + batch]).sum())
        loss += float(F.cross_entropy(logits, y[i : i + batch], reduction="sum"))
    return loss / len(y), wrong / len(y)


def estimate_bn_statistics(net: nn.Module, x: torch.Tensor, batch_size: int = 128) -> nn.Module:
    """Replace every BN's running statistics with the plain average of the batch statistics over ``x`` (in batches of
    ``batch_size``, as in training), then put the net back in evaluation mode. For a net at initialisation, whose
    running statistics are still BN's defaults (mean 0, variance 1), this gives BN the normalisation that training
    mode would apply to such batches, without tying the images of a batch together."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches seen
    net.train()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            net(x[start : start + batch_size])
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return net.eval()


def problem(run: Run, weights: bool = True) -> str | None:
    """Why ``run`` cannot be analysed, in one line; None if it can. ``weights``: the analysis reads the trained
    weights (all but signal, which builds fresh nets from the config)."""
    name = run.path.name
    if run.status == "diverged":
        return (
            f"{name} diverged (loss not finite at step {run.record.get('diverged_at_step', '?')}): its weights are not "
            f"a trained net, so there is nothing to analyse; analyse a run that finished"
        )
    if run.status != "finished":
        return f"{name} did not finish (status: {run.status}); analyses need a finished run: rerun it to finish"
    if not (run.path / "config.yaml").is_file():
        return f"{name} has no config.yaml; it was not written by this reslab: retrain it (retrain=true)"
    ckpt = run.path / "checkpoints" / "last.ckpt"
    if weights and not ckpt.is_file():
        return (
            f"{name} has no checkpoint ({ckpt.relative_to(run.path)}); analyses need the trained weights: "
            f"retrain it (retrain=true) and keep its checkpoints folder"
        )
    return None


def check_checkpoint(trained: TrainedRun) -> None:
    """The checkpoint must hold this run's final weights: same identity as its record, at its last step."""
    saved = trained.checkpoint.get("reslab_identity")
    identity = trained.run.record.get("identity")
    name = trained.path.name
    if isinstance(identity, dict) and saved != identity:
        differ = sorted(k for k in set(identity) | set(saved or {}) if (saved or {}).get(k) != identity.get(k))
        raise UserError(
            f"{name}: checkpoints/last.ckpt is of another experiment than the run's metrics.json "
            f"(differs in {', '.join(differ[:4])}); retrain the run (retrain=true)"
        )
    steps = trained.run.record.get("steps")
    if steps is not None and trained.step != int(steps):
        raise UserError(
            f"{name}: checkpoints/last.ckpt is from step {trained.step} but the run ended at step {steps} (a run "
            f"made before reslab kept its final weights); retrain it (retrain=true) to analyse its final net"
        )


def find_runs(target: Path) -> tuple[list[Run], bool]:
    """The runs under ``target`` (a job directory, or a sweep folder of them) and whether it is a single run."""
    target = Path(target)
    if not target.is_dir():
        raise UserError(f"{target} is not a directory; pass a run's job directory or a sweep folder")
    single = (target / "metrics.json").is_file()
    # A single run is labelled among the runs beside it, as the report labels it; records suffice for that.
    runs = load_sweep(target.parent if single else target, series=False)
    if single:
        runs = [r for r in runs if r.path.resolve() == target.resolve()]
    if not runs or (not single and not job_dirs(target)):
        raise UserError(
            f"no runs (no metrics.json) under {target}; pass a job directory or a sweep folder "
            f"such as multirun/<date>/<time>"
        )
    return runs, single


def load_trained(
    target: Path, data_dir: str | None = None, device: str = "cpu", needs=None, weights: bool = True
) -> tuple[list[TrainedRun], list[str], bool]:
    """The analysable runs under ``target``, the lines saying which were left out and why, and whether ``target``
    is a single run. A single run that cannot be analysed, or a sweep with none that can, is a `UserError`; so is a
    sweep whose runs are of different datasets (their errors and losses are not comparable in one figure).
    ``needs(trained)`` may return a reason a run does not suit the analysis (a plain net for path lengths)."""
    runs, single = find_runs(target)
    usable, skipped = [], []
    for run in runs:
        reason = problem(run, weights)
        trained = None
        if reason is None:
            trained = TrainedRun(run, data_dir, torch.device(device))
            reason = needs(trained) if needs is not None else None
        if reason is not None:
            if single:
                raise UserError(reason)
            skipped.append(reason)
            continue
        usable.append(trained)
    if not usable:
        raise UserError(
            f"no run under {target} can be analysed: {skipped[0]}" + (" (and others)" if len(skipped) > 1 else "")
        )
    datasets = sorted({(t.cfg.dataset.name, int(t.cfg.dataset.downsample)) for t in usable})
    if len(datasets) > 1:
        shown = ", ".join(f"{n} (downsample {d})" for n, d in datasets)
        raise UserError(
            f"the runs under {target} are of different datasets ({shown}); one analysis compares runs of one "
            f"dataset: pass each dataset's runs separately (one job directory, or a folder per dataset)"
        )
    for trained in usable if weights else ():
        check_checkpoint(trained)
    return usable, skipped, single
