"""speech_wsj: Wall Street Journal read speech (WSJ0 + WSJ1) -> transcripts, on data the user brings.

Files, anywhere under `<tmp_dir>/wsj/` (e.g. the LDC discs copied as they are):
- audio: `.wv1` / `.sph` NIST SPHERE files with uncompressed 16-bit PCM, or
  `.wav` (RIFF) files; `.wv2` (WSJ's second microphone) is not read. WSJ's own
  `.wv1` files are shorten-compressed: convert them first with sph2pipe
  (`sph2pipe -f wav x.wv1 x.wav`); a `.wav` wins over a SPHERE file of the same
  utterance id, so the converted copies may sit beside the originals (keep
  WSJ's folder names: they make the splits).
- transcripts: WSJ `.dot` files, lines "transcript text (utterance_id)",
  matched to audio by utterance id (the file name without extension), and/or
  `transcripts.tsv` files, lines "audio path<TAB>text" (paths relative to the
  TSV; lines whose first field is not an audio file, e.g. a header, are skipped).

Splits, by WSJ's directory names (Kaldi's sets, found by folder rather than by
the index files): train = every `si_tr_s` (si284), dev = `si_dt_20` (dev93:
only those under a `wsj1` folder, if any), test = `si_et_20` (eval92: only those
under a `wsj0` folder, if any); other WSJ sets are not read. Without any of
these folders, speakers (the audio file's folder) are ordered by the SHA-1 of
their name and cut into test (5%), dev (5%) and train, at least one speaker
each; with fewer than 3 speakers, utterances are cut instead.

Transcript normalisation (the target): WSJ noise markers in brackets
([loud_breath], [<door_slam], [/phone_ring], ...), "~" (truncation) and a lone
"." (pause) are removed; backslash quoting is dropped ("isn\\'t", "I\\. B\\.");
verbalised punctuation keeps its word (",COMMA" -> "comma", "\"DOUBLE-QUOTE"
-> "double quote"); then lower-case, hyphens become spaces and every character
but a-z, 0-9, the apostrophe and space is dropped (so "<and>", "*word*" and
"s:o" lose their markup). Utterances left with no words are skipped.

Audio: resampled to 16 kHz and turned into log-mel features [frames, 80] (audio.py).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Iterator, NamedTuple

from t2t_multimodel.modalities.spectrogram import check_sphere, featurize_file
from t2t_multimodel.problem import CommandToken, MissingDataError, Problem, Sample

AUDIO_EXTENSIONS = (".wav", ".wv1", ".sph")
WSJ_SPLIT_DIRS = {"train": ("si_tr_s", None), "dev": ("si_dt_20", "wsj1"), "test": ("si_et_20", "wsj0")}
HELD_OUT_FRACTION = 0.05   # of speakers, for dev and for test, without WSJ's folders
_DOT_LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")
_NOISE = re.compile(r"\[[^\]]*\]")
_VERBAL_PUNCTUATION = re.compile(r"^[^\w\s]+(?=[A-Z][A-Z-]*$)")
_NOT_TRANSCRIPT = re.compile(r"[^a-z0-9' ]")


class Utterance(NamedTuple):
  utterance_id: str
  path: str
  transcript: str    # normalised
  speaker: str       # the audio file's folder


def normalize_transcript(text: str) -> str:
  """A WSJ .dot transcript -> lower-case words (rules in the module docstring)."""
  words = []
  for token in _NOISE.sub(" ", text.replace("\\", "")).split():
    if token in ("~", "."):
      continue
    token = _VERBAL_PUNCTUATION.sub("", token)
    words.append(_NOT_TRANSCRIPT.sub("", token.lower().replace("-", " ")))
  return " ".join(" ".join(words).split())


def read_dot(path: str) -> dict[str, str]:
  """Utterance id (lower-case) -> raw transcript, from a WSJ .dot file."""
  texts = {}
  with open(path, encoding="latin-1") as f:
    for line in f:
      match = _DOT_LINE.match(line.strip())
      if match:
        texts[match.group("id").lower()] = match.group("text")
  return texts


def read_tsv(path: str) -> dict[str, str]:
  """Absolute audio path -> raw transcript, from a transcripts.tsv."""
  texts = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      fields = line.rstrip("\n").split("\t", 1)
      if len(fields) == 2 and fields[0].lower().endswith(AUDIO_EXTENSIONS):
        texts[os.path.normpath(os.path.join(os.path.dirname(path), fields[0]))] = fields[1]
  return texts


def find_utterances(root: str) -> list[Utterance]:
  """Every audio file under `root` with a transcript, one per utterance (a .wav first), sorted by path."""
  dot_texts, tsv_texts, audio_paths = {}, {}, []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(filenames):
      path, lower = os.path.normpath(os.path.join(dirpath, name)), name.lower()
      if lower.endswith(".dot"):
        dot_texts.update(read_dot(path))
      elif lower == "transcripts.tsv":
        tsv_texts.update(read_tsv(path))
      elif lower.endswith(AUDIO_EXTENSIONS):
        audio_paths.append(path)
  chosen: dict[str, tuple[str, str]] = {}   # key -> (path, raw text)
  for path in audio_paths:
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    key, text = (path, tsv_texts[path]) if path in tsv_texts else (stem, dot_texts.get(stem))
    if text is None:
      continue
    is_wav = path.lower().endswith(".wav")
    if key not in chosen or (is_wav and not chosen[key][0].lower().endswith(".wav")):
      chosen[key] = (path, text)
  utterances = [Utterance(os.path.splitext(os.path.basename(path))[0], path, normalize_transcript(text),
                          os.path.basename(os.path.dirname(path))) for path, text in chosen.values()]
  return sorted((u for u in utterances if u.transcript), key=lambda u: u.path)


def _parts(path: str, root: str) -> list[str]:
  return os.path.relpath(path, root).lower().split(os.sep)


def split_utterances(utterances: list[Utterance], root: str) -> dict[str, list[Utterance]]:
  """{"train"|"dev"|"test": utterances}: by WSJ's folders if any, else by speaker (module docstring)."""
  if any(folder in _parts(u.path, root) for u in utterances for folder, _ in WSJ_SPLIT_DIRS.values()):
    splits = {}
    for split, (folder, corpus) in WSJ_SPLIT_DIRS.items():
      chosen = [u for u in utterances if folder in _parts(u.path, root)]
      if corpus and any(corpus in _parts(u.path, root) for u in chosen):
        chosen = [u for u in chosen if corpus in _parts(u.path, root)]
      splits[split] = chosen
    return splits
  return _split_by_speaker(utterances, root)


def _split_by_speaker(utterances: list[Utterance], root: str) -> dict[str, list[Utterance]]:
  """Speakers (or, with fewer than 3, utterances by relative path) in SHA-1 order: test, dev, train."""
  by_speaker = len({u.speaker for u in utterances}) >= 3
  unit_of = {u: u.speaker if by_speaker else os.path.relpath(u.path, root) for u in utterances}
  units = sorted(set(unit_of.values()), key=lambda unit: hashlib.sha1(unit.encode()).hexdigest())
  held_out = max(1, round(HELD_OUT_FRACTION * len(units)))
  split_of = {unit: "test" if i < held_out else "dev" if i < 2 * held_out else "train"
              for i, unit in enumerate(units)}
  splits = {"train": [], "dev": [], "test": []}
  for u in utterances:
    splits[split_of[unit_of[u]]].append(u)
  return splits


class SpeechWsj(Problem):
  """WSJ speech recognition: log-mel features -> lower-case transcript (see the module docstring).

  Example:
    >>> problem = SpeechWsj()
    >>> problem.check_data("/data/tmp")          # MissingDataError says where to put WSJ
    >>> sample = next(problem.generate_samples("test", "/data/tmp"))   # eval92
    >>> sample["inputs"].shape[1], type(sample["targets"])               # [frames, 80], lower-case text
    (80, <class 'str'>)
  """

  name = "speech_wsj"
  input_modality = "audio"
  target_modality = "symbol"
  command = CommandToken.TO_TRANSCRIPT
  metrics = ("wer",)
  train_shards = 10
  dev_shards = 1
  test_shards = 1
  full_data = True
  description = "WSJ read speech (si284 / dev93 / eval92 by folder) -> transcript"

  def splits(self, tmp_dir: str) -> dict[str, list[Utterance]]:
    """The utterances of each split; MissingDataError if the corpus or a split is not there."""
    root = os.path.join(tmp_dir, "wsj")
    utterances = find_utterances(root) if os.path.isdir(root) else []
    if not utterances:
      raise MissingDataError(
          f"speech_wsj needs the WSJ speech corpus (LDC93S6B WSJ0 + LDC94S13B WSJ1): put its audio "
          f"(.wav, or .wv1/.sph as uncompressed PCM) and its .dot transcripts (or a transcripts.tsv of "
          f"path<TAB>text) in {root}/")
    splits = split_utterances(utterances, root)
    empty = [split for split, chosen in splits.items() if not chosen]
    if empty:
      raise MissingDataError(f"speech_wsj found no {' or '.join(empty)} utterances in {root}/ "
                             f"(WSJ folders: si_tr_s = train, si_dt_20 = dev93, si_et_20 = eval92)")
    return splits

  def check_data(self, tmp_dir: str) -> None:
    for chosen in self.splits(tmp_dir).values():   # Fails early on a compressed file.
      if not chosen[0].path.lower().endswith(".wav"):
        check_sphere(chosen[0].path)

  def transcripts(self, split: str, tmp_dir: str) -> list[str]:
    """The targets of `split`, in generation order, without reading audio."""
    return [u.transcript for u in self.splits(tmp_dir)[split]]

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    for utterance in self.splits(tmp_dir)[split]:
      yield {"inputs": featurize_file(utterance.path), "targets": utterance.transcript}

  def vocab_texts(self, tmp_dir: str) -> Iterator[str]:
    yield from self.transcripts("train", tmp_dir)
