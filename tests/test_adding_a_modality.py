"""README, "Adding a modality": its example runs as written, through datagen, training, decoding
and evaluation, without a change to the engine."""

import dataclasses
import importlib
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.data import datagen, inputs
from t2t_multimodel.evaluate.evaluation import Evaluator
from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.infer.decoding import Decoder
from t2t_multimodel.infer.serving import ProblemServer
from t2t_multimodel.modalities import MODALITIES
from t2t_multimodel.model.multimodel import MultiModel
from t2t_multimodel.problem import CommandToken, Problem, validate_problem
from t2t_multimodel.vocab import load_vocab

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
SENTENCES = [f"Über {i} kleine Schritte, und noch {i + 1}." for i in range(40)]


def _readme_example() -> str:
  text = open(README, encoding="utf-8").read()
  section = text[text.index("## Adding a modality"):]
  section = section[:section.index("\n## ", 1)]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def bytes_modality(tmp_path_factory):
  """The README's example as a user's module (my_modalities.py), imported."""
  folder = tmp_path_factory.mktemp("user_code")
  (folder / "my_modalities.py").write_text(_readme_example(), encoding="utf-8")
  sys.path.insert(0, str(folder))
  try:
    importlib.import_module("my_modalities")
    yield MODALITIES.get("bytes")
  finally:
    sys.path.remove(str(folder))
    sys.modules.pop("my_modalities", None)
    MODALITIES._items.pop("bytes", None)  # other tests see the built-in modalities only


class ByteEcho(Problem):
  name = "bytes_to_text"
  input_modality = "bytes"
  command = CommandToken.TO_ENGLISH
  metrics = ("bleu",)

  def generate_samples(self, split, tmp_dir):
    lines = {"train": SENTENCES[:30], "dev": SENTENCES[30:35], "test": SENTENCES[35:]}[split]
    for line in lines:
      yield {"inputs": line, "targets": line.lower()}


def test_the_readme_example_adds_a_working_modality(bytes_modality, tmp_path):
  problem = validate_problem(ByteEcho())
  assert not problem.has_text or problem.text_roles() == ["targets"]
  data_dir = str(tmp_path)
  datagen.generate([problem], data_dir, progress=False)
  vocab = load_vocab(data_dir)
  hp = dataclasses.replace(get_hparams("multimodel_tiny"), hidden_size=16, filter_size=32,
                           num_heads=2, num_experts=2, vocab_size=vocab.size, eval_batch_size=8)
  batch = next(iter(inputs.problem_dataset(problem, "train", data_dir, hp, training=True, seed=0)))
  assert batch["inputs"].dtype == tf.int32 and int(tf.reduce_max(batch["inputs"])) <= 256

  model = MultiModel(hp, [problem.signature()])
  assert "bytes" in model.modality_nets
  optimizer = tf.keras.optimizers.Adam(1e-3)
  with tf.GradientTape() as tape:
    logits = model(batch, problem=problem.name, training=True)
    loss, _ = model.problem_loss(problem.name, batch, logits)
  grads = tape.gradient(loss, model.trainable_variables)
  net = {id(v) for v in model.modality_nets["bytes"].trainable_variables}
  net_grads = [g for g, v in zip(grads, model.trainable_variables) if id(v) in net and g is not None]
  assert np.isfinite(float(loss)) and net_grads  # the new net is trained through the body
  optimizer.apply_gradients([(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None])

  decoded = Decoder(model, problem, hp, vocab, max_length=6).decode(["Über 3 Schritte", ""])
  assert isinstance(decoded[0], str) and decoded[1] == ""
  server = ProblemServer(model, problem, hp, vocab, beam_size=1, alpha=0.6, max_length=6)
  assert [s.decode("utf-8") for s in server.serve(tf.constant(["Über 3 Schritte", ""]))["outputs"].numpy()] == decoded
  result = Evaluator(model, [problem], hp, data_dir, vocab, max_length=6).evaluate_problem(problem, "test")
  assert result.examples == 5 and "bleu" in result.metrics
  assert [sample["input"] for sample in result.decodes] == SENTENCES[35:]  # `describe`
