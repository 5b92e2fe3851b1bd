"""Beam and greedy search on a toy Markov decoder where the best hypothesis is known by brute force."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.beam_search import beam_search, greedy_search

EOS, V, L = 1, 5, 4


def _tables(seed):
  """log p(token | previous token) per batch row: [B, V, V]; row 0 of a table is the first step."""
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(2, V, V)).astype(np.float32) * 2.0
  logits[:, :, 0] = -1e4  # never emit padding
  return tf.nn.log_softmax(logits).numpy()


def _step_fn(tables):
  def step_fn(ids, step, cache):
    # cache["row"]: [N] which batch row's table each hypothesis uses; "steps": [N] steps taken.
    prev = tf.where(step == 0, tf.zeros_like(ids), ids)
    logits = tf.gather_nd(tables, tf.stack([cache["row"], prev], axis=1))   # [N, V]
    return logits, {"row": cache["row"], "steps": cache["steps"] + 1}
  return step_fn


def _brute_force(table, alpha):
  best, best_score = None, -np.inf
  for length in range(1, L + 1):
    for seq in itertools.product(range(2, V), repeat=length - 1):
      for last in ([EOS] if length < L else range(1, V)):
        tokens = list(seq) + [last]
        logp, prev = 0.0, 0
        for t in tokens:
          logp, prev = logp + table[prev, t], t
        score = logp / ((5.0 + length) / 6.0) ** alpha
        if score > best_score:
          best, best_score = tokens, score
  return best, best_score


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_finds_the_best_hypothesis(alpha, seed):
  tables = _tables(seed)
  cache = {"row": tf.constant([0, 1]), "steps": tf.zeros([2], tf.int32)}
  ids, scores = beam_search(_step_fn(tf.constant(tables)), cache, 2, beam_size=(V - 1) ** (L - 1),
                            max_length=L, eos_id=EOS, alpha=alpha)
  for row in range(2):
    expected, expected_score = _brute_force(tables[row], alpha)
    got = [int(t) for t in ids[row] if t != 0]
    assert got == expected
    assert scores[row].numpy() == pytest.approx(expected_score, rel=1e-5)


def test_beam_can_beat_greedy():
  # Greedy takes token 2 (p=0.6) then must pay; beam sees that 3 (p=0.4) leads to a sure EOS.
  table = np.full((V, V), 1e-6, np.float32)
  table[0, 2], table[0, 3] = 0.6, 0.4
  table[2, 2] = table[2, 3] = table[2, 4] = table[2, EOS] = 0.25
  table[3, EOS] = 1.0
  table[4, EOS] = table[2:, EOS].max()
  tables = np.log(np.stack([table, table]) / np.stack([table, table]).sum(-1, keepdims=True))
  cache = {"row": tf.constant([0, 1]), "steps": tf.zeros([2], tf.int32)}
  step_fn = _step_fn(tf.constant(tables, tf.float32))
  greedy = greedy_search(step_fn, cache, 2, max_length=L, eos_id=EOS)
  assert int(greedy[0][0]) == 2  # greedy: p <= 0.6 * 0.25
  ids, _ = beam_search(step_fn, cache, 2, beam_size=2, max_length=L, eos_id=EOS, alpha=0.0)
  assert [int(t) for t in ids[0]] == [3, EOS, 0, 0]


def test_greedy_pads_after_eos_and_works_in_tf_function():
  tables = _tables(3)
  cache = {"row": tf.constant([0, 1]), "steps": tf.zeros([2], tf.int32)}
  step_fn = _step_fn(tf.constant(tables))
  eager = greedy_search(step_fn, cache, 2, max_length=L, eos_id=EOS)
  compiled = tf.function(lambda c: greedy_search(step_fn, c, 2, max_length=L, eos_id=EOS))(cache)
  assert eager.shape == (2, L)
  np.testing.assert_array_equal(eager.numpy(), compiled.numpy())
  for row in eager.numpy():
    if EOS in row.tolist():
      assert not row[row.tolist().index(EOS) + 1:].any()
  beam = tf.function(lambda c: beam_search(step_fn, c, 2, beam_size=3, max_length=L, eos_id=EOS))(cache)
  np.testing.assert_array_equal(beam[0].numpy(),
                                beam_search(step_fn, cache, 2, beam_size=3, max_length=L, eos_id=EOS)[0].numpy())
