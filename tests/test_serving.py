"""mm-decoder and mm-export on a run directory: piped and file decoding, errors, SavedModel round trip."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.infer import decoding, serving
from t2t_multimodel.model.multimodel import MultiModel
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.run import run_dir
from t2t_multimodel.vocab import EOS_ID, SubwordVocab, VOCAB_FILENAME

BIN = os.path.dirname(sys.executable)
PROBLEM_NAMES = ("translate_ende_bible", "image_digits", "caption_emoji", "speech_espeak")
LINES = ["In the beginning God created the heavens and the earth.", "", "Ünïcödé 🙂 text"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  return make_run(tmp_path_factory)


def make_run(tmp_path_factory) -> str:
  """A real (untrained) run: hparams.json, problems.json, the vocab and a checkpoint."""
  output_dir = tmp_path_factory.mktemp("run")
  data_dir = tmp_path_factory.mktemp("data")
  vocab = SubwordVocab.build(["In the beginning God created the heavens and the earth.",
                              "Im Anfang schuf Gott die Himmel und die Erde."] * 50,
                             str(data_dir / VOCAB_FILENAME), vocab_size=400)
  hp = get_hparams("multimodel_tiny", "vocab_size=400,max_target_length=8,max_input_length=16")
  signatures = [PROBLEMS.get(n).signature() for n in PROBLEM_NAMES]
  record = run_dir.problems_record(",".join(PROBLEM_NAMES), signatures, "proportional",
                                   {n: 1 / len(PROBLEM_NAMES) for n in PROBLEM_NAMES}, 0, vocab.sha256,
                                   str(data_dir))
  run_dir.prepare(str(output_dir), hp, record)
  run_dir.copy_vocab(str(data_dir), str(output_dir))
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


def _lines_around_the_limit(run):
  """A short line, one whose ids with EOS fill max_input_length exactly, and a longer one."""
  hp, record = run_dir.load_run(run)
  vocab = serving.run_vocab(run, record)
  text = LINES[0] * 3
  exact = next((text[:n] for n in range(1, len(text))
                if len(vocab.encode(text[:n])) + 1 == hp.max_input_length), None)
  assert exact is not None, "no prefix encodes to max_input_length - 1 ids"
  short = "God created"
  assert len(vocab.encode(short)) + 1 < hp.max_input_length < len(vocab.encode(text)) + 1
  return [short, exact, text]


def _decoder_ids(run, lines):
  """The input batch mm-decoder feeds the model for `lines` (decoding.prepare_inputs)."""
  hp, record = run_dir.load_run(run)
  return decoding.prepare_inputs(PROBLEMS.get("translate_ende_bible"), hp, serving.run_vocab(run, record),
                                 lines).numpy()


def test_export_tokenizes_as_the_decoder(run):
  hp, record = run_dir.load_run(run)
  server = serving.ProblemServer(None, PROBLEMS.get("translate_ende_bible"), hp,
                                 serving.run_vocab(run, record), beam_size=1, alpha=0.6,
                                 max_length=hp.max_target_length)
  short, exact, long = _lines_around_the_limit(run)
  for lines in ([short], [exact], [long], [short, exact, long]):
    got = server.prepare(tf.constant(lines))["inputs"].numpy()
    expected = _decoder_ids(run, lines)
    np.testing.assert_array_equal(got, expected, err_msg=f"{lines}")
    assert (expected == EOS_ID).sum(axis=1).tolist() == [1] * len(lines)  # never [..., EOS, EOS]


def test_export_round_trip_in_a_fresh_process(run, tmp_path):
  export_dir = str(tmp_path / "exported")
  result = _cli("mm-export", f"--output_dir={run}", "--problem=translate_ende_bible", f"--export_dir={export_dir}")
  assert result.returncode == 0, result.stderr
  lines = LINES + _lines_around_the_limit(run)
  text = [line for line in lines if line]
  script = (
      "import json, sys, tensorflow as tf, tensorflow_text\n"
      f"m = tf.saved_model.load({export_dir!r})\n"
      f"out = m.signatures['serving_default'](inputs=tf.constant({lines!r}))['outputs']\n"
      f"ids = m.signatures['prepare'](inputs=tf.constant({text!r}))['inputs']\n"
      "print(json.dumps([[s.decode('utf-8') for s in out.numpy().tolist()], ids.numpy().tolist()]))\n"
      "assert 't2t_multimodel' not in sys.modules\n")
  loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          cwd=str(tmp_path))
  assert loaded.returncode == 0, loaded.stderr
  served, ids = json.loads(loaded.stdout.strip().splitlines()[-1])
  np.testing.assert_array_equal(np.array(ids), _decoder_ids(run, text))
  expected = serving.load_decoder(run, "translate_ende_bible").decode(lines)
  assert served == expected and served[1] == ""


def _client_files(tmp_path):
  """What clients send: images of any size and format (alpha too), WAV files of other rates,
  stereo, and an empty file."""
  from PIL import Image
  from scipy.io import wavfile
  rng = np.random.default_rng(0)
  files = {"image": [], "audio": []}
  for name, mode, size in [("a.png", "RGBA", (37, 23)), ("b.jpg", "RGB", (16, 16)), ("c.gif", "P", (9, 40))]:
    path = tmp_path / name
    Image.fromarray((rng.random(size[::-1] + (4,)) * 255).astype(np.uint8), "RGBA").convert(mode).save(path)
    files["image"].append(str(path))
  for name, rate, channels in [("a.wav", 16000, 1), ("b.wav", 22050, 2), ("c.wav", 8000, 1)]:
    path = tmp_path / name
    wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)[:, None] * np.ones([1, channels])
    wavfile.write(path, rate, (wave * 32767).astype(np.int16))
    files["audio"].append(str(path))
  return files


@pytest.mark.parametrize("problem", [
    "image_digits",                                          # image bytes -> label
    "speech_espeak",                                         # WAV bytes -> transcript
    pytest.param("caption_emoji", marks=pytest.mark.slow),   # image bytes -> text: both halves above
])
def test_every_modality_exports_and_serves_as_the_decoder(run, problem, tmp_path):
  # The bytes a client has, served by a SavedModel in a process that never imports this package,
  # equal to mm-decoder on the same files; an empty input gives an empty output.
  files = _client_files(tmp_path)
  paths = files["audio"] if problem == "speech_espeak" else files["image"]
  export_dir = str(tmp_path / problem)
  serving.export(run, problem, export_dir)
  script = "\n".join([
      "import json, sys, tensorflow as tf, tensorflow_text",
      f"m = tf.saved_model.load({export_dir!r})",
      f"data = [open(p, 'rb').read() for p in {paths!r}] + [b'']",
      "out = m.signatures['serving_default'](inputs=tf.constant(data))['outputs']",
      "print(json.dumps([s.decode('utf-8') for s in out.numpy().tolist()]))",
      "assert 't2t_multimodel' not in sys.modules"])
  loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, cwd=str(tmp_path))
  assert loaded.returncode == 0, loaded.stderr[-3000:]
  served = json.loads(loaded.stdout.strip().splitlines()[-1])
  assert served == serving.load_decoder(run, problem).decode(paths) + [""]
  if problem == "image_digits":
    assert set(served[:-1]) <= set(PROBLEMS.get(problem).class_names or map(str, range(10)))
