"""Evaluation: metrics, a model scored on whole splits, and run reports."""
