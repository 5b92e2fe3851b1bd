"""Mixing rules for joint training: how often each problem's batch is drawn.

A mixture draws one problem per training step (every batch holds one problem).
The rate of problem i with n_i training examples is, by rule:

  proportional   p_i = n_i / sum_j n_j
  uniform        p_i = 1 / N
  temperature:T  p_i ∝ n_i ** (1 / T), T >= 1 (T = 1 is proportional; T -> inf is uniform)

  rates:a=W,b=W  p_i ∝ W_i, named for every problem of the run (a seqio Mixture's explicit
                 rates), e.g. `rates:translate_deen_bible=6,parse_trees=2,image_digits=1`

Any rule but `rates:` may end in `,limit:K` (T5's examples-proportional mixing with an
artificial limit, Raffel et al. 2020, section 3.5.2): each n_i is first capped at K, so a problem
with more than K examples weighs as if it had K and the small ones get a larger share, e.g.
`temperature:2,limit:5000`.

`ProblemSampler` turns rates into the problem of each step as a pure function of
(seed, step), so a resumed run draws exactly the problems an uninterrupted one would.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from t2t_multimodel.errors import UserError

VALID_RULES = ("proportional, uniform, temperature:T (a number T >= 1, e.g. temperature:2), "
               "each optionally followed by ,limit:K (a whole number K >= 1, e.g. "
               "temperature:2,limit:5000), or rates:PROBLEM=W,... naming every problem "
               "(weights W >= 0, e.g. rates:image_digits=1,parse_trees=2)")
RATES = "rates:"
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class MixingRuleError(UserError, ValueError):
  """A --mixing value that is not one of the known rules."""


def _parse(rule: str) -> tuple[float, float]:
  """A rule -> (temperature, limit); limit is inf without `,limit:K`. MixingRuleError if bad."""
  base, comma, option = rule.strip().partition(",")
  temperature, limit = _temperature(base), math.inf
  if comma:
    name, _, value = option.strip().partition(":")
    limit = int(value) if name == "limit" and value.strip().isdigit() else 0
  if not (temperature >= 1.0 and limit >= 1):  # also rejects NaN
    raise MixingRuleError(f"Unknown mixing rule {rule!r}. Valid forms: {VALID_RULES}")
  return temperature, limit


def _explicit_rates(names: list[str], rule: str) -> dict[str, float]:
  """'rates:a=3,b=1' -> {'a': 3.0, 'b': 1.0} for exactly the problems `names`; MixingRuleError
  naming what is wrong (a bad pair, an unknown or missing problem, no positive weight)."""
  rates: dict[str, float] = {}
  for pair in rule.strip()[len(RATES):].split(","):
    name, equals, value = pair.partition("=")
    name = name.strip()
    try:
      rate = float(value) if equals else math.nan
    except ValueError:
      rate = math.nan
    if not rate >= 0 or math.isinf(rate) or name in rates:
      raise MixingRuleError(f"Unknown mixing rule {rule!r} at {pair.strip()!r}. Valid forms: {VALID_RULES}")
    rates[name] = rate
  unknown, missing = sorted(set(rates) - set(names)), sorted(set(names) - set(rates))
  if unknown or missing:
    raise MixingRuleError(f"Mixing rule {rule!r} must name every problem of the run and no other: "
                          f"unknown {unknown}, missing {missing}. The run's problems: {', '.join(names)}")
  if not sum(rates.values()) > 0:
    raise MixingRuleError(f"Mixing rule {rule!r} gives no problem a rate > 0.")
  return rates


def _temperature(rule: str) -> float:
  """'proportional' -> 1, 'uniform' -> inf, 'temperature:T' -> T; NaN for anything else."""
  rule = rule.strip()
  if rule == "proportional":
    return 1.0
  if rule == "uniform":
    return math.inf
  name, _, value = rule.partition(":")
  try:
    return float(value) if name == "temperature" else math.nan
  except ValueError:
    return math.nan


def mixing_rates(sizes: Mapping[str, int], rule: str) -> dict[str, float]:
  """Normalised sampling rates per problem name from train-set sizes and a rule.

  Args:
    sizes: problem name -> number of training examples (> 0).
    rule: "proportional", "uniform" or "temperature:T" with T >= 1, optionally followed by
      ",limit:K" (sizes capped at K first); or "rates:a=W,b=W" naming every problem.

  Example:
    >>> mixing_rates({"a": 300, "b": 100}, "proportional")
    {'a': 0.75, 'b': 0.25}
    >>> mixing_rates({"a": 300, "b": 100}, "proportional,limit:100")
    {'a': 0.5, 'b': 0.5}
    >>> mixing_rates({"a": 300, "b": 100}, "rates:a=1,b=3")
    {'a': 0.25, 'b': 0.75}
  """
  if not sizes:
    raise ValueError("Expected at least one problem to mix. Received: sizes={}")
  bad = {name: n for name, n in sizes.items() if not n > 0}
  if bad:
    raise ValueError(f"Expected every train-set size > 0. Received: {bad}")
  if rule.strip().startswith(RATES):
    weights = _explicit_rates(list(sizes), rule)
  else:
    temperature, limit = _parse(rule)
    weights = {name: 1.0 if math.isinf(temperature) else float(min(n, limit)) ** (1.0 / temperature)
               for name, n in sizes.items()}
  total = sum(weights.values())
  return {name: w / total for name, w in weights.items()}


def _splitmix64(x: np.ndarray) -> np.ndarray:
  """SplitMix64's output function on uint64 (wrapping arithmetic)."""
  x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))


class ProblemSampler:
  """Draws the problem of each training step, statelessly, from (seed, step).

  The uniform number of step t is SplitMix64 of the stream (seed) at position t;
  the problem is found by inverse CDF over the rates (names in sorted order, so
  the dict's order does not matter).

  Args:
    rates: problem name -> rate (>= 0, normalised here).
    seed: the run's seed.

  Example:
    >>> sampler = ProblemSampler({"a": 0.75, "b": 0.25}, seed=0)
    >>> sampler.problem_at(17)   # the same in every run with seed 0
    'b'
  """

  def __init__(self, rates: Mapping[str, float], seed: int):
    if not rates or any(not r >= 0 for r in rates.values()) or not sum(rates.values()) > 0:
      raise ValueError(f"Expected rates >= 0 with a positive sum. Received: rates={dict(rates)}")
    self.names = sorted(rates)
    total = sum(rates.values())
    self.rates = {name: rates[name] / total for name in self.names}
    self.seed = int(seed)
    self._cdf = np.cumsum([self.rates[name] for name in self.names])  # [P]
    with np.errstate(over="ignore"):
      start = np.uint64((self.seed * _GOLDEN) & _MASK64)
      self._stream = _splitmix64(np.array([start], np.uint64))[0]   # decorrelates nearby seeds

  def uniforms(self, start: int, stop: int) -> np.ndarray:
    """The uniform numbers in [0, 1) of steps start..stop-1."""
    steps = np.arange(start, stop, dtype=np.uint64) + np.uint64(1)  # [S]
    with np.errstate(over="ignore"):
      bits = _splitmix64(self._stream + steps * np.uint64(_GOLDEN))
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))  # [S], 53-bit

  def indices(self, start: int, stop: int) -> np.ndarray:
    """Indices into `self.names` of the problems of steps start..stop-1."""
    found = np.searchsorted(self._cdf, self.uniforms(start, stop) * self._cdf[-1], side="right")
    return np.minimum(found, len(self.names) - 1)                    # [S]

  def problem_at(self, step: int) -> str:
    """The problem trained at `step` (a pure function of seed and step)."""
    if step < 0:
      raise ValueError(f"Expected `step` >= 0. Received: step={step}")
    return self.names[int(self.indices(step, step + 1)[0])]

  def problems(self, start: int, stop: int) -> list[str]:
    """The problems of steps start..stop-1."""
    return [self.names[i] for i in self.indices(start, stop)]

  def counts(self, stop: int, chunk: int = 1 << 20) -> dict[str, int]:
    """How many batches of each problem steps 0..stop-1 drew (to skip them on resume)."""
    totals = np.zeros(len(self.names), np.int64)
    for start in range(0, stop, chunk):
      totals += np.bincount(self.indices(start, min(stop, start + chunk)), minlength=len(self.names))
    return {name: int(n) for name, n in zip(self.names, totals)}
