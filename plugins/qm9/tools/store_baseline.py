"""Store single-task QM9 runs as the package's baseline: `python plugins/qm9/tools/store_baseline.py RUN_DIR...`.

Each RUN_DIR is a finished `mtlx run -d qm9 ... -o dataset.tasks=<one task>`; all must share the
dataset options (the splits the baseline is valid for). Writes src/mtlx_qm9/stl_baseline.json, which
`QM9Dataset.baseline()` returns for runs on exactly those options.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

from mtlx_qm9 import QM9Dataset
from mtlx_qm9.targets import TASK_NAMES

TARGET = Path(__file__).parents[1] / "src" / "mtlx_qm9" / "stl_baseline.json"


def main(run_dirs: list[str]) -> None:
    options, results, train = None, {}, None
    for run_dir in map(Path, run_dirs):
        config = tomllib.loads((run_dir / "config.toml").read_text())
        dataset = {k: v for k, v in config["dataset"].items() if k != "name"}
        parsed = QM9Dataset.Config(**dataset)
        if len(parsed.tasks) != 1:
            sys.exit(f"{run_dir}: trained {list(parsed.tasks)}, not one task")
        (task,) = parsed.tasks
        these = parsed.split_options()
        if options not in (None, these):
            sys.exit(f"{run_dir}: dataset options {these} differ from the others' {options}")
        options = these
        train = train or {k: config["train"][k] for k in ("epochs", "batch_size", "lr", "optimizer", "seed")}
        train |= {"backbone": config["backbone"], "arch": config["arch"]["name"], "head": config["head"]["name"]}
        results[task] = json.loads((run_dir / "results.json").read_text())["test"][task]
    missing = [t for t in TASK_NAMES if t not in results]
    if missing:
        sys.exit(f"no single-task run for {missing}")
    TARGET.write_text(json.dumps({"dataset": options, "train": train, "results": results}, indent=2) + "\n")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main(sys.argv[1:])
