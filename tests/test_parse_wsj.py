"""parse_wsj8k: tiny .mrg files in the Penn Treebank's own format, its standard splits, missing data."""

import pytest
import tensorflow as tf

from t2t_multimodel.data import features, trees
from t2t_multimodel.problem import CommandToken, MissingDataError
from t2t_multimodel.problems.parse_wsj import ParseWsj
from t2t_multimodel.vocab import SubwordVocab

# Made-up sentences in the treebank's layout: the "( (S" wrapper, traces, function tags, indices.
SAID = """( (S 
    (NP-SBJ-1 (DT The) (NN company) )
    (VP (VBD said) 
      (SBAR (-NONE- 0) 
        (S 
          (NP-SBJ (PRP it) )
          (VP (MD would) 
            (VP (VB try) 
              (S 
                (NP-SBJ (-NONE- *-2) )
                (VP (TO to) 
                  (VP (VB sell) 
                    (NP (DT the) (NN unit) ))))))))) 
    (. .) ))
"""
SHARES = """( (S 
    (NP-SBJ 
      (NP (NNS Shares) )
      (SBAR 
        (WHNP-1 (WDT that) )
        (S 
          (NP-SBJ (-NONE- *T*-1) )
          (VP (VBD rose) ))))
    (VP (VBD closed) 
      (ADVP-MNR (RB higher) )
      (PRN (-LRB- -LRB-) 
        (NP (CD 2) (NN %) )
        (-RRB- -RRB-) ))
    (. .) ))
"""
AGREE = """( (S (`` ``) 
    (NP-SBJ (PRP We) )
    (VP (VBP agree) )
    (. .) ('' '') ))
"""
SAID_LINEAR = ("(S (NP XX XX )NP (VP XX (SBAR (S (NP XX )NP (VP XX (VP XX (S (VP XX (VP XX (NP XX XX )NP "
               ")VP )VP )S )VP )VP )S )SBAR )VP . )S")
SHARES_LINEAR = ("(S (NP (NP XX )NP (SBAR (WHNP XX )WHNP (S (VP XX )VP )S )SBAR )NP (VP XX (ADVP XX )ADVP "
                 "(PRN XX (NP XX XX )NP XX )PRN )VP . )S")


def _mrg(root, section, number, text):
  folder = root / "ptb" / "treebank_3" / "parsed" / "mrg" / "wsj" / section
  folder.mkdir(parents=True, exist_ok=True)
  (folder / f"wsj_{section}{number}.mrg").write_text(text, encoding="latin-1")


@pytest.fixture
def ptb_dir(tmp_path):
  _mrg(tmp_path, "02", "01", SAID + SHARES)    # two trees in one file
  _mrg(tmp_path, "02", "00", AGREE)            # read before wsj_0201
  _mrg(tmp_path, "21", "99", SHARES)
  _mrg(tmp_path, "22", "00", AGREE)
  _mrg(tmp_path, "23", "00", SAID)
  _mrg(tmp_path, "00", "01", AGREE)            # sections 00, 01 and 24 are not read
  _mrg(tmp_path, "24", "00", AGREE)
  return tmp_path


def test_declaration():
  problem = ParseWsj()
  assert problem.name == "parse_wsj8k"
  assert (problem.input_modality, problem.target_modality) == ("symbol", "symbol")
  assert problem.command == CommandToken.TO_PARSE_TREE and problem.full_data
  assert problem.metrics == ("bracket_f1", "exact_match")


def test_standard_splits_and_samples(ptb_dir):
  problem = ParseWsj()
  problem.check_data(str(ptb_dir))
  train = list(problem.generate_samples("train", str(ptb_dir)))
  assert [s["inputs"] for s in train] == [
      "`` We agree . ''",
      "The company said it would try to sell the unit .",
      "Shares that rose closed higher ( 2 % ) .",
      "Shares that rose closed higher ( 2 % ) ."]
  assert [s["targets"] for s in train] == ["(S `` (NP XX )NP (VP XX )VP . '' )S", SAID_LINEAR, SHARES_LINEAR,
                                           SHARES_LINEAR]
  assert list(problem.generate_samples("dev", str(ptb_dir))) == [train[0]]
  assert list(problem.generate_samples("test", str(ptb_dir))) == [train[1]]
  for sample in train:
    assert trees.is_valid(sample["targets"])
    assert len(sample["inputs"].split()) == len([t for t in sample["targets"].split() if t[0] not in "()"])


def test_any_wsj_file_below_ptb(tmp_path):
  for section in ("02", "22", "23"):
    (tmp_path / "ptb" / "flat").mkdir(parents=True, exist_ok=True)
    (tmp_path / "ptb" / "flat" / f"wsj_{section}07.mrg").write_text(AGREE, encoding="latin-1")
  (tmp_path / "ptb" / "flat" / "notes.mrg").write_text("not a tree", encoding="latin-1")
  samples = list(ParseWsj().generate_samples("test", str(tmp_path)))
  assert samples == [{"inputs": "`` We agree . ''", "targets": "(S `` (NP XX )NP (VP XX )VP . '' )S"}]


def test_samples_encode_and_parse(ptb_dir, tmp_path):
  samples = list(ParseWsj().generate_samples("train", str(ptb_dir)))
  texts = [s[k] for s in samples for k in ("inputs", "targets")] * 20
  vocab = SubwordVocab.build(texts, str(tmp_path / "v.model"), vocab_size=300)
  parse = features.parse_fn("symbol", "symbol")
  for sample in samples:
    decoded = parse(tf.constant(features.encode_example(sample, "symbol", "symbol", vocab)))
    assert vocab.decode(decoded["targets"].numpy()) == sample["targets"]


def test_missing_data_is_one_line(tmp_path):
  with pytest.raises(MissingDataError) as info:
    ParseWsj().check_data(str(tmp_path))
  message = str(info.value)
  assert "\n" not in message and "Penn Treebank 3 (LDC99T42)" in message
  assert f"{tmp_path}/ptb/treebank_3/parsed/mrg/wsj/" in message


def test_missing_section_is_named(tmp_path):
  _mrg(tmp_path, "02", "00", AGREE)
  _mrg(tmp_path, "22", "00", AGREE)
  with pytest.raises(MissingDataError, match=r"section\(s\) 23 \(test\)") as info:
    list(ParseWsj().generate_samples("train", str(tmp_path)))
  assert "\n" not in str(info.value)


def test_malformed_file_names_the_file(tmp_path):
  for section in ("02", "22", "23"):
    _mrg(tmp_path, section, "00", AGREE)
  _mrg(tmp_path, "02", "01", "( (S (NP (NN oops) )")
  with pytest.raises(ValueError, match=r"wsj_0201\.mrg: Unbalanced tree"):
    list(ParseWsj().generate_samples("train", str(tmp_path)))
