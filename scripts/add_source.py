"""Add a new source's measured runs to the validation set, recording first how the model as
shipped predicts them.

A source enters validation only after its out-of-source prediction is recorded: the runs of a
publication the fit has never seen, predicted by the stacks as shipped (their families fitted
on every other source). That figure, not the refitted one, says whether the model generalises.
This script:

1. reads the new runs (the measured-runs CSV format) and refuses ids or sources already held;
2. predicts every run with its stack release as shipped and appends the speed error, and the
   error given only the run's published plan (``plan_only_error``, from 2026-12-06), to
   ``profiles/validation/first-predictions.csv`` with the date and the commit;
3. appends the runs to ``profiles/validation/measured-runs.csv``.

Then rerun ``python scripts/calibrate_stacks.py`` (the runs join the fit) and
``python scripts/make_readme.py``.

Rows that complete a source already held (another figure of the same publication) are refused
unless ``--join``: their first predictions are recorded all the same, but they are in sample for
their source's other runs.

``--plan-only`` predicts each run as a user who has only the plan the source publishes would
(:meth:`MeasuredRun.as_published`). It records nothing.

Run:  python scripts/add_source.py new-runs.csv [--dry-run] [--join] [--plan-only]
"""

from __future__ import annotations

import csv
import datetime
import io
import subprocess
import sys
from pathlib import Path

import numpy as np

from moebench.commands.validation.fitting import prepare
from moebench.commands.validation.measured_runs import load_runs, shipped_runs_path

FIRST = shipped_runs_path().with_name("first-predictions.csv")
COLUMNS = ("id", "source_id", "recorded", "commit", "stack", "predicted_error",
           "plan_only_error")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    path, dry, join = Path(argv[0]), "--dry-run" in argv, "--join" in argv
    plan_only = "--plan-only" in argv
    new = load_runs(path)
    if plan_only:
        dry, new = True, [r.as_published() for r in new]
    held = load_runs()
    ids = {r.id for r in held}
    sources = {r.source_id for r in held}
    clash = [r.id for r in new if r.id in ids] + [r.source_id for r in new
                                                  if r.source_id in sources and not join]
    if clash:
        print(f"already held: {', '.join(sorted(set(clash)))}")
        return 2
    today, sha = datetime.date.today().isoformat(), commit()
    records = []
    by_source: dict[str, list[float]] = {}
    for run in new:
        p = prepare(run, str(path))
        err = float(np.expm1(p.speed_error(p.stack()))[0])
        # The same run given only its published plan (issue 21's test), recorded beside it.
        q = prepare(run.as_published(), str(path))
        bare = float(np.expm1(q.speed_error(q.stack()))[0])
        records.append({"id": run.id, "source_id": run.source_id, "recorded": today,
                        "commit": sha, "stack": p.spec.label,
                        "predicted_error": f"{err:.4f}", "plan_only_error": f"{bare:.4f}"})
        by_source.setdefault(run.source_id, []).append(err)
        print(f"{run.id}: {100 * err:+.1f}% ({p.spec.label}; given only its plan "
              f"{100 * bare:+.1f}%)")
    for source, errs in by_source.items():
        print(f"{source}: {len(errs)} runs, mean absolute error {100 * np.mean(np.abs(errs)):.1f}%"
              " before joining the fit")
    if dry:
        return 0
    first = FIRST.exists()
    with FIRST.open("a", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        if not first:
            w.writeheader()
        w.writerows(records)
    shipped = shipped_runs_path()
    header = shipped.read_text(encoding="utf-8").splitlines()[0].split(",")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=header, lineterminator="\n", extrasaction="raise")
    w.writerows({k: r.get(k, "") for k in header} for r in rows)
    with shipped.open("a", encoding="utf-8") as f:
        f.write(out.getvalue())
    print(f"recorded {len(records)} first predictions in {FIRST.name}; appended to "
          f"{shipped.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
