"""Beam search with a length penalty over an incremental-decoding cache (after T2T's beam_search.py).

The decoder is a `step_fn(ids, step, cache) -> (logits, cache)`: `ids` [N] are the tokens chosen
at `step - 1` (ignored at step 0, where the model inserts the command token), `logits` [N, V] score
the token at `step`, and `cache` is any nest of tensors whose leading dimension is N. Beam search
runs it on N = batch * beam rows and reorders the cache rows as beams are chosen.

Scores are log-probabilities divided by the GNMT length penalty ((5 + length) / 6) ** alpha, the
length counting the EOS. A hypothesis ends at EOS or at `decode_length` (at most `max_length`, the
size of the returned rows; T2T decodes up to the input length + 100).
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

NEG_INF = -1e9
StepFn = Callable[[tf.Tensor, tf.Tensor, Any], tuple[tf.Tensor, Any]]


def length_penalty(length: tf.Tensor, alpha: float) -> tf.Tensor:
  return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def tile_beams(nest: Any, beam_size: int) -> Any:
  """Repeats each row of every tensor beam_size times: [B, ...] -> [B * K, ...]."""
  return tf.nest.map_structure(lambda t: tf.repeat(t, beam_size, axis=0), nest)


def _gather_beams(nest: Any, beam_indices: tf.Tensor, batch_size, beam_size: int) -> Any:
  """Picks rows of [B * K, ...] tensors by beam_indices [B, K] -> [B * K, ...].

  Each tensor keeps its static shape (a known B * K included), which the decoding loop requires
  of its cache."""
  def gather(t):
    rows = tf.reshape(t, tf.concat([[batch_size, beam_size], tf.shape(t)[1:]], 0))    # [B, K, ...]
    picked = tf.gather(rows, beam_indices, batch_dims=1)                               # [B, K, ...]
    return tf.ensure_shape(tf.reshape(picked, tf.shape(t)), t.shape)                   # [B * K, ...]
  return tf.nest.map_structure(gather, nest)


def beam_search(step_fn: StepFn, cache: Any, batch_size, beam_size: int, max_length: int,
                eos_id: int = 1, alpha: float = 0.6, stop_early: bool = True,
                decode_length=None) -> tuple[tf.Tensor, tf.Tensor]:
  """Returns the best hypothesis per batch row and its score.

  Args:
    step_fn: the incremental decoder (see module docstring).
    cache: its initial cache for B rows (tiled here to B * K).
    batch_size: B (an int or a scalar tensor).
    beam_size: K.
    max_length: the length of the returned rows.
    eos_id: the end-of-sequence id.
    alpha: the length penalty exponent (0: no penalty).
    stop_early: stop once no alive beam can beat the best finished hypothesis (same result);
      False runs every batch to decode_length.
    decode_length: the most tokens generated, EOS included (an int or a scalar tensor, at most
      max_length; default max_length).

  Returns:
    ids [B, max_length] (0-padded after EOS) and scores [B].

  Example:
    >>> ids, scores = beam_search(step_fn, cache, batch_size=8, beam_size=4, max_length=64)
  """
  k = beam_size
  decode_length = max_length if decode_length is None else tf.minimum(decode_length, max_length)
  cache = tile_beams(cache, k)
  alive_seq = tf.zeros([batch_size, k, max_length], tf.int32)                         # [B, K, L]
  alive_log_probs = tf.tile(tf.constant([[0.0] + [NEG_INF] * (k - 1)]), [batch_size, 1])  # [B, K]
  finished_seq = tf.zeros([batch_size, k, max_length], tf.int32)                      # [B, K, L]
  finished_scores = tf.fill([batch_size, k], NEG_INF)                                 # [B, K]
  prev_ids = tf.zeros([batch_size * k], tf.int32)

  for step in tf.range(decode_length):
    logits, cache = step_fn(prev_ids, step, cache)                                    # [B*K, V]
    vocab_size = tf.shape(logits)[-1]
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    log_probs = tf.reshape(log_probs, [batch_size, k, vocab_size]) + alive_log_probs[:, :, None]
    flat = tf.reshape(log_probs, [batch_size, k * vocab_size])                         # [B, K*V]
    top_log_probs, top_index = tf.math.top_k(flat, k=2 * k)                           # [B, 2K]
    top_beam, top_token = top_index // vocab_size, top_index % vocab_size
    top_seq = tf.gather(alive_seq, top_beam, batch_dims=1)                            # [B, 2K, L]
    position = tf.one_hot(step, max_length, dtype=tf.int32)                           # [L]
    top_seq += top_token[:, :, None] * position
    is_eos = tf.logical_or(tf.equal(top_token, eos_id), tf.equal(step, decode_length - 1))

    # The K best candidates that go on.
    alive_scores = tf.where(tf.equal(top_token, eos_id), NEG_INF, top_log_probs)
    alive_log_probs, keep = tf.math.top_k(alive_scores, k=k)                          # [B, K]
    alive_seq = tf.gather(top_seq, keep, batch_dims=1)
    cache = _gather_beams(cache, tf.gather(top_beam, keep, batch_dims=1), batch_size, k)
    prev_ids = tf.reshape(tf.gather(top_token, keep, batch_dims=1), [-1])

    # The K best finished hypotheses so far.
    new_scores = top_log_probs / length_penalty(step + 1, alpha)
    new_scores = tf.where(is_eos, new_scores, NEG_INF)
    all_seq = tf.concat([finished_seq, top_seq], axis=1)                              # [B, 3K, L]
    all_scores = tf.concat([finished_scores, new_scores], axis=1)                     # [B, 3K]
    finished_scores, best = tf.math.top_k(all_scores, k=k)
    finished_seq = tf.gather(all_seq, best, batch_dims=1)

    # Stop once no alive beam can still beat the best finished one: log-probs only fall and the
    # penalty is largest at decode_length, so this bounds every later score. Only the best finished
    # hypothesis is returned, so stopping here returns what running to decode_length would (T2T
    # waits for the worst of the K finished, as it can return all K).
    best_alive = alive_log_probs[:, 0] / length_penalty(decode_length, alpha)
    if stop_early and tf.reduce_all(best_alive < finished_scores[:, 0]):
      break

  return finished_seq[:, 0], finished_scores[:, 0]


def greedy_search(step_fn: StepFn, cache: Any, batch_size, max_length: int,
                  eos_id: int = 1, decode_length=None) -> tf.Tensor:
  """Arg-max decoding: ids [B, max_length], 0-padded after each row's EOS; at most
  `decode_length` tokens (an int or a scalar tensor, default max_length) are generated."""
  decode_length = max_length if decode_length is None else tf.minimum(decode_length, max_length)
  ids = tf.TensorArray(tf.int32, size=max_length, element_shape=[None], clear_after_read=False)
  prev_ids = tf.zeros([batch_size], tf.int32)
  done = tf.zeros([batch_size], tf.bool)
  for step in tf.range(decode_length):
    logits, cache = step_fn(prev_ids, step, cache)                                    # [B, V]
    next_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    next_ids = tf.where(done, 0, next_ids)
    ids = ids.write(step, next_ids)
    done = tf.logical_or(done, tf.equal(next_ids, eos_id))
    prev_ids = next_ids
    if tf.reduce_all(done):
      break
  ids = tf.transpose(ids.stack())                                                     # [B, steps]
  return tf.pad(ids, [[0, 0], [0, max_length - tf.shape(ids)[1]]])                    # [B, L]
