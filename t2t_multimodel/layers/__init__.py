"""Keras layers of the MultiModel: convolutions, attention, mixture of experts."""

from t2t_multimodel.layers.attention import (Attention, AttentionBlock, causal_bias, padding_bias,
                                             timing_signal)
from t2t_multimodel.layers.conv import apply_mask, ConvBlock, ConvRes, ConvStep
from t2t_multimodel.layers.moe import MixtureOfExperts

__all__ = ["Attention", "AttentionBlock", "ConvBlock", "ConvRes", "ConvStep", "MixtureOfExperts",
           "apply_mask", "causal_bias", "padding_bias", "timing_signal"]
