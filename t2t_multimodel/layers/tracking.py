"""Lists and dicts of layers as tf.train.Checkpoint dependencies.

Keras 3 on TensorFlow keeps a layer's lists and dicts of sublayers in its own tracked collections,
which `tf.train.Checkpoint` does not follow: `tf.train.Checkpoint(model=model)` silently leaves
the weights of `self.blocks = [ConvBlock(...), ...]` out of the model's object graph (a training
checkpoint still holds them, through the optimizer's variable list, but a model restored alone
would keep its initial weights). Layers that hold such collections mix in `CheckpointedCollections`,
which names each element a dependency of its own, "<attribute>/<index or key>", so checkpoints
restore by structure whatever the order in which the weights were created.
"""

from __future__ import annotations

import tensorflow as tf


class CheckpointedCollections:
  """Mixin for a keras.layers.Layer (or Model): its lists and dicts of layers go into checkpoints.

  Example:
    >>> class Stack(CheckpointedCollections, keras.layers.Layer):
    ...   def __init__(self, **kwargs):
    ...     super().__init__(**kwargs)
    ...     self.blocks = [keras.layers.Dense(4) for _ in range(3)]   # "blocks/0", "blocks/1", ...
  """

  def _trackable_children(self, save_type="checkpoint", **kwargs):
    children = super()._trackable_children(save_type, **kwargs)
    if save_type != "checkpoint":
      return children
    for attribute in getattr(self, "_tracked", ()):
      collection = getattr(self, attribute, None)
      if isinstance(collection, dict):
        items = collection.items()
      elif isinstance(collection, (list, tuple)):
        items = enumerate(collection)
      else:
        continue
      for key, item in items:
        if isinstance(item, tf.__internal__.tracking.Trackable):
          children[f"{attribute}/{key}"] = item
    return children
