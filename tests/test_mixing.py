"""Mixing rules and the stateless problem sampler."""

import numpy as np
import pytest

from t2t_multimodel.data.mixing import MixingRuleError, ProblemSampler, mixing_rates

SIZES = {"a": 900, "b": 100}


def test_proportional():
  assert mixing_rates(SIZES, "proportional") == pytest.approx({"a": 0.9, "b": 0.1})


def test_uniform():
  assert mixing_rates({"a": 900, "b": 100, "c": 1}, "uniform") == pytest.approx(
      {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_temperature():
  # n ** (1/2): 30 and 10 -> 0.75, 0.25.
  assert mixing_rates(SIZES, "temperature:2") == pytest.approx({"a": 0.75, "b": 0.25})
  assert mixing_rates(SIZES, "temperature:1") == mixing_rates(SIZES, "proportional")
  # Higher temperatures move towards uniform.
  hot = mixing_rates(SIZES, "temperature:100")
  assert 0.5 < hot["a"] < 0.52


def test_limit_caps_each_size_before_the_rule():
  # T5's examples-proportional mixing with a limit: 900 counts as 400.
  assert mixing_rates(SIZES, "proportional,limit:400") == pytest.approx({"a": 0.8, "b": 0.2})
  # Capped, then the temperature: sqrt(400) = 20 and sqrt(100) = 10.
  assert mixing_rates(SIZES, "temperature:2, limit:400") == pytest.approx({"a": 2 / 3, "b": 1 / 3})
  # A limit above every size changes nothing; one at or below every size is uniform.
  assert mixing_rates(SIZES, "temperature:2,limit:5000") == mixing_rates(SIZES, "temperature:2")
  assert mixing_rates(SIZES, "proportional,limit:100") == pytest.approx({"a": 0.5, "b": 0.5})
  assert mixing_rates(SIZES, "uniform,limit:10") == mixing_rates(SIZES, "uniform")


@pytest.mark.parametrize("rule", ["", "proportion", "temperature", "temperature:", "temperature:0.5",
                                  "temperature:x", "temperature:nan", "uniform:2",
                                  "proportional,", "proportional,limit:", "proportional,limit:0",
                                  "proportional,limit:-5", "proportional,limit:2.5",
                                  "proportional,cap:10", "temperature:x,limit:10",
                                  "proportional,limit:10,limit:20"])
def test_bad_rule_lists_the_valid_forms(rule):
  with pytest.raises(MixingRuleError, match="Valid forms: proportional, uniform, temperature:T.*limit:K") as e:
    mixing_rates(SIZES, rule)
  assert isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_explicit_rates_name_every_problem():
  assert mixing_rates(SIZES, "rates:a=1,b=3") == pytest.approx({"a": 0.25, "b": 0.75})
  assert mixing_rates(SIZES, " rates: b = 0.5 , a=0") == pytest.approx({"a": 0.0, "b": 1.0})
  with pytest.raises(MixingRuleError, match=r"unknown \['c'\], missing \['b'\]. The run's problems: a, b"):
    mixing_rates(SIZES, "rates:a=1,c=2")
  with pytest.raises(MixingRuleError, match="no problem a rate > 0"):
    mixing_rates(SIZES, "rates:a=0,b=0")


@pytest.mark.parametrize("rule", ["rates:", "rates:a", "rates:a=x,b=1", "rates:a=-1,b=1", "rates:a=1,a=2,b=1",
                                  "rates:a=inf,b=1", "rates:a=nan,b=1", "rates:a=1,b=1,limit:5"])
def test_bad_explicit_rates_name_the_bad_pair(rule):
  with pytest.raises(MixingRuleError, match="Valid forms: .*rates:PROBLEM=W") as e:
    mixing_rates(SIZES, rule)
  assert "\n" not in str(e.value)


def test_bad_sizes():
  with pytest.raises(ValueError, match="> 0"):
    mixing_rates({"a": 3, "b": 0}, "uniform")
  with pytest.raises(ValueError, match="at least one"):
    mixing_rates({}, "uniform")


def test_sampler_is_a_pure_function_of_seed_and_step():
  rates = mixing_rates({"a": 5, "b": 3, "c": 2}, "proportional")
  first = ProblemSampler(rates, seed=7)
  sequence = [first.problem_at(step) for step in range(500)]
  # A "resumed" sampler, built anew and asked from step 250 on, agrees.
  resumed = ProblemSampler(dict(reversed(list(rates.items()))), seed=7)
  assert [resumed.problem_at(step) for step in range(250, 500)] == sequence[250:]
  assert resumed.problems(0, 500) == sequence
  assert ProblemSampler(rates, seed=8).problems(0, 500) != sequence


def test_sampler_frequencies_approach_the_rates():
  rates = {"a": 0.6, "b": 0.3, "c": 0.1}
  counts = ProblemSampler(rates, seed=0).counts(200_000)
  assert sum(counts.values()) == 200_000
  for name, rate in rates.items():
    assert counts[name] / 200_000 == pytest.approx(rate, abs=0.005)


def test_sampler_counts_match_the_sequence_and_skip_zero_rates():
  sampler = ProblemSampler({"a": 0.5, "b": 0.0, "c": 0.5}, seed=3)
  sequence = sampler.problems(0, 1000)
  assert "b" not in sequence
  assert sampler.counts(1000) == {name: sequence.count(name) for name in "abc"}
  assert sampler.counts(1000, chunk=7) == sampler.counts(1000)


def test_sampler_uniforms_look_uniform():
  u = ProblemSampler({"a": 1.0}, seed=11).uniforms(0, 100_000)
  assert 0.0 <= u.min() and u.max() < 1.0
  assert np.histogram(u, bins=10, range=(0, 1))[0] == pytest.approx([10_000] * 10, rel=0.05)
  assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.02


def test_sampler_rejects_bad_rates_and_steps():
  with pytest.raises(ValueError, match="rates >= 0"):
    ProblemSampler({"a": -1.0, "b": 2.0}, seed=0)
  with pytest.raises(ValueError, match="rates >= 0"):
    ProblemSampler({}, seed=0)
  with pytest.raises(ValueError, match="step"):
    ProblemSampler({"a": 1.0}, seed=0).problem_at(-1)
