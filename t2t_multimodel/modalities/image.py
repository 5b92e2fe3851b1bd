"""Images, as inputs: the paper's Xception-like entry flow into the shared body.

  stored       PNG bytes (RGB; `to_rgb_png` turns any Pillow format into them)
  preprocessed float32 [S, S, 3] in [0, 1], S = image_size; the aspect ratio is kept: resized
               (antialiased bilinear) to fit, then centred on zeros
  net          float [B, S, S, 3] -> [B, h * w, D], the grid (h, w) kept for a class-label top
"""

from __future__ import annotations

import io
import math

import keras
import numpy as np
import tensorflow as tf

from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.layers.conv import ConvRes, SERIALIZABLE
from t2t_multimodel.layers.tracking import CheckpointedCollections
from t2t_multimodel.modalities.base import Layout, Modality, bytes_feature
from t2t_multimodel.vocab import SubwordVocab


def image_strides(image_size: int) -> int:
  """How many of the entry flow's 4 stride-2 slots are used: the grid ends near 8x8 (the
  paper's 224x224 ImageNet images: all 4, a 14x14 grid)."""
  return max(1, min(4, round(math.log2(max(image_size, 16) / 8))))


def to_rgb_png(data: bytes) -> bytes:
  """Image bytes in any Pillow format (RGBA or palette with transparency too) -> RGB PNG bytes,
  composited onto white: what the image codec stores."""
  from PIL import Image  # only where images are read from files

  with Image.open(io.BytesIO(data)) as image:
    rgba = image.convert("RGBA")                                        # [H, W, 4]
  white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
  buffer = io.BytesIO()
  Image.alpha_composite(white, rgba).convert("RGB").save(buffer, format="PNG")  # [H, W, 3]
  return buffer.getvalue()


TF_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")  # what tf.io decodes: PNG, JPEG, GIF, BMP


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def image_from_bytes(data: tf.Tensor) -> tf.Tensor:
  """Encoded PNG, JPEG, GIF (first frame) or BMP bytes -> float RGB [H, W, 3] in [0, 1], alpha
  composited onto white, in graph ops only: what a SavedModel and mm-decoder both feed the model."""
  def rgba_png():
    return tf.image.convert_image_dtype(tf.io.decode_png(data, channels=4), tf.float32)    # [H, W, 4]

  def rgb_other():
    rgb = tf.io.decode_image(data, channels=3, expand_animations=False)                    # [H, W, 3]
    rgb = tf.image.convert_image_dtype(rgb, tf.float32)
    return tf.concat([rgb, tf.ones_like(rgb[:, :, :1])], axis=-1)                          # [H, W, 4]

  rgba = tf.cond(tf.equal(tf.strings.substr(data, 0, 4), TF_IMAGE_MAGIC[0]), rgba_png, rgb_other)
  alpha = rgba[:, :, 3:]
  return rgba[:, :, :3] * alpha + (1.0 - alpha)                                            # [H, W, 3]


@SERIALIZABLE
class ImageModality(CheckpointedCollections, keras.layers.Layer):
  """The paper's image modality net, an Xception-like entry flow, then flattened to a sequence:

    h = LN(Conv_{3x3, C/16}(ReLU(LN(Conv_{3x3, C/32, stride}(x)))))    the stem
    ImageModalityIn(x) = ConvRes(ConvRes(ConvRes(h, D/8), D/4), D)   -> [B, h * w, D]

  With D = 1024 the widths are the paper's 32, 64, 128, 256, 1024. The paper strides the first
  stem conv and the three ConvRes blocks by 2 (224 -> 14); small images use only the last
  `image_strides(image_size)` of those four strides, ending near an 8x8 grid. Pixels come in
  [0, 1] and are mapped to [-1, 1]. The grid is flattened row-major.

  Args:
    hidden_size: D.
    image_size: the input's height and width.

  Example:
    >>> net = ImageModality(64, image_size=16)
    >>> x, mask, grid = net.bottom(tf.zeros([2, 16, 16, 3]))
    >>> x.shape, grid
    (TensorShape([2, 64, 64]), (8, 8))
  """

  def __init__(self, hidden_size: int, image_size: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size, self.image_size = hidden_size, image_size
    d = hidden_size
    strides = [2 if i >= 4 - image_strides(image_size) else 1 for i in range(4)]
    self.stem_1 = keras.layers.Conv2D(max(d // 32, 8), 3, strides=strides[0], padding="same",
                                      name="stem_conv_1")
    self.stem_2 = keras.layers.Conv2D(max(d // 16, 8), 3, padding="same", name="stem_conv_2")
    self.stem_norms = [keras.layers.LayerNormalization(epsilon=1e-6, name=f"stem_norm_{i}")
                       for i in (1, 2)]
    widths = [max(d // 8, 16), max(d // 4, 16), d]
    self.blocks = [ConvRes(w, strides=s, rank=2, name=f"conv_res_{i}")
                   for i, (w, s) in enumerate(zip(widths, strides[1:]))]

  def bottom(self, images, training=False):
    x = self.stem_norms[0](self.stem_1(images * 2.0 - 1.0))                # [B, S/s, S/s, D/32]
    x = self.stem_norms[1](self.stem_2(tf.nn.relu(x)))                     # [B, S/s, S/s, D/16]
    for block in self.blocks:
      x = block(x)                                                         # [B, h_i, w_i, C_i]
    height, width = x.shape[1], x.shape[2]
    x = tf.reshape(x, [-1, height * width, self.hidden_size])              # [B, h * w, D]
    mask = tf.ones(tf.shape(x)[:2], tf.bool)                               # [B, h * w]
    return x, mask, (height, width)

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size, "image_size": self.image_size}


class Image(Modality):
  name = "image"
  client = "file"
  accept = "image/png,image/jpeg,image/gif,image/bmp"
  client_description = "an image file (PNG, JPEG, GIF or BMP)"
  grid = True

  def encode(self, png: bytes, vocab: SubwordVocab | None) -> tf.train.Feature:
    if not isinstance(png, bytes) or not png.startswith(b"\x89PNG"):
      raise ValueError("An image feature must be PNG-encoded bytes.")
    return bytes_feature(png)

  def spec(self):
    return tf.io.FixedLenFeature([], tf.string)

  def decode(self, encoded: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_png(encoded, channels=3)                        # [H, W, 3] uint8
    return tf.image.convert_image_dtype(image, tf.float32)               # [H, W, 3] in [0, 1]

  def layout(self, hp: HParams, role: str) -> Layout:
    size = hp.image_size

    def fit(image: tf.Tensor) -> tf.Tensor:
      shape = tf.cast(tf.shape(image)[:2], tf.float32)                   # [2]: H, W
      fitted = tf.maximum(tf.cast(tf.round(shape * size / tf.reduce_max(shape)), tf.int32), 1)
      image = tf.image.resize(image, fitted, antialias=True)             # [h, w, 3], max(h, w) = S
      offsets = (size - fitted) // 2
      image = tf.image.pad_to_bounding_box(image, offsets[0], offsets[1], size, size)  # [S, S, 3]
      return tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0), [size, size, 3])

    return Layout(fit, None, [size, size, 3], None)

  def body_positions(self, hp: HParams, length: int) -> int:
    side = math.ceil(hp.image_size / 2 ** image_strides(hp.image_size))  # "same" stride-2 convs
    return side * side                                                   # the grid h * w

  def decoded_bytes(self, hp: HParams) -> int:
    return 4 * 3 * hp.image_size ** 2

  def net(self, hp: HParams, signature: dict, source: Modality) -> ImageModality:
    return ImageModality(hp.hidden_size, hp.image_size, name=self.net_key(signature, source))

  def dummy(self, hp: HParams, batch_size: int, role: str) -> tf.Tensor:
    return tf.fill([batch_size, hp.image_size, hp.image_size, 3], 0.5)

  def read(self, path: str, vocab: SubwordVocab | None) -> tf.Tensor:
    with open(path, "rb") as f:
      data = f.read()
    if not data.startswith(TF_IMAGE_MAGIC):  # WebP, TIFF, ...: through Pillow
      data = to_rgb_png(data)
    return image_from_bytes(tf.constant(data))                          # [H, W, 3]

  def serve(self, data: tf.Tensor, tokenizer) -> tf.Tensor:
    return image_from_bytes(data)                                       # [H, W, 3]

  def describe(self, image: np.ndarray, vocab: SubwordVocab | None) -> str:
    return f"[image {image.shape[0]}x{image.shape[1]}]"


IMAGE = Image()
