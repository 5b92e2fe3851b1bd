"""Evaluation metrics: hand-computed cases, padding masked, and agreement with sacrebleu/jiwer."""

import jiwer
import numpy as np
import pytest
import sacrebleu
import tensorflow as tf

from t2t_multimodel.evaluate import metrics
from t2t_multimodel.registry import UnknownNameError


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  return x - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)) - x.max(-1, keepdims=True)


SYMBOL_LOGITS = np.array([[[0, 1, 5, 2, 0, 0],     # argmax 2 = target 2: correct
                           [0, 4, 1, 6, 0, 0],     # argmax 3, target 1 second: top-5 only
                           [9, 0, 0, 0, 0, 0]]],   # padding: ignored whatever it holds
                         np.float32)
SYMBOL_TARGETS = np.array([[2, 1, 0]])


def test_token_metrics_mask_padding():
  stream = metrics.TokenMetrics()
  stream.update(SYMBOL_LOGITS, SYMBOL_TARGETS)
  result = stream.result()
  log_p = _log_softmax(SYMBOL_LOGITS[0])
  assert result["accuracy"] == pytest.approx(0.5)
  assert result["accuracy_top5"] == pytest.approx(1.0)
  assert result["neg_log_perplexity"] == pytest.approx((log_p[0, 2] + log_p[1, 1]) / 2, rel=1e-5)
  assert all(type(v) is float for v in result.values())


def test_token_metrics_stream_over_batches():
  stream = metrics.TokenMetrics()
  stream.update(SYMBOL_LOGITS, SYMBOL_TARGETS)
  stream.update(SYMBOL_LOGITS[:, :1], SYMBOL_TARGETS[:, :1])       # one more correct token
  assert stream.result()["accuracy"] == pytest.approx(2 / 3)
  stream.reset()
  with pytest.raises(ValueError, match="no examples"):
    stream.result()


def test_token_metrics_of_nothing_is_an_error():
  with pytest.raises(ValueError, match=r"no examples \(weight=0.0\)"):
    metrics.TokenMetrics().result()
  stream = metrics.TokenMetrics()
  stream.update(SYMBOL_LOGITS[:, 2:], SYMBOL_TARGETS[:, 2:])      # padding only: nothing counted
  with pytest.raises(ValueError, match="no examples"):
    stream.result()


def test_top5_misses_a_target_ranked_sixth():
  logits = np.array([[[6, 5, 4, 3, 2, 1, 0]]], np.float32)
  stream = metrics.TokenMetrics()
  stream.update(logits, np.array([[5]]))
  assert stream.result()["accuracy_top5"] == 0.0
  stream.update(logits, np.array([[4]]))
  assert stream.result()["accuracy_top5"] == 0.5


def test_class_label_accuracy_counts_label_zero():
  logits = np.array([[3, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 3], [0, 0, 3, 0, 0, 0, 0]], np.float32)
  stream = metrics.TokenMetrics()
  stream.update(logits, np.array([[0], [6], [3]]))
  result = stream.result()
  log_p = _log_softmax(logits)
  assert result["accuracy"] == pytest.approx(2 / 3)
  assert result["accuracy_top5"] == pytest.approx(1.0)
  assert result["neg_log_perplexity"] == pytest.approx((log_p[0, 0] + log_p[1, 6] + log_p[2, 3]) / 3)


def test_fewer_than_five_classes():
  stream = metrics.TokenMetrics()
  stream.update(np.array([[0.0, 1.0, 2.0]]), np.array([[0]]))
  assert stream.result()["accuracy"] == 0.0 and stream.result()["accuracy_top5"] == 1.0


def test_batch_statistics_in_a_tf_function():
  compiled = tf.function(metrics.batch_statistics)
  stream = metrics.TokenMetrics()
  stream.add(compiled(tf.constant(SYMBOL_LOGITS), tf.constant(SYMBOL_TARGETS, tf.int32)))
  assert stream.result()["accuracy"] == pytest.approx(0.5)


HYPS = ["the cat sat on the mat", "a quick brown fox jumps", "hello there", ""]
REFS = ["the cat sat on a mat", "the quick brown fox jumped", "hello there", "nothing here"]


def test_bleu_is_sacrebleu_on_the_same_text():
  assert metrics.bleu(HYPS, REFS) == sacrebleu.corpus_bleu(HYPS, [REFS]).score
  assert metrics.bleu(["the same sentence here"], ["the same sentence here"]) == pytest.approx(100.0)
  assert metrics.bleu(["x y z w"], ["a b c d"]) == 0.0
  assert type(metrics.bleu(HYPS, REFS)) is float


def test_chrf_is_sacrebleu_on_the_same_text():
  assert metrics.chrf(HYPS, REFS) == sacrebleu.corpus_chrf(HYPS, [REFS]).score
  partial = metrics.chrf(["the cat sat on the mat"], ["the dog sat on a rug"])
  assert 0.0 < partial < 100.0
  assert metrics.chrf(["xyz"], ["abc"]) == 0.0
  assert type(metrics.chrf(HYPS, REFS)) is float


def test_wer_hand_computed_and_equal_to_jiwer():
  # 1 substitution (b->x), 1 deletion (c), 1 insertion (f) over 5 reference words.
  assert metrics.wer(["a x", "d e f"], ["a b c", "d e"]) == pytest.approx(0.6)
  assert metrics.wer(HYPS, REFS) == pytest.approx(jiwer.wer(REFS, HYPS))


@pytest.mark.parametrize("hyps, refs", [([""], ["a b c"]), (["a"], [""]), (["a b", "x y"], ["a b", ""]),
                                        ([""], [""]), (["", ""], ["", ""])])
def test_wer_handles_empty_strings_like_jiwer(hyps, refs):
  assert metrics.wer(hyps, refs) == pytest.approx(float(jiwer.wer(refs, hyps)))


def test_text_metrics_need_aligned_lists():
  with pytest.raises(ValueError, match="2 hypotheses, 1 references"):
    metrics.bleu(["a", "b"], ["a"])


TREE_REF = "(S (NP XX XX )NP (VP XX )VP . )S"    # brackets S[0, 3), NP[0, 2), VP[2, 3)


def test_bracket_f1_and_exact_match_hand_computed():
  assert metrics.bracket_f1([TREE_REF], [TREE_REF]) == 100.0
  assert metrics.exact_match([TREE_REF], [TREE_REF]) == 1.0
  # Without the NP: 2 brackets predicted, both right, 2 of the 3 found: P 100, R 66.7, F1 80.
  flat = "(S XX XX (VP XX )VP . )S"
  assert metrics.bracket_f1([flat], [TREE_REF]) == pytest.approx(80.0)
  # Corpus F1 from summed counts (matched 5 of predicted 5, reference 6), not a mean of F1s.
  assert metrics.bracket_f1([flat, TREE_REF], [TREE_REF, TREE_REF]) == pytest.approx(2 * 5 / 11 * 100)
  assert metrics.exact_match([flat, TREE_REF], [TREE_REF, TREE_REF]) == 0.5
  assert type(metrics.bracket_f1([flat], [TREE_REF])) is float
  assert type(metrics.exact_match([flat], [TREE_REF])) is float


def test_tree_metrics_survive_malformed_hypotheses():
  assert metrics.bracket_f1(["(S XX (NP XX", ""], [TREE_REF, TREE_REF]) < 100.0
  assert metrics.exact_match(["(S (NP XX XX )NP (VP XX )VP . )S )S"], [TREE_REF]) == 0.0


KING = "the king of the king of the king of the king of the land"


def test_degenerate_decodes():
  # "the king of" 3+ times back to back (9+ words), never in the reference: degenerate.
  assert metrics.is_degenerate(KING, "the king of the land rode home")
  assert metrics.degenerate([KING], ["the king of the land rode home"]) == 1.0
  # A tree whose reference repeats the same run as often is not degenerate.
  tree = "(S (NP XX XX XX XX XX XX XX XX XX )NP . )S"
  assert not metrics.is_degenerate(tree, tree)
  assert metrics.degenerate([tree], [tree]) == 0.0
  # More copies in a row than the reference has is degenerate again; 3 copies is the least,
  # covering 8 words at least, and copies apart from each other are not a loop.
  assert metrics.is_degenerate("(S (NP XX XX XX XX XX XX XX XX XX XX )NP . )S", tree)
  assert not metrics.is_degenerate("a b c d a b c d", "x")
  assert not metrics.is_degenerate("a b a b a b", "x")
  assert metrics.is_degenerate("a b a b a b a b", "x")
  assert not metrics.is_degenerate("the lord said , and the lord said , so the lord said ,", "x")
  assert metrics.degenerate([KING, "a normal sentence"], ["the king", "a normal sentence"]) == 0.5
  assert type(metrics.degenerate([KING], ["x"])) is float


def test_degenerate_is_blind_to_what_well_formed_trees_repeat():
  # Trees repeat 4-grams everywhere (")NP )PP )NP )PP", "(NP XX )NP (PP"): scored against the
  # tree of another sentence, a well-formed tree is not a loop.
  # "(NP (NP XX )NP" 3 times: the old measure (a 4-gram 3 times anywhere) called this a loop.
  nested = ("(S (NP (NP XX )NP (PP XX (NP XX )NP )PP )NP (VP XX (NP (NP XX )NP (PP XX (NP XX )NP )PP"
            " )NP (PP XX (NP (NP XX )NP (PP XX (NP XX )NP )PP )NP )PP )VP . )S")
  flat = "(S (NP XX XX )NP (VP XX (NP XX )NP (PP XX (NP XX )NP )PP )VP . )S"
  assert not metrics.is_degenerate(nested, flat)
  # A tree stuck in an NP-PP nesting until the length limit is. (So is a real NP-PP recursion 3
  # deep that its reference lacks: 1.5% of parse_trees' test trees against another's reference.)
  stuck = "(S (NP (NP XX )NP " + "(PP XX (NP (NP XX )NP " * 6
  assert metrics.is_degenerate(stuck, nested)


PERFECT = {"bleu": 100.0, "chrf": 100.0, "wer": 0.0, "bracket_f1": 100.0, "exact_match": 1.0,
           "degenerate": 0.0}


def test_perfect_hypotheses_score_perfectly():
  prose = ["the cat sat on the mat today", "a quick brown fox jumps over the dog"]
  assert metrics.text_metrics(["bleu", "chrf", "wer", "degenerate"], prose, prose) == pytest.approx(
      {name: PERFECT[name] for name in ("bleu", "chrf", "wer", "degenerate")})
  parses = [TREE_REF, "(S (NP XX XX XX XX XX XX )NP . )S"]
  assert metrics.text_metrics(["bracket_f1", "exact_match", "degenerate"], parses, parses) == {
      "bracket_f1": 100.0, "exact_match": 1.0, "degenerate": 0.0}


@pytest.mark.parametrize("name", sorted(PERFECT))
def test_an_empty_evaluation_is_an_error(name):
  assert metrics.METRICS.get(name).kind == "text"
  with pytest.raises(ValueError, match="no examples"):
    metrics.METRICS.get(name).text_fn([], [])


def test_registry_knows_every_metric_name():
  token, text = metrics.split_metric_names(["bleu", "accuracy", "wer", "neg_log_perplexity", "chrf",
                                            "bracket_f1", "accuracy_top5", "exact_match", "degenerate"])
  assert token == ["accuracy", "neg_log_perplexity", "accuracy_top5"]
  assert text == ["bleu", "wer", "chrf", "bracket_f1", "exact_match", "degenerate"]
  assert metrics.METRICS.get("chrf").scale == "0-100"
  assert metrics.METRICS.get("degenerate").scale == "fraction, lower is better"
  with pytest.raises(UnknownNameError, match="Known metrics: accuracy"):
    metrics.split_metric_names(["rouge"])


def test_text_metrics_by_name():
  result = metrics.text_metrics(["accuracy", "bleu", "wer"], HYPS, REFS)
  assert result == {"bleu": metrics.bleu(HYPS, REFS), "wer": metrics.wer(HYPS, REFS)}
