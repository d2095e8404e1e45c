"""What TensorBoard opens on: the sweep's HParams experiment and custom-scalar layout, and each run's session.

TensorBoard's HParams tab takes *one* experiment summary for the whole log directory, and a run's first session
summary. So the report writes them all, from the runs' records: each run's session (its hyperparameter values and
how it ended) in a file of its own in the run's directory, and the sweep's experiment in the first run's directory
(at the sweep's root it would show as a stray run named "."): every hyperparameter with the values the sweep took,
those that vary marked as differing (arm, depth, seed, norm, ...), against the final errors. Values keep
their kind (a string stays a string, a flag a boolean). A folder written by older code, whose runs carry a session
of their own inside their training event files, is upgraded: those summaries are dropped from its files (every
other event is copied as it was) so that the report's sessions are the ones TensorBoard reads.

The custom-scalar layout: one chart per depth with every arm's curves, and per arm the gradient norms of the first,
middle and last layer, drawn from the copies runs log under ``views/`` (which TensorBoard sorts after ``train/``,
``val/`` and ``test/``; older runs logged them as ``by_depth/`` and ``by_arm/``, which the layout reads too).

The protos are TensorBoard's own (``api_pb2``, ``plugin_data_pb2``, ``layout_pb2``), built here because
TensorBoard's helpers for them need TensorFlow; torch's ``hparams`` helper always writes an experiment per run. The
files are written by TensorBoard's own ``EventFileWriter``: the process that launches a sweep writes them and imports
no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

FINAL_METRICS = ("final/train_error", "final/val_error", "final/test_error")
SWEEP_FILE_SUFFIX = ".reslab-sweep"  # the report's experiment and layout, replaced at every report
SESSION_FILE_SUFFIX = ".reslab-session"  # the report's session of one run, in the run's directory
HPARAMS_TAG_PREFIX = "_hparams_/"


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


def _kinds(sessions: list[Mapping]) -> dict[str, int]:
    """Each hyperparameter's kind over all runs: a flag, a number, or text (a key that is a number in one run and
    text or None in another is text: TensorBoard filters a column by the experiment's kind)."""
    types: dict[str, set] = {}
    for hparams in sessions:
        for name, v in hparams.items():
            types.setdefault(name, set()).add(type(v))
    return {
        name: api_pb2.DATA_TYPE_BOOL
        if t == {bool}
        else api_pb2.DATA_TYPE_FLOAT64
        if t <= {int, float}
        else api_pb2.DATA_TYPE_STRING
        for name, t in types.items()
    }


def _same_kind(sessions: list[Mapping]) -> list[dict]:
    """The sessions with each hyperparameter's values of the kind `_kinds` gives it, as the experiment declares."""
    kinds = _kinds(sessions)

    def of_kind(name: str, v):
        if kinds[name] != api_pb2.DATA_TYPE_STRING or isinstance(v, str):
            return v
        return "none" if v is None else str(v)

    return [{k: of_kind(k, v) for k, v in h.items()} for h in sessions]


def experiment_summary(sessions: Iterable[Mapping], metrics: Iterable[str] = FINAL_METRICS) -> Summary:
    """The sweep's experiment: every hyperparameter with the values its runs took, ``differs`` where they vary
    (TensorBoard lists those first, and shows the first few columns of its table unless asked for more)."""
    from google.protobuf.struct_pb2 import ListValue, Value

    sessions = list(sessions)
    kinds = _kinds(sessions)
    values: dict[str, list] = {}
    for hparams in _same_kind(sessions):
        for name, v in hparams.items():
            values.setdefault(name, [])
            if (type(v), v) not in {(type(s), s) for s in values[name]}:  # True is not 1
                values[name].append(v)
    infos = []
    for name, seen in values.items():
        domain = ListValue(values=[Value(**_value(v)) for v in sorted(seen)])
        infos.append(api_pb2.HParamInfo(name=name, type=kinds[name], domain_discrete=domain, differs=len(seen) > 1))
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
                {f"depth {d}: training and validation error": [f"(views/)?by_depth/{d}/.*_error"] for d in depths},
            ),
            category(
                "gradient norms (first, middle, last layer)",
                {f"{arm}: gradient L2 norm": [f"(views/)?by_arm/{arm}/grad_norm_(first|middle|last)"] for arm in arms},
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


def _write(folder: Path, suffix: str, summaries: Iterable[Summary]) -> None:
    import time

    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder), filename_suffix=suffix)
    try:
        for summary in summaries:
            writer.add_event(Event(summary=summary, wall_time=time.time()))
    finally:
        writer.close()


def has_training_events(run_dir: Path) -> bool:
    """Whether the run wrote event files of its own (a job that failed before training has none)."""
    own = (SWEEP_FILE_SUFFIX, SESSION_FILE_SUFFIX)
    return any(not p.name.endswith(own) for p in Path(run_dir).glob("events.out.tfevents.*"))


def tensorboard_link(port: int = 6006) -> str:
    """TensorBoard's address with the runs coloured by experiment (all but the seed: arm, depth, other settings) and
    only the train/, val/ and test/ charts shown; its URL parameters ``runColorGroup`` and ``tagFilter``."""
    from urllib.parse import urlencode

    params = {"runColorGroup": r"regex:^(.+?)_seed\d+(.*)$", "tagFilter": "^(train|val|test)/"}
    query = urlencode(params, safe=":^()?*$|/\\")  # readable; "+" must stay encoded
    return f"http://localhost:{port}/?{query}#timeseries"


def drop_own_sessions(run_dir: Path) -> bool:
    """Upgrade a run written by older code: drop the HParams summaries its training event files carry (TensorBoard
    would read that session, not the report's), copying every other event as it was. A file is left untouched unless
    it was read to its end (a truncated or damaged one would lose what follows the damage). True if a file changed."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    from reslab.files import write_atomic

    changed = False
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        if path.name.endswith((SWEEP_FILE_SUFFIX, SESSION_FILE_SUFFIX)) or not path.is_file():
            continue
        if HPARAMS_TAG_PREFIX.encode() not in path.read_bytes():  # the usual case, once upgraded: no parsing
            continue
        kept, dropped, size = [], False, 0
        for raw in RawEventFileLoader(str(path)).Load():
            size += len(raw) + 16  # a record: length (8 bytes) and its CRC (4), the data and its CRC (4)
            event = Event.FromString(raw)
            if event.HasField("summary") and any(v.tag.startswith(HPARAMS_TAG_PREFIX) for v in event.summary.value):
                values = [v for v in event.summary.value if not v.tag.startswith(HPARAMS_TAG_PREFIX)]
                dropped = True
                if not values:
                    continue
                del event.summary.value[:]
                event.summary.value.extend(values)
                raw = event.SerializeToString()
            kept.append(raw)
        if not dropped or size != path.stat().st_size:
            continue

        def rewrite(f, kept=kept):
            writer = RecordWriter(f)
            for raw in kept:
                writer.write(raw)
            writer.flush()

        write_atomic(path, rewrite)
        changed = True
    return changed


def write_sweep_views(
    sweep_dir: Path, sessions: Mapping[str, tuple[Mapping, bool]], depths: Iterable[int], arms: Iterable[str]
) -> list[str]:
    """Each run's session (``sessions``: job directory name -> (hyperparameters, finished)) in its directory, and
    the experiment and layout in the first run's, replacing what the report wrote before. Returns the runs whose
    older sessions were dropped from their own event files."""
    from reslab.files import is_locked

    sweep_dir = Path(sweep_dir)
    for old in [  # at the root (where reports before 2026-12 wrote it) and in every run, nested ones included
        *sweep_dir.rglob(f"events.out.tfevents.*{SWEEP_FILE_SUFFIX}"),
        *sweep_dir.rglob(f"events.out.tfevents.*{SESSION_FILE_SUFFIX}"),
    ]:
        old.unlink(missing_ok=True)
    upgraded = []
    names = sorted(sessions)
    for name, hparams in zip(names, _same_kind([sessions[n][0] for n in names]), strict=True):  # as the experiment
        run_dir = sweep_dir / name
        if not is_locked(run_dir) and drop_own_sessions(run_dir):  # never rewrite a file a job is writing
            upgraded.append(name)
        _write(run_dir, SESSION_FILE_SUFFIX, session_summaries(hparams, ok=sessions[name][1]))
    if sessions:
        first = sweep_dir / min(sessions)
        views = (
            experiment_summary(h for h, _ in sessions.values()),
            layout_summary(sorted(set(depths)), sorted(set(arms))),
        )
        _write(first, SWEEP_FILE_SUFFIX, views)
    return upgraded
