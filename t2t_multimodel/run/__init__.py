"""A run's directory: its configuration, checkpoints and device strategy."""
