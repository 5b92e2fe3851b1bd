"""Inference: greedy and beam decoding with a cache, and SavedModel export.

BEAM_SIZE and ALPHA are how mm-evaluate, mm-decoder, mm-serve and mm-export (and `evaluate_run`,
`load_decoder`, `export`, `web.Service`) decode unless told otherwise: T2T's decode_hparams
defaults, beam 4 with the GNMT length penalty ((5 + length) / 6) ** 0.6. Beam size 1 is greedy,
what the trainer's own dev evaluations use. This module imports nothing, so the CLIs read these
before TensorFlow loads.
"""

BEAM_SIZE, ALPHA = 4, 0.6
# Text inputs of T tokens decode at most T + EXTRA_LENGTH tokens (T2T's decode_hparams.extra_length);
# on the Bible and parse test splits no reference is more than 84 tokens longer than its input.
EXTRA_LENGTH = 100
