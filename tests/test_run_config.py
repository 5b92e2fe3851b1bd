"""resolve_config: every flag is checked before training starts, each mistake is one UserError."""

import os

import pytest

from t2t_multimodel.data import shards
from t2t_multimodel.errors import UserError
from t2t_multimodel.run import run_dir
from t2t_multimodel.run.run_config import resolve_config
from t2t_multimodel.vocab import SubwordVocab, vocab_path


def _resolve(data_dir, output_dir, **changes):
  flags = {"problems": "image_digits,translate_ende_bible", "hparams_set": "multimodel_tiny",
           "data_dir": data_dir, "output_dir": str(output_dir), "train_steps": 10, **changes}
  return resolve_config(**flags)


def test_resolves_problems_hparams_rates_and_vocab(train_data_dir, tmp_path):
  config = _resolve(train_data_dir, tmp_path, hparams="hidden_size=32", mixing="uniform")
  assert [p.name for p in config.problems] == ["image_digits", "translate_ende_bible"]
  assert config.hparams.hidden_size == 32
  assert config.rates == {"image_digits": 0.5, "translate_ende_bible": 0.5}
  assert len(config.vocab_sha256) == 64
  assert config.record()["problems"][0]["name"] == "image_digits"
  image_only = _resolve(train_data_dir, tmp_path, problems="image_digits")
  assert image_only.vocab_sha256 is None and image_only.rates == {"image_digits": 1.0}


@pytest.mark.parametrize("changes, message", [
    ({"problems": "image_digitz"}, "Unknown problem 'image_digitz'"),
    ({"hparams_set": "multimodel_huge"}, "Unknown hparam set 'multimodel_huge'"),
    ({"hparams": "hiden_size=3"}, "Unknown hparam 'hiden_size'. Did you mean 'hidden_size'?"),
    ({"hparams": "hidden_size='big'"}, "Wrong type for hparam 'hidden_size'"),
    ({"hparams": "vocab_size=100"}, "Expected `vocab_size` >= the vocabulary's"),
    ({"problems": "speech_espeak"}, "No data for problem speech_espeak"),
    ({"mixing": "temperature:0.5"}, "Unknown mixing rule 'temperature:0.5'"),
    ({"train_steps": 0}, "Expected --train_steps >= 1"),
    ({"eval_examples": -1}, "Expected --eval_examples >= 0"),
    ({"final_eval_splits": ("test", "valid")}, "Unknown split 'valid' in --final_eval_splits"),
])
def test_mistakes_are_user_errors(train_data_dir, tmp_path, changes, message):
  with pytest.raises(UserError, match=None) as raised:
    _resolve(train_data_dir, tmp_path, **changes)
  assert message in str(raised.value)


def test_a_missing_data_dir_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="No data dir .*nowhere.*run mm-datagen"):
    _resolve(str(tmp_path / "nowhere"), tmp_path / "run")


def test_an_existing_run_with_other_hparams_is_refused_unless_overwrite(train_data_dir, tmp_path):
  config = _resolve(train_data_dir, tmp_path)
  run_dir.prepare(config.output_dir, config.hparams, config.record())
  _resolve(train_data_dir, tmp_path)  # the same run: fine
  with pytest.raises(run_dir.RunDirMismatchError, match="hidden_size: 64 -> 32"):
    _resolve(train_data_dir, tmp_path, hparams="hidden_size=32")
  assert _resolve(train_data_dir, tmp_path, hparams="hidden_size=32", overwrite=True).overwrite


def test_a_run_trained_with_another_vocabulary_is_refused(train_data_dir, tmp_path):
  config = _resolve(train_data_dir, tmp_path)
  record = dict(config.record(), vocab_sha256="0" * 64)
  run_dir.prepare(config.output_dir, config.hparams, record)
  with pytest.raises(shards.VocabMismatchError, match="not the one the run was trained with"):
    _resolve(train_data_dir, tmp_path)


def test_shards_written_with_another_vocabulary_are_refused(copy_data, tmp_path):
  data_dir = copy_data()
  os.remove(vocab_path(data_dir))
  SubwordVocab.build(["a small other vocabulary", "made of other words"] * 50, vocab_path(data_dir),
                     vocab_size=400)
  with pytest.raises(shards.VocabMismatchError, match="translate_ende_bible .* another vocabulary"):
    _resolve(data_dir, tmp_path)
