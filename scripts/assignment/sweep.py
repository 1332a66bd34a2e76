"""``--sweep-tuned N``: how reliably the tuned scalar MLP meets its goal, on seeds 0..N-1.

Each seed runs the tuned MLP and the MLP on the features that sets its goal
(one task per seed, in worker processes) and the rows go to
``tuned_sweep.json``, which the report quotes while it tested the same config.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from assignment.tuned import target_train_mse
from jobs.output import write_json
from jobs.workers import completed, run_task, worker_pool

TUNED_ID, REFERENCE_ID, FACTOR = "mlp_scalar_tuned", "mlp_features", 1.1
FILENAME = "tuned_sweep.json"


def load_sweep(out: Path, quick: bool, experiments: Mapping):
    """The sweep saved in ``out``, if it tested this very config (else None)."""
    try:
        sweep = json.loads((out / FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    tuned = experiments.get(TUNED_ID)
    return sweep if tuned is not None and sweep.get("config") == tuned.resolved(quick) else None


def _row(seed: int, results: list) -> dict:
    res = dict(results)
    errors = [r for r in res.values() if isinstance(r, str)]
    if errors:
        raise SystemExit("\n".join(errors))
    tuned, reference = res[TUNED_ID].metrics, res[REFERENCE_ID].metrics
    target = target_train_mse(reference.train_mse, FACTOR)
    return {"seed": seed, "train_mse": tuned.train_mse, "test_mse": tuned.test_mse,
            "mlp_features_train_mse": reference.train_mse, "target_train_mse": target,
            "meets_target": tuned.train_mse <= target, "seconds": res[TUNED_ID].seconds}


def sweep_tuned(options, n: int, experiments: Mapping) -> int:
    """Run the sweep on ``options.jobs`` processes, print a line per seed and write ``tuned_sweep.json``."""
    seeds = list(range(n))
    options.out.mkdir(parents=True, exist_ok=True)
    task = (experiments[TUNED_ID], experiments[REFERENCE_ID])
    argsets = [(task, seed, options.quick, options.show, options.backend) for seed in seeds]
    done, rows = {}, []
    with worker_pool(options.jobs) or contextlib.nullcontext() as pool:
        for i, results in completed(pool, run_task, argsets, options.jobs):
            done[i] = _row(seeds[i], results)
            while len(rows) in done:  # print in seed order, as soon as every smaller seed is done
                r = done[len(rows)]
                rows.append(r)
                print(f"seed {r['seed']}: tuned train_mse {r['train_mse']:.4f} (target <= {r['target_train_mse']:.4f}: "
                      f"{'met' if r['meets_target'] else 'MISSED'}), test_mse {r['test_mse']:.4f}, "
                      f"{r['seconds']:.1f} s", flush=True)
    met = sum(r["meets_target"] for r in rows)
    sweep = {"config": experiments[TUNED_ID].resolved(options.quick), "backend": options.backend, "seeds": seeds,
             "met": met, "runs": rows,
             "timing_keys": ["seconds"], "load_average_after": list(os.getloadavg())}
    write_json(options.out / FILENAME, sweep)
    print(f"met the target on {met} of {len(seeds)} seeds; written {options.out / FILENAME}")
    return 0
