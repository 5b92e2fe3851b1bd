"""datagen_mm8_mini_seconds: how long mm-datagen takes to build mm8_mini (no bar).

  python benchmarks/datagen.py [--data_dir=data/mm8_mini] [--run]

Datagen takes minutes, too long to rerun on every `make bench`. mm-datagen records its own wall
time in what it writes: `seconds` in `vocab.mm8k.model.json` (the shared vocabulary) and in each
problem's manifest (its shards). By default the figure is their sum, read from --data_dir: it was
measured at datagen time, under that moment's load (the files' dates are printed), and leaves out
process start-up and the up-front data checks. With --run, mm-datagen's engine builds mm8_mini
afresh into a temporary directory and the figure is the wall time of this run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from t2t_multimodel.data import datagen  # noqa: E402
from t2t_multimodel.data.data_dir import manifest_path  # noqa: E402
from t2t_multimodel.vocab import vocab_path  # noqa: E402

MIXTURE = "mm8_mini"


def recorded_seconds(problems, data_dir: str) -> dict[str, tuple[float, float]]:
  """name -> (seconds, file mtime) of the vocabulary and of each problem, as datagen wrote them."""
  paths = {"vocabulary": vocab_path(data_dir) + ".json"}
  paths.update({p.name: manifest_path(data_dir, p.name) for p in problems})
  recorded = {}
  for name, path in paths.items():
    with open(path) as f:
      seconds = json.load(f).get("seconds")
    if seconds is None:
      raise KeyError(f"{path} has no `seconds`: it was written before mm-datagen recorded them; "
                     f"rerun with --run")
    recorded[name] = (float(seconds), os.path.getmtime(path))
  return recorded


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", default="data/mm8_mini")
  parser.add_argument("--run", action="store_true", help="run datagen into a temporary directory")
  args = parser.parse_args(argv)
  print(common.machine_note(), flush=True)
  from t2t_multimodel import problems  # the registry
  selected = problems.resolve(MIXTURE)
  if args.run:
    with tempfile.TemporaryDirectory() as data_dir:
      start = time.perf_counter()
      datagen.generate(selected, data_dir, progress=False)
      total = time.perf_counter() - start
    print(f"mm-datagen {MIXTURE} into a temporary directory: {total:.0f} s, measured now")
  else:
    try:
      recorded = recorded_seconds(selected, args.data_dir)
    except (OSError, KeyError) as error:
      print(f"No datagen times in {args.data_dir} ({error}); run mm-datagen --problems={MIXTURE} "
            f"--data_dir={args.data_dir}, or this script with --run", file=sys.stderr)
      return 2
    for name, (seconds, _) in recorded.items():
      print(f"  {name:24s} {seconds:7.1f} s")
    total = sum(seconds for seconds, _ in recorded.values())
    when = datetime.datetime.fromtimestamp(max(m for _, m in recorded.values()))
    print(f"mm-datagen {MIXTURE}: {total:.0f} s, recorded by mm-datagen in {args.data_dir} "
          f"(measured at datagen time, {when:%Y-%m-%d %H:%M}; not rerun: use --run)")
  common.print_figure("datagen_mm8_mini_seconds", total, 0)
  return 0


if __name__ == "__main__":
  sys.exit(main())
