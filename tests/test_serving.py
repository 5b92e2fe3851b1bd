"""mm-decoder and mm-export on a run directory: piped and file decoding, errors, SavedModel round trip."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from t2t_multimodel import run_dir, serving
from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.model import MultiModel
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.vocab import VOCAB_FILENAME, SubwordVocab

BIN = os.path.dirname(sys.executable)
PROBLEM_NAMES = ("translate_ende_bible", "image_digits")
LINES = ["In the beginning God created the heavens and the earth.", "", "Ünïcödé 🙂 text"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A real (untrained) run: hparams.json, problems.json, the vocab and a checkpoint."""
  output_dir = tmp_path_factory.mktemp("run")
  data_dir = tmp_path_factory.mktemp("data")
  vocab = SubwordVocab.build(["In the beginning God created the heavens and the earth.",
                              "Im Anfang schuf Gott die Himmel und die Erde."] * 50,
                             str(data_dir / VOCAB_FILENAME), vocab_size=400)
  hp = get_hparams("multimodel_tiny", "vocab_size=400,max_target_length=8,max_input_length=16")
  signatures = [PROBLEMS.get(n).signature() for n in PROBLEM_NAMES]
  record = run_dir.problems_record("translate_ende_bible,image_digits", signatures, "proportional",
                                   {n: 0.5 for n in PROBLEM_NAMES}, 0, vocab.sha256, str(data_dir))
  run_dir.prepare(str(output_dir), hp, record)
  serving.copy_vocab(str(data_dir), str(output_dir))
  model = MultiModel(hp, signatures)
  model.build_all()
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                       str(output_dir / run_dir.CHECKPOINT_DIR), 1, checkpoint_name="ckpt")
  manager.save(checkpoint_number=1)
  return str(output_dir)


def _cli(name, *args, stdin=""):
  return subprocess.run([os.path.join(BIN, name), *args], input=stdin, capture_output=True, text=True,
                        timeout=600)


def test_piped_stdin_gives_one_line_per_line(run):
  result = _cli("mm-decoder", f"--output_dir={run}", "--problem=translate_ende_bible",
                stdin="\n".join(LINES) + "\n")
  assert result.returncode == 0, result.stderr
  outputs = result.stdout.split("\n")[:-1]
  assert len(outputs) == len(LINES) and outputs[1] == ""


def test_file_decoding_with_beam(run, tmp_path):
  source, target = tmp_path / "in.txt", tmp_path / "out.txt"
  source.write_text("\n".join(LINES * 3) + "\n", encoding="utf-8")
  result = _cli("mm-decoder", f"--output_dir={run}", "--problem=translate_ende_bible", "--beam_size=3",
                f"--decode_from_file={source}", f"--decode_to_file={target}", "--batch_size=4")
  assert result.returncode == 0, result.stderr
  assert len(target.read_text(encoding="utf-8").split("\n")[:-1]) == 9


@pytest.mark.parametrize("args, message", [
    (["--output_dir=/nonexistent/run", "--problem=translate_ende_bible"], "No training run in /nonexistent/run"),
    (["--problem=translate_ende_bible"], "--output_dir is required"),
    (["--output_dir=RUN", "--problem=parse_trees"], "was not trained on 'parse_trees'"),
    (["--output_dir=RUN", "--problem=translate_ende_bible", "--checkpoint_path=RUN/nope"], "No checkpoint at"),
])
def test_mistakes_are_one_line(run, args, message):
  result = _cli("mm-decoder", *[a.replace("RUN", run) for a in args])
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_image_paths_are_classified(run, tmp_path):
  from PIL import Image
  paths = []
  for i in range(2):
    path = tmp_path / f"{i}.png"
    Image.new("L", (8, 8), 40 * i).save(path)
    paths.append(str(path))
  decoder = serving.load_decoder(run, "image_digits")
  assert all(label in [str(d) for d in range(10)] for label in decoder.decode(paths))


def test_export_round_trip_in_a_fresh_process(run, tmp_path):
  export_dir = str(tmp_path / "exported")
  result = _cli("mm-export", f"--output_dir={run}", "--problem=translate_ende_bible", f"--export_dir={export_dir}")
  assert result.returncode == 0, result.stderr
  script = (
      "import json, sys, tensorflow as tf, tensorflow_text\n"
      f"m = tf.saved_model.load({export_dir!r})\n"
      f"out = m.signatures['serving_default'](inputs=tf.constant({LINES!r}))['outputs']\n"
      "print(json.dumps([s.decode('utf-8') for s in out.numpy().tolist()]))\n"
      "assert 't2t_multimodel' not in sys.modules\n")
  loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          cwd=str(tmp_path))
  assert loaded.returncode == 0, loaded.stderr
  served = json.loads(loaded.stdout.strip().splitlines()[-1])
  decoder = serving.load_decoder(run, "translate_ende_bible")
  expected = decoder.decode([LINES[0], LINES[2]])
  assert len(served) == 3 and [served[0], served[2]] == expected
