"""Inference: greedy and beam decoding with a cache, and SavedModel export."""
