"""What counts as the same experiment: every config key but a short deny-list (`reslab.record.NOT_IDENTITY`), so
a key added to reslab later can never let a checkpoint of another experiment resume."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from hydra.core.config_store import ConfigStore

from reslab.config import compose_config
from reslab.errors import UserError
from reslab.job import train
from reslab.record import FIELDS, NOT_IDENTITY, RunRecord, identity_values
from reslab.schema import ReslabConfig

TINY = ["debug=tiny"]


def denied(key: str) -> bool:
    return any(key == d or key.startswith(d + ".") for d in NOT_IDENTITY)


def every_key(node, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig

    keys = []
    for key in node.keys():
        path = f"{prefix}{key}"
        if denied(path):
            continue
        value = node[key]
        keys += every_key(value, path + ".") if isinstance(value, DictConfig) else [path]
    return keys


def test_every_key_of_the_config_is_in_the_identity_unless_denied(tmp_path):
    cfg = compose_config(TINY, output_dir=tmp_path)
    identity = RunRecord.from_config(cfg).identity("32-true")
    shown = {path: name for name, path in FIELDS.items()}  # the record's fields go by their short names
    keys = every_key(cfg)
    assert {shown.get(k, k) for k in keys} | {"bn_batch", "precision"} == set(identity)
    # A few that matter and are easy to forget: the net's class, the schedule, the training-error window.
    assert {"model._target_", "schedule.milestones", "callbacks.summary.train_window"} <= set(identity)
    assert not any(k.startswith(("runtime.", "callbacks.checkpoint.", "launch.")) for k in identity)


def test_identity_values_skip_denied_subtrees_before_resolving_them(tmp_path):
    cfg = compose_config(TINY)  # output_dir is ${hydra:runtime.output_dir}: unresolvable outside Hydra
    assert "output_dir" not in identity_values(cfg) and "callbacks.grad_norms.out_dir" not in identity_values(cfg)


@dataclass
class WithANewKey(ReslabConfig):
    """The schema as a later reslab might have it: one more key that changes what a run computes."""

    label_smoothing: float = 0.0


@pytest.fixture
def schema_with_a_new_key():
    store = ConfigStore.instance()
    store.store(name="reslab_schema", node=WithANewKey)
    yield
    store.store(name="reslab_schema", node=ReslabConfig)


def written_before_the_key_existed(job, key: str) -> None:
    """The job's checkpoint and record as a reslab without ``key`` wrote them: the key is not in their identity,
    and the run is unfinished (killed after its last checkpoint)."""
    path = job / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, weights_only=False)
    assert key in ckpt["reslab_identity"]
    del ckpt["reslab_identity"][key]
    torch.save(ckpt, path)
    record = json.loads((job / "metrics.json").read_text())
    del record["identity"][key]
    record["status"] = "running"
    (job / "metrics.json").write_text(json.dumps(record))


def test_a_checkpoint_written_before_a_new_key_does_not_resume_under_another_value_of_it(
    schema_with_a_new_key, tmp_path
):
    job = tmp_path / "job"
    train(compose_config(TINY, output_dir=job))
    written_before_the_key_existed(job, "label_smoothing")

    with pytest.raises(UserError, match=r"label_smoothing=0.0 by default when it was written \(this run: 0.1\)"):
        train(compose_config([*TINY, "label_smoothing=0.1"], output_dir=job))
    assert json.loads((job / "metrics.json").read_text())["status"] == "running"  # nothing written

    # At the value it had before it existed (its YAML default), it is the same experiment: the run resumes.
    assert train(compose_config(TINY, output_dir=job))["status"] == "finished"


def test_a_key_with_no_default_to_compare_is_refused(tmp_path):
    """A saved identity that lacks a key whose default is unknown (not in the YAML) is not trusted."""
    from reslab.record import identity_differences

    assert identity_differences({"a": 1}, {"a": 1, "b": 2}, default=lambda key: 2) == []
    assert identity_differences({"a": 1}, {"a": 1, "b": 3}, default=lambda key: 2) == [
        "b=2 by default when it was written (this run: 3)"
    ]
    from reslab.record import UNKNOWN

    assert identity_differences({"a": 1}, {"a": 1, "b": 3}, default=lambda key: UNKNOWN) == [
        "b not recorded (this run: 3)"
    ]


def test_the_record_reads_back_from_the_metrics_it_wrote(tiny_sweep):
    """Both ways: a job directory's metrics.json gives back the RunRecord that named it, through the one reader."""
    from reslab.results.runs import load_sweep

    for run in load_sweep(tiny_sweep, series=False):
        if run.status == "finished":
            assert run.run_record.job_dir_name == run.path.name == run.record["job"]
            assert run.run_record.name == run.record["run_name"]


def test_a_variant_whose_values_hold_underscores_reads_back_item_by_item(tmp_path):
    """``schedule=step_warmup`` and a key with underscores: the record read back from its facts is the same record,
    swept setting by swept setting (splitting the joined name at "_" would cut ``step_warmup`` in two)."""
    sweep = ["sweep_keys=[optim.lr,schedule,model.zero_init_residual]", "model=residual"]
    cfg = compose_config([*TINY, *sweep, "schedule=step_warmup", "model.zero_init_residual=true"], tmp_path)
    record = RunRecord.from_config(cfg, choices={"schedule": "step_warmup"})
    assert record.variant == ("optim.lr=0.1", "schedule=step_warmup", "model.zero_init_residual=True")
    back = RunRecord.from_metrics(json.loads(json.dumps(record.facts())))
    assert back.variant == record.variant and back.job_dir_name == record.job_dir_name
    older = {k: v for k, v in record.facts().items() if k != "swept"}  # written before "swept" existed
    older["identity"] = record.identity("32-true")
    assert RunRecord.from_metrics(older).job_dir_name == record.job_dir_name
    assert RunRecord.from_metrics(older).variant == record.variant  # split at the identity's keys, item by item
    no_identity = {k: v for k, v in older.items() if k != "identity"}
    assert RunRecord.from_metrics(no_identity).variant == (older["variant"],)  # nothing to split by: kept whole
