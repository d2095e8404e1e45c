"""What TensorBoard opens on: the sweep's HParams experiment and custom-scalar layout, and each run's session.

TensorBoard's HParams tab takes *one* experiment summary for the whole log directory. If every run writes its own
(what Lightning's ``log_hyperparams`` does), TensorBoard picks one run's, marks no hyperparameter as differing and
shows the first few names alphabetically. So a job writes only its *session* (its hyperparameter values and its
end), and the report writes the experiment once, at the root of the sweep: every hyperparameter with the values
the sweep took, marked as differing where it varies (arm, depth, seed, ...), against the final errors. Values keep
their kind (a string stays a string, a flag a boolean). The report also writes a custom-scalar layout: one chart per
depth with its plain and residual curves, and per arm the gradient norms of the first, middle and last layer.

The protos are TensorBoard's own (``api_pb2``, ``plugin_data_pb2``, ``layout_pb2``), built here because
TensorBoard's helpers for them need TensorFlow; torch's ``hparams`` helper always writes an experiment per run. The
file is written by TensorBoard's own ``EventFileWriter``: the process that launches a sweep writes it and imports no
torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

FINAL_METRICS = ("final/train_error", "final/val_error", "final/test_error")
SWEEP_FILE_SUFFIX = ".reslab-sweep"  # the report's own event file at the sweep root, replaced at every report


def _value(v) -> dict:
    if isinstance(v, bool):
        return {"bool_value": v}
    if isinstance(v, (int, float)):
        return {"number_value": float(v)}
    return {"string_value": "none" if v is None else str(v)}


def _summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])


def session_summaries(hparams: Mapping, ok: bool = True) -> list[Summary]:
    """A run's session: its hyperparameter values (start) and how it ended."""
    from google.protobuf.struct_pb2 import Value

    start = plugin_data_pb2.SessionStartInfo()
    for name, v in hparams.items():
        start.hparams[name].CopyFrom(Value(**_value(v)))
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS if ok else api_pb2.STATUS_FAILURE)
    return [
        _summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start)),
        _summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)),
    ]


def experiment_summary(sessions: Iterable[Mapping], metrics: Iterable[str] = FINAL_METRICS) -> Summary:
    """The sweep's experiment: every hyperparameter with the values its runs took; ``differs`` where they vary."""
    from google.protobuf.struct_pb2 import ListValue, Value

    values: dict[str, list] = {}
    for hparams in sessions:
        for name, v in hparams.items():
            values.setdefault(name, [])
            if v not in values[name]:
                values[name].append(v)
    infos = []
    for name, seen in values.items():
        kinds = {type(v) for v in seen}
        if kinds == {bool}:
            kind = api_pb2.DATA_TYPE_BOOL
        elif kinds <= {int, float}:
            kind = api_pb2.DATA_TYPE_FLOAT64
        else:
            kind, seen = api_pb2.DATA_TYPE_STRING, sorted({_value(v)["string_value"] for v in seen})
        domain = ListValue(values=[Value(**_value(v)) for v in sorted(seen, key=lambda v: (str(type(v)), v))])
        infos.append(api_pb2.HParamInfo(name=name, type=kind, domain_discrete=domain, differs=len(seen) > 1))
    experiment = api_pb2.Experiment(
        hparam_infos=infos,
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m), display_name=m) for m in metrics],
    )
    return _summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment))


def layout_summary(depths: Iterable[int], arms: Iterable[str]) -> Summary:
    """Custom scalars: each depth's plain and residual curves in one chart; gradient norms per arm."""
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.plugins.custom_scalar import metadata as layout_metadata

    def category(title: str, charts: dict[str, list[str]]) -> layout_pb2.Category:
        return layout_pb2.Category(
            title=title,
            chart=[
                layout_pb2.Chart(title=name, multiline=layout_pb2.MultilineChartContent(tag=tags))
                for name, tags in charts.items()
            ],
        )

    layout = layout_pb2.Layout(
        category=[
            category(
                "errors by depth (every arm in one chart)",
                {f"depth {d}: training and validation error": [f"by_depth/{d}/.*_error"] for d in depths},
            ),
            category(
                "gradient norms (first, middle, last layer)",
                {f"{arm}: gradient L2 norm": [f"by_arm/{arm}/grad_norm_(first|middle|last)"] for arm in arms},
            ),
        ]
    )
    tensor = TensorProto(dtype="DT_STRING", string_val=[layout.SerializeToString()], tensor_shape=TensorShapeProto())
    return Summary(
        value=[
            Summary.Value(
                tag=layout_metadata.CONFIG_SUMMARY_TAG,
                tensor=tensor,
                metadata=layout_metadata.create_summary_metadata(),
            )
        ]
    )


def write_sweep_views(sweep_dir: Path, sessions: list[Mapping], depths: Iterable[int], arms: Iterable[str]) -> None:
    """The experiment and the layout in one event file at the sweep's root, replacing the report's previous one."""
    import time

    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    sweep_dir = Path(sweep_dir)
    for old in sweep_dir.glob(f"events.out.tfevents.*{SWEEP_FILE_SUFFIX}"):
        old.unlink(missing_ok=True)
    if not sessions:
        return
    writer = EventFileWriter(str(sweep_dir), filename_suffix=SWEEP_FILE_SUFFIX)
    try:
        for summary in (experiment_summary(sessions), layout_summary(sorted(set(depths)), sorted(set(arms)))):
            writer.add_event(Event(summary=summary, wall_time=time.time()))
    finally:
        writer.close()
