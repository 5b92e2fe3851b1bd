"""Named hparam sets, registered explicitly by name."""

from __future__ import annotations

from t2t_multimodel.hparams import multimodel
from t2t_multimodel.hparams.base import apply_overrides, HParams, HParamsError, parse_overrides
from t2t_multimodel.registry import Registry

HPARAMS: Registry = Registry("hparam set")
HPARAMS.add("multimodel_base", multimodel.multimodel_base)
HPARAMS.add("multimodel_paper", multimodel.multimodel_paper)
HPARAMS.add("multimodel_tiny", multimodel.multimodel_tiny)
HPARAMS.add("multimodel_small", multimodel.multimodel_small)
HPARAMS.add("multimodel_demo", multimodel.multimodel_demo)


def get_hparams(name: str, overrides: str = "") -> HParams:
  """The named set with `overrides` ('k=v,k2=v2') applied, validated."""
  return apply_overrides(HPARAMS.get(name)(), overrides)


__all__ = ["HPARAMS", "HParams", "HParamsError", "apply_overrides", "get_hparams", "parse_overrides"]
