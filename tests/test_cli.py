"""The runner every CLI shares (cli.run): --helpshort lists the CLI's own flags, a bad flag is one
line with exit code 2. Flags are parsed before TensorFlow loads, so each run takes a moment."""

import importlib.metadata
import os
import subprocess
import sys

import pytest

BIN = os.path.dirname(sys.executable)
SCRIPTS = sorted(entry.name for entry in importlib.metadata.distribution("t2t-multimodel").entry_points
                 if entry.group == "console_scripts")
# (program, command): every console script of setup.py, and the CLIs run with `python -m`.
CLIS = [(name, [os.path.join(BIN, name)]) for name in SCRIPTS] + [
    ("reproduce", [sys.executable, "-m", "t2t_multimodel.bin.reproduce"]),
]
OWN_FLAG = {"mm-datagen": "--tmp_dir", "mm-trainer": "--problems", "mm-decoder": "--decode_from_file",
            "mm-evaluate": "--split", "mm-export": "--export_dir", "mm-report": "--examples_dir",
            "mm-serve": "--port", "mm-avg-checkpoints": "--num_last", "reproduce": "--tables"}
IDS = [" ".join(os.path.basename(part) for part in command) for _, command in CLIS]


def _run(command, *args):
  return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


def test_the_console_scripts_of_setup_py_are_installed():
  assert {"mm-datagen", "mm-trainer", "mm-decoder", "mm-evaluate", "mm-export", "mm-report",
          "mm-serve", "mm-avg-checkpoints"} <= set(SCRIPTS)


@pytest.mark.parametrize("program, command", CLIS, ids=IDS)
def test_helpshort_lists_the_clis_own_flags(program, command):
  result = _run(command, "--helpshort")
  assert result.returncode == 1, result.stderr  # absl's exit code for help
  assert f"  {OWN_FLAG[program]}: " in result.stdout, result.stdout
  assert "--verbosity" not in result.stdout  # absl's own flags are left to --helpfull


@pytest.mark.parametrize("program, command", CLIS, ids=IDS)
def test_an_unknown_flag_is_one_line_with_exit_code_2(program, command):
  result = _run(command, "--no_such_flag=1")
  assert result.returncode == 2, result.stderr
  assert result.stderr.splitlines() == [f"{program}: error: Unknown command line flag 'no_such_flag'"]
