"""Hparam sets and the --hparams override parser."""

import dataclasses
import json

import pytest

from t2t_multimodel.hparams import HPARAMS, HParams, HParamsError, apply_overrides, get_hparams, parse_overrides


@pytest.mark.parametrize("name", HPARAMS.names())
def test_every_set_validates_and_round_trips(name):
  hp = HPARAMS.get(name)()
  assert hp.validate() is hp
  assert HParams.from_dict(json.loads(hp.to_json())) == hp
  with pytest.raises(dataclasses.FrozenInstanceError):
    hp.hidden_size = 3  # frozen


def test_named_sets_differ_as_documented():
  paper, base, tiny = (HPARAMS.get(n)() for n in ("multimodel_paper", "multimodel_base", "multimodel_tiny"))
  assert paper.num_experts == 240 and paper.hidden_size == 1024 and paper.dropout == 0.4
  assert base.hidden_size == 512
  assert tiny.hidden_size < base.hidden_size and tiny.num_experts >= tiny.moe_k
  assert all(hp.batch_tokens == 0 for hp in (paper, base, tiny))  # batch_size examples a batch


@pytest.mark.parametrize("name, noam_scale, peak", [
    ("multimodel_base", 0.1 * 5000 * 0.002, "7e-4"),     # T2T's noam rate at the end of warmup
    ("multimodel_paper", 0.1 * 5000 * 0.002, "4.9e-4"),
    ("multimodel_tiny", 0.2, "1.8e-3"),                  # the noam-style rate it had before
])
def test_learning_rate_is_the_peak_of_the_noam_rate_it_replaces(name, noam_scale, peak):
  hp = HPARAMS.get(name)()
  noam_peak = noam_scale * hp.hidden_size ** -0.5 * hp.learning_rate_warmup_steps ** -0.5
  assert hp.learning_rate == float(peak)
  assert hp.learning_rate == pytest.approx(noam_peak, rel=0.02)
  assert f"peak learning rate {peak} at step {hp.learning_rate_warmup_steps}" in " ".join(
      HPARAMS.get(name).__doc__.split())   # the docstring says it


def test_parse_literals():
  assert parse_overrides("hidden_size=128, dropout=0.25,use_moe=False, model=multimodel") == {
      "hidden_size": 128, "dropout": 0.25, "use_moe": False, "model": "multimodel"}
  assert parse_overrides("use_moe=false,model='a,b'") == {"use_moe": False, "model": "a,b"}
  assert parse_overrides("") == {}


def test_apply_overrides_good():
  hp = get_hparams("multimodel_tiny", "hidden_size=32,num_heads=2,learning_rate=1")
  assert hp.hidden_size == 32 and hp.num_heads == 2
  assert hp.learning_rate == 1.0 and isinstance(hp.learning_rate, float)  # int widened to float


@pytest.mark.parametrize("text, match", [
    ("hiden_size=3", r"Unknown hparam 'hiden_size'. Did you mean 'hidden_size'\?"),
    ("hidden_size=0.5", "Wrong type for hparam 'hidden_size': expected int, got float"),
    ("use_moe=1", "Wrong type for hparam 'use_moe': expected bool, got int"),
    ("hidden_size='64'", "expected int, got str"),
    ("dropout", "expected key=value"),
    ("dropout=0.1,dropout=0.2", "overridden twice"),
    ("dropout=[1", "Cannot parse the value"),
])
def test_apply_overrides_errors(text, match):
  with pytest.raises(HParamsError, match=match):
    apply_overrides(HParams(), text)


@pytest.mark.parametrize("text, match", [
    ("moe_k=5,num_experts=4", r"Expected `num_experts` >= `moe_k`. Received: num_experts=4, moe_k=5"),
    ("hidden_size=30,num_heads=4", "divisible by `num_heads`"),
    ("dropout=1.0", "dropout=1.0"),
    ("audio_time_strides=9,audio_blocks=8", "audio_time_strides"),
    ("batch_tokens=-1", r"Expected `batch_tokens` >= 0. Received: batch_tokens=-1"),
    ("learning_rate_warmup_steps=0", r"Expected `learning_rate_warmup_steps` >= 1"),
])
def test_validate_rejects_impossible(text, match):
  with pytest.raises(HParamsError, match=match):
    apply_overrides(HParams(), text)


def test_unknown_set_lists_known():
  with pytest.raises(KeyError, match="Known hparam sets: multimodel_base, multimodel_demo, multimodel_paper, multimodel_small, multimodel_tiny"):
    get_hparams("multimodel_large")
