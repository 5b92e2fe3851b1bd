"""Inference: greedy and beam decoding with a cache, and SavedModel export.

BEAM_SIZE and ALPHA are how mm-evaluate, mm-decoder, mm-serve and mm-export (and `evaluate_run`,
`load_decoder`, `export`, `web.Service`) decode unless told otherwise: T2T's decode_hparams
defaults, beam 4 with the GNMT length penalty ((5 + length) / 6) ** 0.6. Beam size 1 is greedy,
what the trainer's own dev evaluations use. This module imports nothing at load (absl only when
`define_decoding_flags` is called), so the CLIs read these before TensorFlow loads.
"""

BEAM_SIZE, ALPHA = 4, 0.6
# Text inputs of T tokens decode at most T + EXTRA_LENGTH tokens (T2T's decode_hparams.extra_length);
# on the Bible and parse test splits no reference is more than 84 tokens longer than its input.
EXTRA_LENGTH = 100


def define_decoding_flags(module_name: str) -> None:
  """Defines --beam_size, --alpha and --max_length, the decoding flags of mm-evaluate, mm-decoder,
  mm-serve and mm-export, as the flags of the CLI module `module_name` (so that its --helpshort
  lists them), with the defaults above."""
  from absl import flags

  flags.DEFINE_integer("beam_size", BEAM_SIZE, "Beam width; 1 for greedy search.", lower_bound=1,
                       module_name=module_name)
  flags.DEFINE_float("alpha", ALPHA, "Beam search length penalty ((5 + length) / 6) ** alpha.",
                     lower_bound=0.0, module_name=module_name)
  flags.DEFINE_integer("max_length", 0, "Most tokens decoded (0: the run's max_target_length; a text "
                       f"input of T tokens also stops at T + {EXTRA_LENGTH}).", lower_bound=0,
                       module_name=module_name)
