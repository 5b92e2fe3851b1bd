"""How each modality's raw values are stored in tf.train.Examples and parsed back.

One codec per modality, chosen by name (never by isinstance):
  symbol       text   -> int64 ids + EOS           parsed: int64 [T]
               and the text itself, untouched, as "<role>_text" (bytes), so that evaluation
               scores against the whole reference whatever length training cuts ids to
  image        PNG bytes                           parsed: float32 [H, W, 3] in [0, 1]
  audio        float [frames, mel] -> float16 bytes parsed: float32 [frames, mel]
  class_label  int    -> int64 [1]                 parsed: int64 [1]
"""

from __future__ import annotations

import io
from typing import Any, Callable, NamedTuple

import numpy as np
import tensorflow as tf

from t2t_multimodel.data import audio
from t2t_multimodel.data.vocab import EOS_ID, SubwordVocab


def _int64(values) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _bytes(value: bytes) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


class Codec(NamedTuple):
  encode: Callable[[Any, SubwordVocab | None], tf.train.Feature]
  spec: Callable[[], Any]
  decode: Callable[[tf.Tensor], tf.Tensor]


def _encode_symbol(text: str, vocab: SubwordVocab | None) -> tf.train.Feature:
  if vocab is None:
    raise ValueError("A symbol feature needs the shared vocabulary.")
  return _int64(vocab.encode(text) + [EOS_ID])


def _encode_image(png: bytes, _) -> tf.train.Feature:
  if not isinstance(png, bytes) or not png.startswith(b"\x89PNG"):
    raise ValueError("An image feature must be PNG-encoded bytes.")
  return _bytes(png)


def _decode_image(encoded: tf.Tensor) -> tf.Tensor:
  image = tf.io.decode_png(encoded, channels=3)                        # [H, W, 3] uint8
  return tf.image.convert_image_dtype(image, tf.float32)               # [H, W, 3] in [0, 1]


def _encode_audio(features: np.ndarray, _) -> tf.train.Feature:
  features = np.asarray(features)
  if features.ndim != 2 or features.shape[1] != audio.NUM_MEL_BINS:
    raise ValueError(f"An audio feature must be [frames, {audio.NUM_MEL_BINS}]. Received: {features.shape}")
  return _bytes(features.astype(np.float16).tobytes())


def _decode_audio(raw: tf.Tensor) -> tf.Tensor:
  flat = tf.io.decode_raw(raw, tf.float16)                             # [frames * mel]
  return tf.cast(tf.reshape(flat, [-1, audio.NUM_MEL_BINS]), tf.float32)  # [frames, mel]


CODECS: dict[str, Codec] = {
    "symbol": Codec(_encode_symbol, lambda: tf.io.RaggedFeature(tf.int64), lambda t: t),
    "image": Codec(_encode_image, lambda: tf.io.FixedLenFeature([], tf.string), _decode_image),
    "audio": Codec(_encode_audio, lambda: tf.io.FixedLenFeature([], tf.string), _decode_audio),
    "class_label": Codec(lambda label, _: _int64([label]), lambda: tf.io.FixedLenFeature([1], tf.int64),
                         lambda t: t),
}


def encode_example(sample, input_modality: str, target_modality: str,
                   vocab: SubwordVocab | None) -> bytes:
  """A raw sample -> a serialised tf.train.Example with "inputs" and "targets" (and the raw
  "inputs_text" / "targets_text" of symbol roles)."""
  features = {
      "inputs": CODECS[input_modality].encode(sample["inputs"], vocab),
      "targets": CODECS[target_modality].encode(sample["targets"], vocab),
  }
  for role, modality in (("inputs", input_modality), ("targets", target_modality)):
    if modality == "symbol":
      features[text_key(role)] = _bytes(sample[role].encode("utf-8"))
  return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def text_key(role: str) -> str:
  """The feature holding a symbol role's raw text: "inputs_text" or "targets_text"."""
  return f"{role}_text"


def parse_fn(input_modality: str, target_modality: str,
             with_text: bool = False) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
  """Returns serialised Example -> {"inputs": tensor, "targets": tensor}, decoded.

  with_text: also "<role>_text" (a string scalar) for each symbol role.
  """
  modalities = {"inputs": input_modality, "targets": target_modality}
  spec = {role: CODECS[modality].spec() for role, modality in modalities.items()}
  texts = [text_key(role) for role, modality in modalities.items() if with_text and modality == "symbol"]
  spec.update({key: tf.io.FixedLenFeature([], tf.string) for key in texts})

  def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    parsed = tf.io.parse_single_example(serialized, spec)
    values = {role: CODECS[modality].decode(parsed[role]) for role, modality in modalities.items()}
    values.update({key: parsed[key] for key in texts})
    return values

  return parse


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
