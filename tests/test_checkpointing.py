"""RunCheckpoint: model, optimizer, random state and data iterators saved and restored whole."""

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.data import inputs
from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.model.multimodel import MultiModel
from t2t_multimodel.problems import get_problem
from t2t_multimodel.run import checkpointing
from t2t_multimodel.train import optimization


@pytest.fixture
def state(train_data_dir, tiny_hparams):
  """A tiny built model with its optimizer, after one update, and an image_digits iterator."""
  hp = get_hparams("multimodel_tiny", tiny_hparams)
  problem = get_problem("image_digits")
  model = MultiModel(hp, [problem.signature()])
  model.build_all()
  optimizer = optimization.make_optimizer(hp)
  optimizer.build(model.trainable_variables)
  iterator = iter(inputs.problem_dataset(problem, "train", train_data_dir, hp, training=True, seed=0))
  _advance(model, optimizer, iterator)
  return model, optimizer, iterator


def _advance(model, optimizer, iterator):
  """One update, one dropout draw and one batch: every part of the state moves."""
  batch = next(iterator)
  model(batch, problem="image_digits", training=True)
  variables = model.trainable_variables
  optimizer.apply([tf.fill(v.shape, 0.01) for v in variables], variables)


def _snapshot(model, optimizer):
  return [np.array(v) for v in model.variables + optimizer.variables]


def test_restore_brings_back_every_part(state, tmp_path):
  model, optimizer, iterator = state
  ckpt = checkpointing.RunCheckpoint(str(tmp_path), model, optimizer, strategy=tf.distribute.get_strategy(),
                                     iterators={"image_digits": iterator})
  assert ckpt.restore() == 0  # nothing saved yet
  path = ckpt.save(1)
  assert path.endswith("ckpt-1") and checkpointing.latest_step(str(tmp_path)) == 1
  saved, next_batch = _snapshot(model, optimizer), next(iterator)["targets"].numpy()
  _advance(model, optimizer, iterator)
  assert ckpt.step == 2 and not all(np.array_equal(a, b) for a, b in zip(saved, _snapshot(model, optimizer)))
  assert ckpt.restore() == 1
  for before, after in zip(saved, _snapshot(model, optimizer)):
    np.testing.assert_array_equal(before, after)
  np.testing.assert_array_equal(next(iterator)["targets"].numpy(), next_batch)


def test_seed_generator_states_are_saved(state, tmp_path):
  model, optimizer, iterator = state
  rng = [v for v in model.non_trainable_variables if "seed_generator" in v.path]
  assert rng, "the model has dropout: it must have seed generators"
  ckpt = checkpointing.RunCheckpoint(str(tmp_path), model, optimizer, strategy=tf.distribute.get_strategy())
  ckpt.save(1)
  saved = [np.array(v) for v in rng]
  model(next(iterator), problem="image_digits", training=True)
  assert not all(np.array_equal(a, np.array(v)) for a, v in zip(saved, rng))
  ckpt.restore()
  assert all(np.array_equal(a, np.array(v)) for a, v in zip(saved, rng))


def test_keeps_the_last_n(state, tmp_path):
  model, optimizer, iterator = state
  ckpt = checkpointing.RunCheckpoint(str(tmp_path), model, optimizer, strategy=tf.distribute.get_strategy(),
                                     keep=2)
  for step in range(1, 5):
    if step > 1:
      _advance(model, optimizer, iterator)
    ckpt.save(step)
  assert ckpt.save(4).endswith("ckpt-4")  # saving the same step twice writes nothing new
  names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".index"))
  assert names == ["ckpt-3.index", "ckpt-4.index"]


def test_save_refuses_a_step_the_optimizer_is_not_at(state, tmp_path):
  model, optimizer, _ = state
  ckpt = checkpointing.RunCheckpoint(str(tmp_path), model, optimizer, strategy=tf.distribute.get_strategy())
  with pytest.raises(ValueError, match="Expected the optimizer at step 7"):
    ckpt.save(7)


def test_step_of():
  assert checkpointing.step_of("/runs/x/checkpoints/ckpt-120") == 120
  with pytest.raises(ValueError, match="ckpt-<step>"):
    checkpointing.step_of("/runs/x/model.keras")
  assert checkpointing.latest_step("/nonexistent") is None
