"""Cold start, before and after issue 36: ``glae --help``, ``import glae_st``, ``load_model``, the first encode of two
sentences and the default decode of two vectors, for the current tree and for the commit before the issue, in one
run on one machine.

    python -m benchmarks.cold_start                 # writes benchmarks/results/cold-start/cold_start.json
    python -m benchmarks.cold_start --repeats 5 --heavy-repeats 2

Each tree's ``glae_st`` runs in fresh interpreters (``PYTHONPATH`` set to it): the commit's package is extracted
with ``git archive <commit> glae_st``. The light steps (help, import) are timed as whole subprocesses (interpreter
start included) and repeated; the heavy steps run in one process per repeat, timed inside it. Trees alternate, so
that changes in the load of a shared machine fall on both. Both use the same warm backbone cache and
``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT = REPO_ROOT / "benchmarks" / "results" / "cold-start" / "cold_start.json"
BEFORE = "f29ffa1"
"""The commit before issue 36."""
SENTENCES = ["A cat sits on the mat.", "Stocks fell sharply."]

HELP = (
    "import sys\nsys.argv = ['glae', '--help']\nfrom glae_st.cli import main\n"
    "try:\n    main()\nexcept SystemExit:\n    pass"
)
ARGUMENT_ERROR = (
    "import sys\nsys.argv = ['glae', 'decode', 'missing.npy']\nfrom glae_st.cli import main\n"
    "try:\n    main()\nexcept SystemExit:\n    pass"
)
IMPORT = "import glae_st"
HEAVY = f"""
import json, time
start = time.perf_counter()
import glae_st
imported = time.perf_counter()
model = glae_st.load_model(glae_st.DEFAULT_MODEL)
loaded = time.perf_counter()
vectors = model.encode({SENTENCES!r})
encoded = time.perf_counter()
texts = glae_st.decode(model, vectors)
decoded = time.perf_counter()
print("RESULT " + json.dumps({{
    "import glae_st (in process)": imported - start,
    "load_model": loaded - imported,
    "first encode of two sentences": encoded - loaded,
    "default decode of two vectors": decoded - encoded,
    "decoded": texts,
    "decoding": model[0].decoding,
}}))
"""


def cpu_model() -> str:
    """The CPU model as ``lscpu`` names it (else ``platform.processor()``)."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def run_python(code: str, tree: Path, timeout: float) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter with ``tree`` first on ``PYTHONPATH``: (wall seconds, stdout)."""
    environment = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=tree, timeout=timeout, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{tree}: exit {result.returncode}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout


def extract(commit: str, folder: Path) -> Path:
    """``glae_st`` of ``commit`` extracted into ``folder``."""
    archive = subprocess.run(["git", "archive", commit, "glae_st"], cwd=REPO_ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each light step per tree (median kept).")
    parser.add_argument("--heavy-repeats", type=int, default=1, help="Runs of the heavy steps per tree.")
    parser.add_argument("--before", default=BEFORE, help=f"The commit to compare with (default {BEFORE}).")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--timeout", type=float, default=1200.0, help="Seconds allowed for one subprocess.")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="glae-cold-start-") as scratch:
        trees = {args.before: extract(args.before, Path(scratch)), "current": REPO_ROOT}
        run_python("import glae_st.cli", REPO_ROOT, args.timeout)  # compile both trees' bytecode before timing
        run_python("import glae_st.cli", trees[args.before], args.timeout)
        light = {
            "glae --help": HELP,
            "glae argument error (decode missing.npy)": ARGUMENT_ERROR,
            "import glae_st": IMPORT,
        }
        times: dict[str, dict[str, list[float]]] = {name: {step: [] for step in light} for name in trees}
        for _ in range(args.repeats):
            for step, code in light.items():
                for name, tree in trees.items():
                    times[name][step].append(run_python(code, tree, args.timeout)[0])
                    print(f"{name:>8}  {step:<42} {times[name][step][-1]:7.2f} s", file=sys.stderr)
        heavy: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.heavy_repeats):
            for name, tree in trees.items():
                _, stdout = run_python(HEAVY, tree, args.timeout)
                result = json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT "))[7:])
                heavy[name].append(result)
                print(f"{name:>8}  {json.dumps(result)}", file=sys.stderr)

    steps = [*light, "load_model", "first encode of two sentences", "default decode of two vectors"]
    table = {}
    for name in trees:
        row = {step: statistics.median(values) for step, values in times[name].items()}
        for step in steps[len(light) :]:
            row[step] = statistics.median(run[step] for run in heavy[name])
        table[name] = row
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    report = {
        "what": "cold start of glae-st before and after issue 36, in one run on one machine (seconds, median)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
        },
        "trees": {args.before: f"git archive {args.before} glae_st", "current": f"working tree at {commit}"},
        "repeats": {"light": args.repeats, "heavy": args.heavy_repeats},
        "seconds": table,
        "raw": {"light": times, "heavy": heavy},
    }
    from glae_st.atomic import write_text  # run as a module from the repository root: its glae_st

    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.output, json.dumps(report, indent=1) + "\n")
    width = max(map(len, steps))
    print(f"{'step':<{width}}  {args.before:>9}  {'current':>9}")
    for step in steps:
        print(f"{step:<{width}}  {table[args.before][step]:9.2f}  {table['current'][step]:9.2f}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
