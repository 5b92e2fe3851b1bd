"""translate_*_wmt8k: aligned text, TSV and SGML files as WMT ships them, the TFDS path, missing data."""

import gzip
import itertools

from xml.sax import saxutils

import pytest
import tensorflow as tf

from t2t_multimodel.data import features
from t2t_multimodel.problem import CommandToken, MissingDataError
from t2t_multimodel.problems import translate_wmt
from t2t_multimodel.problems.translate_wmt import TranslateWmt
from t2t_multimodel.vocab import SubwordVocab
from tests import tfds_testing

EUROPARL_DE = ["Die Sitzung ist eröffnet.", "", "Wir stimmen jetzt ab."]
EUROPARL_EN = ["The session is open.", "Nothing here.", "We shall now vote."]
CRAWL = [("Das Haus ist groß.", "The house is big."), ("Guten Morgen!", "Good morning!")]
TSV_LINES = ["Der Euro fällt.\tThe euro falls.", "Ein Satz ohne Paar", "Zinsen steigen.\tRates rise."]
DEV = [("Eine „gute“ Frage & Antwort", 'A "good" question & answer'), ("Zwei.", "Two.")]
TEST_DEEN = [("Gutach: Noch mehr Sicherheit für Fußgänger", "Gutach: Increased safety for pedestrians"),
             ("Sie sind nicht einmal 100 Meter voneinander entfernt", "They are not even 100 metres apart")]
TEST_FREN = [("Une photo <b>nette</b>", "A <b>sharp</b> photo")]


def _sgm(path, kind, lang, segments):
  """A WMT SGML file: <srcset>/<refset>, <doc>, <p>, one <seg> a line, XML entities escaped."""
  head = (f'<srcset setid="newstest" srclang="any">' if kind == "src"
          else f'<refset setid="newstest" srclang="any" trglang="{lang}">')
  segs = "\n".join(f'<seg id="{i}">{saxutils.escape(s)}</seg>' for i, s in enumerate(segments, 1))
  doc = '<doc sysid="ref" docid="1012-bbc" genre="news" origlang="en">'
  path.write_text(f"{head}\n{doc}\n<p>\n{segs}\n</p>\n</doc>\n</{kind}set>\n", encoding="utf-8")


def _lines(path, lines):
  path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@pytest.fixture
def tmp_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))
  training, dev, test = (tmp_path / "wmt" / d for d in ("training", "dev", "test"))
  for folder in (training, dev, test):
    folder.mkdir(parents=True)
  _lines(training / "europarl-v7.de-en.de", EUROPARL_DE)
  _lines(training / "europarl-v7.de-en.en", EUROPARL_EN)
  _lines(training / "europarl-v7.fr-en.fr", ["Reprise de la session"])
  _lines(training / "europarl-v7.fr-en.en", ["Resumption of the session"])
  for lang, index in (("de", 0), ("en", 1)):
    with gzip.open(training / f"commoncrawl.de-en.{lang}.gz", "wt", encoding="utf-8") as f:
      f.write("".join(pair[index] + "\n" for pair in CRAWL))
  _lines(training / "news-commentary-v14.de-en.tsv", TSV_LINES)
  _lines(dev / "newstest2012.de", ["Nicht benutzt."])
  _lines(dev / "newstest2012.en", ["Not used."])
  _lines(dev / "newstest2013.de", ["plain copy, not read"] * 2)
  _lines(dev / "newstest2013.en", ["plain copy, not read"] * 2)
  _sgm(dev / "newstest2013-src.en.sgm", "src", "en", [en for _, en in DEV])
  _sgm(dev / "newstest2013-ref.de.sgm", "ref", "de", [de for de, _ in DEV])
  _sgm(dev / "newstest2013-ref.fr.sgm", "ref", "fr", ["Une « bonne » question & réponse", "Deux."])
  _sgm(test / "newstest2014-deen-src.de.sgm", "src", "de", [de for de, _ in TEST_DEEN])
  _sgm(test / "newstest2014-deen-ref.en.sgm", "ref", "en", [en for _, en in TEST_DEEN])
  _sgm(test / "newstest2014-fren-src.fr.sgm", "src", "fr", [fr for fr, _ in TEST_FREN])
  _sgm(test / "newstest2014-fren-ref.en.sgm", "ref", "en", [en for _, en in TEST_FREN])
  return str(tmp_path)


def _samples(problem, split, tmp_dir):
  return [(s["inputs"], s["targets"]) for s in problem.generate_samples(split, tmp_dir)]


@pytest.mark.parametrize("source, target, name, command", [
    ("en", "de", "translate_ende_wmt8k", CommandToken.TO_GERMAN),
    ("de", "en", "translate_deen_wmt8k", CommandToken.TO_ENGLISH),
    ("en", "fr", "translate_enfr_wmt8k", CommandToken.TO_FRENCH),
    ("fr", "en", "translate_fren_wmt8k", CommandToken.TO_ENGLISH),
])
def test_declaration(source, target, name, command):
  problem = TranslateWmt(source, target)
  assert (problem.name, problem.command, problem.full_data) == (name, command, True)
  assert (problem.input_modality, problem.target_modality) == ("symbol", "symbol")
  assert problem.metrics == ("bleu", "accuracy", "neg_log_perplexity") and problem.train_shards == 100


def test_unsupported_pair_is_named():
  with pytest.raises(ValueError, match="source='de', target='fr'"):
    TranslateWmt("de", "fr")


def test_german_english_splits_from_text_tsv_and_sgml(tmp_dir):
  ende = TranslateWmt("en", "de")
  ende.check_data(tmp_dir)
  expected_train = ([(en, de) for de, en in CRAWL]
                    + [(en, de) for de, en in zip(EUROPARL_DE, EUROPARL_EN) if de]
                    + [("The euro falls.", "Der Euro fällt."), ("Rates rise.", "Zinsen steigen.")])
  assert _samples(ende, "train", tmp_dir) == expected_train       # newstest2012 is not train
  assert _samples(ende, "dev", tmp_dir) == [(en, de) for de, en in DEV]   # SGML, entities unescaped
  assert _samples(ende, "test", tmp_dir) == [(en, de) for de, en in TEST_DEEN]
  deen = TranslateWmt("de", "en")
  assert _samples(deen, "train", tmp_dir) == [(de, en) for en, de in expected_train]
  assert _samples(deen, "test", tmp_dir) == TEST_DEEN


def test_french_english_uses_only_french_files(tmp_dir):
  fren = TranslateWmt("fr", "en")
  assert _samples(fren, "train", tmp_dir) == [("Reprise de la session", "Resumption of the session")]
  assert _samples(fren, "dev", tmp_dir) == [("Une « bonne » question & réponse", DEV[0][1]),
                                            ("Deux.", "Two.")]
  assert _samples(fren, "test", tmp_dir) == TEST_FREN       # markup inside a segment is text
  assert _samples(TranslateWmt("en", "fr"), "test", tmp_dir) == [(en, fr) for fr, en in TEST_FREN]


def test_vocab_texts_take_train_corpora_in_turn(tmp_dir):
  texts = list(TranslateWmt("en", "de").vocab_texts(tmp_dir))
  assert texts[:6] == [CRAWL[0][1], CRAWL[0][0], EUROPARL_EN[0], EUROPARL_DE[0],
                       "The euro falls.", "Der Euro fällt."]
  assert len(texts) == 2 * 6


def test_samples_encode_and_parse_back(tmp_dir, tmp_path):
  problems = [TranslateWmt(s, t) for s, t in (("en", "de"), ("fr", "en"))]
  texts = itertools.chain.from_iterable(p.vocab_texts(tmp_dir) for p in problems)
  vocab = SubwordVocab.build(texts, str(tmp_path / "v.model"), vocab_size=400)
  for problem in problems:
    parse = features.parse_fn("symbol", "symbol")
    for split in ("train", "dev", "test"):
      for sample in problem.generate_samples(split, tmp_dir):
        decoded = parse(tf.constant(features.encode_example(sample, "symbol", "symbol", vocab)))
        assert vocab.decode(decoded["inputs"].numpy()) == sample["inputs"]
        assert vocab.decode(decoded["targets"].numpy()) == sample["targets"]


def test_misaligned_files_are_named(tmp_dir):
  with open(f"{tmp_dir}/wmt/training/europarl-v7.de-en.en", "a") as f:
    f.write("One line too many.\n")
  with pytest.raises(MissingDataError, match=r"de-en.de has 3 sentences but .*europarl-v7.de-en.en has 4"):
    list(TranslateWmt("de", "en").generate_samples("train", tmp_dir))


def test_only_newline_ends_a_line(tmp_path):
  (tmp_path / "crawl.de").write_bytes("Ein\rSatz\r\nZwei\n".encode())   # a stray CR, a Windows line end
  (tmp_path / "crawl.en").write_bytes(b"One sentence\nTwo\n")
  corpus = translate_wmt.Corpus("crawl", "text", (str(tmp_path / "crawl.de"), str(tmp_path / "crawl.en")))
  assert list(translate_wmt.read_pairs(corpus)) == [("Ein\rSatz", "One sentence"), ("Zwei", "Two")]


def test_prepared_tfds_dataset_is_preferred(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds

  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  spec = tfds.features.Translation(languages=["de", "en"])
  splits = {"train": [{"de": "Hallo Welt", "en": "Hello world"}, {"de": "", "en": "empty German side"}],
            "validation": [{"de": "Guten Tag", "en": "Good day"}],
            "test": [{"de": "Danke", "en": "Thanks"}]}
  tfds_testing.write_prepared(str(tmp_path / "tfds"), "wmt14_translate", "1.0.0", spec, splits,
                              config="de-en")
  ende = TranslateWmt("en", "de")
  ende.check_data(str(tmp_path))
  assert _samples(ende, "train", str(tmp_path)) == [("Hello world", "Hallo Welt")]
  assert _samples(ende, "dev", str(tmp_path)) == [("Good day", "Guten Tag")]
  assert _samples(TranslateWmt("de", "en"), "test", str(tmp_path)) == [("Danke", "Thanks")]
  with pytest.raises(MissingDataError, match="wmt14_translate/fr-en"):
    TranslateWmt("fr", "en").check_data(str(tmp_path))


def test_missing_data_is_one_line_naming_the_data_set_and_the_place(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  (tmp_path / "wmt").mkdir()
  _lines(tmp_path / "wmt" / "europarl-v7.de-en.de", ["Hallo"])
  _lines(tmp_path / "wmt" / "europarl-v7.de-en.en", ["Hello"])
  with pytest.raises(MissingDataError) as info:
    TranslateWmt("en", "de").check_data(str(tmp_path))
  message = str(info.value)
  assert "\n" not in message and "translate_ende_wmt8k" in message
  assert "WMT'14 de-en (dev, test not found)" in message
  assert str(tmp_path / "wmt") in message and str(tmp_path / "tfds") in message
