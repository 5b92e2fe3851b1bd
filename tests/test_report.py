"""The run report: final test metrics, curves and decoded examples from a run dir's files."""

import os
import subprocess
import sys

import pytest

from t2t_multimodel.errors import UserError
from t2t_multimodel.evaluate import report, targets
from t2t_multimodel.hparams.multimodel import multimodel_tiny
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.run import run_dir

NAMES = ("image_digits", "translate_ende_bible")


def _write_run(output_dir, final_split="test"):
  """A run dir in the trainer's format: two problems, dev evaluations at steps 2 and 4."""
  signatures = [PROBLEMS.get(name).signature() for name in NAMES]
  record = run_dir.problems_record(",".join(NAMES), signatures, "uniform",
                                   {name: 0.5 for name in NAMES}, 0, None, "/data")
  run_dir.prepare(str(output_dir), multimodel_tiny(), record)
  metrics = []
  for step, split in ((2, "dev"), (4, "dev"), (4, final_split)):
    metrics += [{"step": step, "problem": "image_digits", "split": split, "examples": 179,
                 "accuracy": step / 10, "accuracy_top5": 0.5, "loss": 2.0 - step / 10},
                {"step": step, "problem": "translate_ende_bible", "split": split, "examples": 805,
                 "bleu": step * 1.5, "chrf": 20.0, "degenerate": 0.25, "accuracy": 0.1,
                 "neg_log_perplexity": -5.0, "loss": 5.0}]
  run_dir.append_jsonl(str(output_dir / run_dir.METRICS_FILE), metrics)
  run_dir.append_jsonl(str(output_dir / run_dir.TRAIN_LOG_FILE), [
      {"step": step, "steps_per_sec": 3.0, "loss": {name: 4.0 / step for name in NAMES},
       "steps": {"image_digits": 1, "translate_ende_bible": 1}, "learning_rate": 0.01}
      for step in (2, 4)])
  run_dir.append_jsonl(str(output_dir / run_dir.DECODES_FILE), [
      {"step": 4, "problem": "translate_ende_bible", "split": "test", "input": "In the beginning",
       "reference": "Im Anfang", "hypothesis": "Am | Anfang"}])


def test_report_has_final_metrics_curves_examples_and_timings(tmp_path):
  run = tmp_path / "run"
  _write_run(run)
  examples = tmp_path / "decoder"
  examples.mkdir()
  (examples / "translate_ende_bible.in").write_text("Love your neighbour.\n\n")
  (examples / "translate_ende_bible.out").write_text("Liebe deinen Nächsten.\n\n")
  (tmp_path / "timings.tsv").write_text("datagen\t12\ntrain and evaluate\t600\n")
  path = report.write_report(str(run), str(tmp_path / "out" / "demo.md"), str(examples),
                             str(tmp_path / "timings.tsv"))
  text = open(path, encoding="utf-8").read()
  assert "| image_digits | 2 | 179 | accuracy=0.4, accuracy_top5=0.5 | 1.6 |" in text
  assert ("| translate_ende_bible | 2 | 805 | bleu=6, accuracy=0.1, neg_log_perplexity=-5, chrf=20, "
          "degenerate=0.25 | 5 |") in text
  assert "over the whole test split" in text
  assert "| train and evaluate | 600 |" in text
  assert "| translate_ende_bible | In the beginning | Im Anfang | Am \\| Anfang |" in text
  assert "| Love your neighbour. | Liebe deinen Nächsten. |" in text
  for plot in ("demo_loss.png", "demo_metrics.png"):
    assert f"]({plot})" in text
    assert (tmp_path / "out" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curves_by_problem():
  records = [{"step": 2, "problem": "a", "split": "dev", "bleu": 1.0},
             {"step": 2, "problem": "a", "split": "test", "bleu": 9.0},
             {"step": 4, "problem": "a", "split": "dev", "bleu": 3.0}]
  assert report.curves(records, "bleu", split="dev") == {"a": ([2, 4], [1.0, 3.0])}
  log = [{"step": 2, "loss": {"a": 1.0, "b": 2.0}}, {"step": 4, "loss": {"a": 0.5}}]
  assert report.curves(log, "loss") == {"a": ([2, 4], [1.0, 0.5]), "b": ([2], [2.0])}


def test_a_run_without_a_final_evaluation_is_a_one_line_error(tmp_path):
  _write_run(tmp_path, final_split="dev")
  with pytest.raises(UserError, match="No test evaluation"):
    report.write_report(str(tmp_path), str(tmp_path / "demo.md"))


def test_mm_report_names_a_missing_run_in_one_line(tmp_path):
  mm_report = os.path.join(os.path.dirname(sys.executable), "mm-report")
  result = subprocess.run([mm_report, f"--output_dir={tmp_path}", f"--report={tmp_path / 'r.md'}"],
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("mm-report: error: No training run in"), result.stderr


def test_report_writes_final_figures_as_json_and_appends_notes(tmp_path):
  run = tmp_path / "run"
  _write_run(run)
  (tmp_path / "notes.md").write_text("## What was tried\n\nwarmup 400: no change.\n")
  report.write_report(str(run), str(tmp_path / "train.md"), json_path=str(tmp_path / "train.json"),
                      notes_path=str(tmp_path / "notes.md"))
  figures = run_dir.read_json(str(tmp_path / "train.json"))
  assert figures["image_digits"] == {"accuracy": 0.4, "accuracy_top5": 0.5, "loss": 1.6}
  assert figures["translate_ende_bible"]["bleu"] == 6.0 and "examples" not in figures["translate_ende_bible"]
  assert (tmp_path / "train.md").read_text().rstrip().endswith("warmup 400: no change.")


def test_report_lists_each_target_with_its_value_and_whether_it_is_met(tmp_path):
  run = tmp_path / "run"
  _write_run(run)
  text = open(report.write_report(str(run), str(tmp_path / "train.md"), with_targets=True)).read()
  assert f"## Targets (issue #13): 0 of {len(targets.TARGETS)} met" in text
  assert "| image_digits | accuracy >= 0.97 | 0.4 | **no** |" in text
  assert "| translate_ende_bible | bleu >= 15 | 6 | **no** |" in text
  assert "| speech_espeak | wer <= 0.25 | absent | **no** |" in text
  assert "## Targets" not in open(report.write_report(str(run), str(tmp_path / "plain.md"))).read()


def test_report_shows_another_runs_figures_beside_its_own(tmp_path):
  run = tmp_path / "run"
  _write_run(run)
  run_dir.write_json(str(tmp_path / "train.json"), {
      "image_digits": {"accuracy": 0.983, "accuracy_top5": 1.0},
      "translate_ende_bible": {"bleu": 12.4, "chrf": 36.2, "degenerate": 0.022},
      "speech_espeak": {"wer": 0.841, "chrf": 18.5, "degenerate": 0.0}})
  text = open(report.write_report(str(run), str(tmp_path / "demo.md"),
                                  compare_path=str(tmp_path / "train.json"))).read()
  compare = str(tmp_path / "train.json")
  assert f"| problem | this run | {compare} |" in text
  assert "| image_digits | accuracy=0.4 | accuracy=0.983 |" in text
  assert "| translate_ende_bible | bleu=6, degenerate=0.25 | bleu=12.4, degenerate=0.022 |" in text
  assert "| speech_espeak | not trained | wer=0.841, degenerate=0 |" in text
  with pytest.raises(FileNotFoundError):
    report.write_report(str(run), str(tmp_path / "x.md"), compare_path=str(tmp_path / "absent.json"))


def test_targets_are_met_at_their_bound_and_missing_figures_are_not_met():
  final = {"image_digits": {"accuracy": 0.97}, "translate_ende_bible": {"bleu": 14.99, "degenerate": 0.02}}
  met = {target.name: ok for target, _, ok in targets.check(final)}
  assert met["image_digits.accuracy>=0.97"] and met["translate_ende_bible.degenerate<=0.02"]
  assert not met["translate_ende_bible.bleu>=15"] and not met["parse_trees.bracket_f1>=80"]


def test_the_report_says_how_the_final_figures_were_decoded(tmp_path):
  _write_run(tmp_path)
  assert (report.decoding_words(report.read_test_evaluation(str(tmp_path)))
          == "greedy decoding (the trainer's final evaluation)")
  averaged = tmp_path / run_dir.AVERAGED_DIR
  averaged.mkdir()
  run_dir.write_json(str(averaged / "ckpt-4.json"), {"checkpoints": ["a/ckpt-2", "a/ckpt-4"], "steps": [2, 4]})
  problems = {"image_digits": {"examples": 179, "metrics": {"accuracy": 0.5}}}
  for checkpoint, beam_size, words in [
      (str(tmp_path / "checkpoints" / "ckpt-4"), 1, "greedy decoding"),
      (str(averaged / "ckpt-4"), 4, "beam search (beam 4, alpha 0.6) of the average of the 2 "
                                    "checkpoints at steps 2, 4")]:
    run_dir.write_json(str(tmp_path / "eval_test.json"), {
        "split": "test", "step": 4, "checkpoint": checkpoint, "problems": problems,
        "decoding": {"beam_size": beam_size, "alpha": 0.6, "max_length": 16}})
    assert report.decoding_words(report.read_test_evaluation(str(tmp_path))) == words
    text = open(report.write_report(str(tmp_path), str(tmp_path / "r.md")), encoding="utf-8").read()
    assert f"untruncated references; decoding: {words}. " in text


def test_the_decodes_shown_are_those_of_the_figures_shown(tmp_path):
  """With an mm-evaluate eval_test.json, its decodes are shown, not the trainer's final greedy ones."""
  _write_run(tmp_path)
  text = open(report.write_report(str(tmp_path), str(tmp_path / "r.md")), encoding="utf-8").read()
  assert "| Am \\| Anfang |" in text
  run_dir.write_json(str(tmp_path / "eval_test.json"), {
      "split": "test", "step": 4, "checkpoint": str(tmp_path / "checkpoints" / "ckpt-4"),
      "problems": {"translate_ende_bible": {"examples": 805, "metrics": {"bleu": 7.0}}},
      "decoding": {"beam_size": 4, "alpha": 0.6, "max_length": 16}})
  run_dir.append_jsonl(str(tmp_path / "eval_test_decodes.jsonl"), [
      {"problem": "translate_ende_bible", "input": "In the beginning", "reference": "Im Anfang",
       "hypothesis": "Im Anfang schuf"}])
  text = open(report.write_report(str(tmp_path), str(tmp_path / "r.md")), encoding="utf-8").read()
  assert "| translate_ende_bible | In the beginning | Im Anfang | Im Anfang schuf |" in text
  assert "Am \\| Anfang" not in text
