"""The MultiModel (Kaiser et al. 2017): modality nets around one shared encoder, I/O mixer and
decoder, with a command token telling the decoder what to produce. One model, one set of
weights, every problem.

  inputs  --modality bottom--> [B, S, D] + command --encoder--> encoded [B, S, D]
  class-label targets: encoded --exit flow--> logits [B, C]
  text targets: [command, y_0 .. y_{T-2}] --symbol embedding--> mixer + decoder --softmax--> [B, T, V]
"""

from __future__ import annotations

import keras
import tensorflow as tf

from t2t_multimodel import modalities
from t2t_multimodel.body import Encoder, Memory, TargetSide
from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.layers.conv import SERIALIZABLE
from t2t_multimodel.problem import NUM_COMMAND_TOKENS
from t2t_multimodel.registry import Registry

MODELS: Registry = Registry("model")


def _dummy_features(problem: dict, hp: HParams) -> dict:
  """A batch of one small example per modality, to create every weight."""
  inputs = {"symbol": lambda: tf.ones([1, 8], tf.int32),
            "image": lambda: tf.zeros([1, hp.image_size, hp.image_size, 3]),
            "audio": lambda: tf.ones([1, 8 * 2 ** hp.audio_time_strides, 80])}
  targets = {"symbol": lambda: tf.ones([1, 4], tf.int32), "class_label": lambda: tf.zeros([1, 1], tf.int32)}
  return {"inputs": inputs[problem["input_modality"]](), "targets": targets[problem["target_modality"]]()}


@SERIALIZABLE
class MultiModel(keras.Model):
  """One model for every registered problem of a run.

  Args:
    hparams: an HParams or its dict (as in hparams.json).
    problems: the problems' signatures (`Problem.signature()`), which say the modalities,
      the command token and the number of classes.

  Example:
    >>> model = MultiModel(multimodel_tiny(), [PROBLEMS.get("translate_ende_bible").signature()])
    >>> logits = model({"inputs": ids, "targets": target_ids}, problem="translate_ende_bible")
  """

  def __init__(self, hparams: HParams | dict, problems: list[dict], **kwargs):
    super().__init__(**kwargs)
    self.hp = hparams if isinstance(hparams, HParams) else HParams.from_dict(hparams)
    self.hp.validate()
    self.problems = {p["name"]: dict(p) for p in problems}
    self.modality_nets = {}
    for problem in self.problems.values():
      for role in ("input_modality", "target_modality"):
        key = modalities.modality_key(problem[role], problem)
        if key not in self.modality_nets:
          self.modality_nets[key] = modalities.MODALITY_NETS.get(problem[role])(self.hp, problem)
    if any(p["target_modality"] == "symbol" for p in self.problems.values()):
      self.modality_nets.setdefault("symbol", modalities.MODALITY_NETS.get("symbol")(self.hp, None))
    self.command_embedding = keras.layers.Embedding(NUM_COMMAND_TOKENS, self.hp.hidden_size,
                                                    name="command_embedding")
    self.encoder = Encoder(self.hp, name="encoder")
    self.target_side = TargetSide(self.hp, name="target_side")

  # --- Pieces shared by training and decoding. ---------------------------------------------------

  def _net(self, problem: str, role: str):
    signature = self.problems[problem]
    return self.modality_nets[modalities.modality_key(signature[role], signature)]

  def _command(self, problem: str, batch_size) -> tf.Tensor:
    ids = tf.fill([batch_size, 1], self.problems[problem]["command"])
    return self.command_embedding(ids)                                     # [B, 1, D]

  def _encode(self, inputs, problem: str, training: bool):
    x, mask, grid = self._net(problem, "input_modality").bottom(inputs, training=training)  # [B, S, D]
    x = x + self._command(problem, tf.shape(x)[0])                         # the task, for the encoder
    return self.encoder(x, padding_mask=mask, training=training), mask, grid

  def call(self, features, problem: str, training: bool = False):
    encoded, mask, grid = self._encode(features["inputs"], problem, training)
    top = self._net(problem, "target_modality")
    if self.problems[problem]["target_modality"] == "class_label":
      return top.top(encoded, mask=mask, grid=grid)                        # [B, C]
    targets = features["targets"]                                          # [B, T]
    command = self._command(problem, tf.shape(targets)[0])
    shifted = tf.concat([command, top.embed(targets[:, :-1])], axis=1)     # [B, T, D]
    state = Memory.build(encoded, mask, self.target_side.memory_attentions())
    return top.top(self.target_side(shifted, state, training=training))    # [B, T, V]

  def problem_loss(self, problem: str, features, logits):
    """(mean label-smoothed cross-entropy over non-padding targets, their count)."""
    top = self._net(problem, "target_modality")
    return top.loss(logits, features["targets"], self.hp.label_smoothing)

  # --- Incremental decoding (text targets). ------------------------------------------------------

  def encode(self, features, problem: str) -> dict:
    """Encodes the inputs once: a dict of batch-major tensors for `decode_step`."""
    encoded, mask, _ = self._encode(features["inputs"], problem, training=False)
    return Memory.build(encoded, mask, self.target_side.memory_attentions())

  def init_cache(self, state: dict, max_length: int) -> dict:
    return self.target_side.init_cache(tf.shape(state["bias"])[0], max_length)

  def decode_step(self, state, cache, prev_ids, step, problem: str):
    """Logits [B, V] of target position `step`; prev_ids [B] is the token at step - 1."""
    top = self._net(problem, "target_modality")
    batch_size = tf.shape(prev_ids)[0]
    token = top.embed(tf.maximum(prev_ids, 0)[:, None])                    # [B, 1, D]
    y = tf.where(tf.equal(step, 0), self._command(problem, batch_size), token)
    y, cache = self.target_side.step(y, step, state, cache)                # [B, 1, D]
    return top.top(y)[:, 0], cache                                         # [B, V]

  # --- Keras plumbing. ---------------------------------------------------------------------------

  def build(self, *unused_shapes):
    """Weights are created per problem on the first call (or all at once by `build_all`)."""
    self.built = True

  def build_all(self) -> None:
    """Creates every weight by running one tiny batch of each problem."""
    for name, problem in self.problems.items():
      self(_dummy_features(problem, self.hp), problem=name, training=False)
    for net in self.modality_nets.values():
      net.built = True  # their sublayers are built; mark them too, for summary()

  def get_config(self):
    return {**super().get_config(), "hparams": dict(self.hp.__dict__),
            "problems": list(self.problems.values())}

  def get_build_config(self):
    return {"problems": sorted(self.problems)}

  def build_from_config(self, config):
    self.build_all()


MODELS.add("multimodel", MultiModel)
