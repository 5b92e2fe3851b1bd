"""Joint training: the optimiser and schedule, and the training loop."""
