"""Beam and greedy search on toy second-order Markov decoders (lookup tables, no model).

A table [V, V, V] holds log p(next | token two back, previous token); the step function reads the
previous token from `ids` and the one before it from the cache, so a beam whose cache rows were
not reordered with it scores the wrong continuations. The best hypothesis is known by brute force.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.infer.beam_search import beam_search, greedy_search

EOS, V, L = 1, 5, 4


def _step_fn(tables, seen=None):
  """tables [B, V, V, V]; cache {"row": [N] batch row, "prev2": [N] the token two steps back}.

  `seen`, a list, receives [N, 2] (token two back, previous token) of every step (eager only).
  """
  def step_fn(ids, step, cache):
    prev1 = tf.where(step == 0, tf.zeros_like(ids), ids)                      # [N]
    context = tf.stack([cache["row"], cache["prev2"], prev1], axis=1)          # [N, 3]
    if seen is not None:
      seen.append(context[:, 1:].numpy())
    logits = tf.gather_nd(tables, context)                                     # [N, V]
    return logits, {"row": cache["row"], "prev2": prev1}
  return step_fn


def _cache(batch_size):
  return {"row": tf.range(batch_size), "prev2": tf.zeros([batch_size], tf.int32)}


def _random_tables(seed):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(2, V, V, V)).astype(np.float32) * 2.0
  logits[..., 0] = -1e4  # never emit padding
  return tf.nn.log_softmax(logits).numpy()


def _table(rules):
  """{(prev2, prev1): {next: p}} -> log-probs [V, V, V]. The rest of a context's mass is spread
  evenly over its unlisted tokens 1..V-1; unlisted contexts are uniform; padding is never emitted."""
  probs = np.zeros((V, V, V), np.float64)
  for prev2, prev1 in itertools.product(range(V), repeat=2):
    listed = rules.get((prev2, prev1), {})
    others = [t for t in range(1, V) if t not in listed]
    rest = max(1.0 - sum(listed.values()), 1e-6)
    for t in range(1, V):
      probs[prev2, prev1, t] = listed.get(t, rest / len(others) if others else 0.0)
  probs[..., 0] = 1e-12
  return np.log(probs / probs.sum(-1, keepdims=True)).astype(np.float32)


def _log_prob(table, tokens):
  """The total log-prob of a hypothesis (0-padded after EOS) under one [V, V, V] table."""
  total, prev2, prev1 = 0.0, 0, 0
  for t in tokens:
    if t == 0:
      break
    total, prev2, prev1 = total + float(table[prev2, prev1, t]), prev1, int(t)
    if t == EOS:
      break
  return total


def _penalty(length, alpha):
  return ((5.0 + length) / 6.0) ** alpha


def _brute_force(table, alpha, max_tokens=L):
  """The best hypothesis: ends in EOS, or is cut at max_tokens (whatever its last token)."""
  best, best_score = None, -np.inf
  for length in range(1, max_tokens + 1):
    for seq in itertools.product(range(2, V), repeat=length - 1):
      for last in ([EOS] if length < max_tokens else range(1, V)):
        tokens = list(seq) + [last]
        score = _log_prob(table, tokens) / _penalty(length, alpha)
        if score > best_score:
          best, best_score = tokens, score
  return best, best_score


def _tokens(row):
  return [int(t) for t in row if t != 0]


# Row 0: greedy's first choice, 2 (p=0.6), leads to a worse sequence than 3 (p=0.4). After step 1
# the beams are [2, 4] (0.54) then [3, 4] (0.36), both ending in 4: only the cache's token two back
# tells them apart, and the second one wins, [3, 4, EOS] (0.356) > [2, 4, EOS] (0.162).
# Row 1: after step 1 [4, 3] (0.63) then [2, 3] (0.27); the first one wins, [4, 3, EOS].
TRAP = np.stack([
    _table({(0, 0): {2: 0.6, 3: 0.4}, (0, 2): {4: 0.9}, (0, 3): {4: 0.9},
            (2, 4): {EOS: 0.3}, (3, 4): {EOS: 0.99}}),
    _table({(0, 0): {4: 0.7, 2: 0.3}, (0, 4): {3: 0.9}, (0, 2): {3: 0.9},
            (4, 3): {EOS: 0.99}, (2, 3): {EOS: 0.99}}),
])


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_finds_the_best_hypothesis(alpha, seed):
  tables = _random_tables(seed)
  ids, scores = beam_search(_step_fn(tf.constant(tables)), _cache(2), 2, beam_size=(V - 1) ** (L - 1),
                            max_length=L, eos_id=EOS, alpha=alpha)
  for row in range(2):
    expected, expected_score = _brute_force(tables[row], alpha)
    assert _tokens(ids[row]) == expected
    assert scores[row].numpy() == pytest.approx(expected_score, rel=1e-5)


def test_beam_beats_greedy_and_finds_the_brute_force_best():
  step_fn = _step_fn(tf.constant(TRAP))
  greedy = greedy_search(step_fn, _cache(2), 2, max_length=L, eos_id=EOS).numpy()
  ids, scores = beam_search(step_fn, _cache(2), 2, beam_size=2, max_length=L, eos_id=EOS, alpha=0.0)
  assert _tokens(greedy[0]) == [2, 4, EOS]
  for row in range(2):
    expected, expected_score = _brute_force(TRAP[row], alpha=0.0)
    beam_log_prob = _log_prob(TRAP[row], ids[row].numpy())
    assert _tokens(ids[row]) == expected
    assert beam_log_prob == pytest.approx(expected_score, abs=1e-5)
    assert scores[row].numpy() == pytest.approx(beam_log_prob, abs=1e-5)
  assert _log_prob(TRAP[0], ids[0].numpy()) > _log_prob(TRAP[0], greedy[0]) + 0.5  # log(0.356 / 0.162)


def test_the_beam_second_after_step_one_wins_with_its_own_cache():
  seen = []
  ids, scores = beam_search(_step_fn(tf.constant(TRAP), seen), _cache(2), 2, beam_size=2,
                            max_length=L, eos_id=EOS, alpha=0.0)
  # The alive beams entering step 2, best first: [B, K, 2] (token two back, previous token).
  beams = seen[2].reshape(2, 2, 2).tolist()
  assert beams[0] == [[2, 4], [3, 4]]
  assert beams[1] == [[4, 3], [2, 3]]
  np.testing.assert_array_equal(ids.numpy(), [[3, 4, EOS, 0], [4, 3, EOS, 0]])
  np.testing.assert_allclose(scores.numpy(), np.log([0.4 * 0.9 * 0.99, 0.7 * 0.9 * 0.99]), atol=1e-5)
  compiled = tf.function(lambda c: beam_search(_step_fn(tf.constant(TRAP)), c, tf.constant(2), beam_size=2,
                                               max_length=L, eos_id=EOS, alpha=0.0))(_cache(2))
  np.testing.assert_array_equal(compiled[0].numpy(), ids.numpy())
  np.testing.assert_allclose(compiled[1].numpy(), scores.numpy(), atol=1e-6)


# A short hypothesis [2, EOS] (p=0.3) against a long one [3, 4, 4, EOS] (p=0.2025): the log-prob
# ratio 1.33 lies between the penalty ratios ((5+4)/(5+2))**alpha, 1.16 at 0.6 and 1.65 at 2.
SHORT_OR_LONG = _table({(0, 0): {2: 0.5, 3: 0.5}, (0, 2): {EOS: 0.6}, (0, 3): {4: 0.9}, (3, 4): {4: 0.9},
                        (4, 4): {EOS: 0.5}})


@pytest.mark.parametrize("alpha, winner", [(0.0, [2, EOS]), (0.6, [2, EOS]), (2.0, [3, 4, 4, EOS])])
def test_length_penalty_decides_between_short_and_long(alpha, winner):
  ids, scores = beam_search(_step_fn(tf.constant(SHORT_OR_LONG[None])), _cache(1), 1, beam_size=2,
                            max_length=L, eos_id=EOS, alpha=alpha)
  assert _tokens(ids[0]) == winner == _brute_force(SHORT_OR_LONG, alpha)[0]
  expected = np.log(0.3 if len(winner) == 2 else 0.5 * 0.9 * 0.9 * 0.5) / _penalty(len(winner), alpha)
  assert scores[0].numpy() == pytest.approx(expected, abs=1e-5)


def test_greedy_pads_after_eos_and_works_in_tf_function():
  step_fn = _step_fn(tf.constant(_random_tables(3)))
  cache = _cache(2)
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


def test_beam_search_keeps_a_static_batch_in_tf_function():
  """A cache with a known batch (mm-decoder on one line: [1, ...] inputs, [K, ...] after tiling)
  keeps its shape through the beam reordering, as tf.function's loop requires."""
  step_fn = _step_fn(tf.constant(_random_tables(3)))

  def with_memory(ids, step, cache):
    logits, new = step_fn(ids, step, cache)
    return logits, {**new, "memory": cache["memory"]}

  cache = {**_cache(2), "memory": tf.zeros([2, 1, 1, 3])}
  spec = {"row": tf.TensorSpec([2], tf.int32), "prev2": tf.TensorSpec([2], tf.int32),
          "memory": tf.TensorSpec([2, 1, 1, None], tf.float32)}
  search = tf.function(lambda c: beam_search(with_memory, c, 2, beam_size=3, max_length=L, eos_id=EOS),
                       input_signature=[spec])
  np.testing.assert_array_equal(
      search(cache)[0].numpy(),
      beam_search(with_memory, cache, 2, beam_size=3, max_length=L, eos_id=EOS)[0].numpy())


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_stopping_early_returns_what_the_full_search_returns(alpha):
  # Longer than the brute-force tests, so that every row has a finished hypothesis well before
  # max_length and the search stops once no alive beam can beat the best of them.
  tables = tf.constant(np.stack([_random_tables(seed)[0] for seed in range(8)]))
  max_length, steps = 12, {}
  for stop_early in (True, False):
    seen = []
    steps[stop_early] = seen
    ids, scores = beam_search(_step_fn(tables, seen), _cache(8), 8, beam_size=3, max_length=max_length,
                              eos_id=EOS, alpha=alpha, stop_early=stop_early)
    if stop_early:
      early_ids, early_scores = ids.numpy(), scores.numpy()
  np.testing.assert_array_equal(early_ids, ids.numpy())
  np.testing.assert_allclose(early_scores, scores.numpy(), rtol=1e-6)
  assert len(steps[False]) == max_length
  if alpha < 1.0:  # at alpha 2 the bound, the penalty at max_length, is too loose to stop at 12
    assert len(steps[True]) < max_length


@pytest.mark.parametrize("decode_length", [2, 3, tf.constant(3)])
def test_decode_length_cuts_hypotheses_short_of_max_length(decode_length):
  tables = _random_tables(3)
  ids, scores = beam_search(_step_fn(tf.constant(tables)), _cache(2), 2, beam_size=(V - 1) ** (L - 1),
                            max_length=L, eos_id=EOS, alpha=0.6, decode_length=decode_length)
  greedy = greedy_search(_step_fn(tf.constant(tables)), _cache(2), 2, max_length=L, eos_id=EOS,
                         decode_length=decode_length).numpy()
  cut = int(decode_length)
  assert ids.shape == greedy.shape == (2, L)
  assert not ids.numpy()[:, cut:].any() and not greedy[:, cut:].any()
  for row in range(2):
    expected, expected_score = _brute_force(tables[row], 0.6, max_tokens=cut)
    assert _tokens(ids[row]) == expected
    assert scores[row].numpy() == pytest.approx(expected_score, rel=1e-5)
