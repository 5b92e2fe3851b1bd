"""How a sample is stored in a tf.train.Example and parsed back: each role by its modality's codec
(`Modality.encode`, `spec`, `decode`; see modalities/). A text role also keeps its raw text,
untouched, as "<role>_text" (bytes), so that evaluation scores against the whole reference
whatever length training cuts ids to.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from t2t_multimodel import modalities
from t2t_multimodel.modalities.base import bytes_feature
from t2t_multimodel.vocab import SubwordVocab


def encode_example(sample, input_modality: str, target_modality: str,
                   vocab: SubwordVocab | None) -> bytes:
  """A raw sample -> a serialised tf.train.Example with "inputs" and "targets" (and the raw
  "inputs_text" / "targets_text" of text roles)."""
  features = {}
  for role, name in (("inputs", input_modality), ("targets", target_modality)):
    modality = modalities.MODALITIES.get(name)
    features[role] = modality.encode(sample[role], vocab)
    if modality.text:
      features[text_key(role)] = bytes_feature(sample[role].encode("utf-8"))
  return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def text_key(role: str) -> str:
  """The feature holding a text role's raw text: "inputs_text" or "targets_text"."""
  return f"{role}_text"


def parse_fn(input_modality: str, target_modality: str,
             with_text: bool = False) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
  """Returns serialised Example -> {"inputs": tensor, "targets": tensor}, decoded.

  with_text: also "<role>_text" (a string scalar) for each text role.
  """
  roles = {"inputs": modalities.MODALITIES.get(input_modality),
           "targets": modalities.MODALITIES.get(target_modality)}
  spec = {role: modality.spec() for role, modality in roles.items()}
  texts = [text_key(role) for role, modality in roles.items() if with_text and modality.text]
  spec.update({key: tf.io.FixedLenFeature([], tf.string) for key in texts})

  def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    parsed = tf.io.parse_single_example(serialized, spec)
    values = {role: modality.decode(parsed[role]) for role, modality in roles.items()}
    values.update({key: parsed[key] for key in texts})
    return values

  return parse
