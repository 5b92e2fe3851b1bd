"""An auxiliary CTC loss on the encoder output of speech problems (hybrid CTC/attention).

Graves et al. (2006) score every monotonic alignment of a label sequence to the frames; Watanabe et
al. (2017, "Hybrid CTC/Attention Architecture for End-to-End Speech Recognition") add it, weighted,
to an attention decoder's cross-entropy, so that the encoder learns where each token is spoken from
the first steps instead of after the decoder has found its own alignment. Here the encoder output of
an audio problem goes through the targets' own output layer (the shared softmax, no new weights)
and the PAD id is CTC's blank, since no target token is ever PAD.

  encoded [B, S, D] --shared softmax--> logits [B, S, V]; targets [B, T] (PAD-padded)
  -> sum of the examples' CTC negative log-likelihoods / their target tokens (a scalar)
"""

from __future__ import annotations

import tensorflow as tf

from t2t_multimodel.vocab import EOS_ID, PAD_ID


def ctc_loss(logits, logit_mask, labels):
  """The mean CTC loss per label token.

  Args:
    logits: float [B, S, V], blank = PAD_ID.
    logit_mask: bool [B, S], True on real encoder positions (a prefix of each row).
    labels: int [B, T], padded with PAD_ID.

  An example whose labels cannot be aligned to its positions (CTC needs one position per label and
  one more between two equal neighbours), or that has none, adds nothing: its loss and its tokens
  are left out, so a very fast utterance never makes the loss infinite.

  Example:
    >>> logits = tf.zeros([1, 4, 5])                                    # uniform over 5 classes
    >>> # 15 of the 5**4 frame labellings collapse to [3, 4]: -log(15 / 625) / 2 tokens
    >>> round(float(ctc_loss(logits, tf.ones([1, 4], bool), tf.constant([[3, 4]]))), 4)
    1.8649
  """
  labels = tf.cast(labels, tf.int32)
  real = tf.not_equal(labels, PAD_ID)                                      # [B, T]
  label_length = tf.reduce_sum(tf.cast(real, tf.int32), axis=1)            # [B]
  logit_length = tf.reduce_sum(tf.cast(logit_mask, tf.int32), axis=1)      # [B]
  repeats = tf.reduce_sum(tf.cast(real[:, 1:] & tf.equal(labels[:, 1:], labels[:, :-1]), tf.int32),
                          axis=1)                                          # [B]
  feasible = (label_length > 0) & (label_length + repeats <= logit_length)  # [B]
  # Sparse labels select TensorFlow's C++ CTC kernel (dense ones its pure-TF version, a scan over
  # the positions, under which a speech-only probe on shared cores ran at ~0.55 steps/s); PAD
  # entries are dropped, they are not labels. The kernel refuses an empty or unalignable label
  # sequence, so such an example is scored as the one label EOS over at least one position
  # (finite), then weighted 0.
  stand_in = tf.one_hot(tf.zeros_like(label_length), tf.shape(labels)[1], on_value=EOS_ID,
                        off_value=PAD_ID, dtype=tf.int32)                   # [B, T]: EOS, PAD, ..
  labels = tf.where(feasible[:, None], labels, stand_in)
  per_example = tf.nn.ctc_loss(tf.sparse.from_dense(labels), tf.cast(logits, tf.float32), None,
                               tf.maximum(logit_length, 1), logits_time_major=False,
                               blank_index=PAD_ID)                         # [B]
  weights = tf.cast(feasible, tf.float32)
  tokens = tf.reduce_sum(tf.cast(label_length, tf.float32) * weights)
  return tf.reduce_sum(per_example * weights) / tf.maximum(tokens, 1.0)
