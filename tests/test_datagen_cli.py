"""mm-datagen end to end: user mistakes are one line with exit code 2; a real problem builds."""

import json
import os
import subprocess
import sys

import pytest

DATAGEN = os.path.join(os.path.dirname(sys.executable), "mm-datagen")


def _run(*args):
  return subprocess.run([DATAGEN, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args, message", [
    (["--problems=image_digitz", "--data_dir=D"], "Unknown problem 'image_digitz'. Did you mean 'image_digits'?"),
    (["--data_dir=D"], "--problems is required."),
    (["--problems=image_imagenet", "--data_dir=D"], "ImageNet"),
])
def test_user_mistakes_are_one_line(args, message, tmp_path):
  args = [a.replace("=D", f"={tmp_path}") for a in args]
  result = _run(*args)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("mm-datagen: error: ") and message in lines[0]
  assert "Traceback" not in result.stderr


def test_builds_image_digits_then_skips(tmp_path):
  result = _run("--problems=image_digits", f"--data_dir={tmp_path}")
  assert result.returncode == 0, result.stderr
  with open(tmp_path / "image_digits.manifest.json") as f:
    counts = json.load(f)["counts"]
  assert sum(counts.values()) == 1797
  again = _run("--problems=image_digits", f"--data_dir={tmp_path}")
  assert again.returncode == 0 and "up to date" in again.stderr
