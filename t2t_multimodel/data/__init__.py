"""Data: problems' raw samples -> shared vocabulary -> TFRecord shards -> batches."""
