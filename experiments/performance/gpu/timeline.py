"""Steps per second of a run, read from its TensorBoard events (the wall time of every logged training step).

    python experiments/performance/gpu/timeline.py <job dir> [--csv out.csv]

Prints the overall rate (first event to last logged step), the steady rate from step 1000 on, and the median
time per step between logged steps; ``--csv`` writes step, seconds since the first event and training loss.
Made for runs that were stopped before the end (metrics.json then still says ``running``).
"""

from __future__ import annotations

import argparse
import csv
import statistics

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job_dir")
    parser.add_argument("--csv")
    args = parser.parse_args()
    events = EventAccumulator(args.job_dir, size_guidance={"scalars": 0}).Reload()
    if "train/loss" not in events.Tags()["scalars"]:
        raise SystemExit(
            f"timeline.py: no train/loss events in {args.job_dir}; give a job directory with "
            f"its events.out.tfevents.* file"
        )
    t0 = events.FirstEventTimestamp()
    rows = [(e.step, e.wall_time - t0, e.value) for e in events.Scalars("train/loss")]
    last_step, last_t, _ = rows[-1]
    steady = [r for r in rows if r[0] >= 1000]
    per_step = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(rows, rows[1:])]
    print(f"logged steps {rows[0][0]}..{last_step}; step {last_step} at {last_t:.1f} s after the first event")
    print(f"overall {last_step / last_t:.1f} steps/s -> 64,000 steps in {64000 / (last_step / last_t) / 60:.1f} min")
    if len(steady) > 1:
        rate = (steady[-1][0] - steady[0][0]) / (steady[-1][1] - steady[0][1])
        print(
            f"from step {steady[0][0]}: {rate:.1f} steps/s; median {1000 * statistics.median(per_step):.1f} ms "
            f"per step between logged steps"
        )
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "seconds", "train_loss"])
            writer.writerows((s, round(t, 3), round(v, 5)) for s, t, v in rows)


if __name__ == "__main__":
    main()
