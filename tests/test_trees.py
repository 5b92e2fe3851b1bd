"""trees: PTB reading and cleaning, Vinyals linearisation, repair, and EVALB-style scores by hand."""

import pytest

from t2t_multimodel.data import trees

PIERRE = """( (S
    (NP-SBJ
      (NP (NNP Pierre) (NNP Vinken) )
      (, ,)
      (ADJP
        (NP (CD 61) (NNS years) )
        (JJ old) )
      (, ,) )
    (VP (MD will)
      (VP (VB join)
        (NP (DT the) (NN board) )
        (PP-CLR (IN as)
          (NP (DT a) (JJ nonexecutive) (NN director) ))
        (NP-TMP (NNP Nov.) (CD 29) )))
    (. .) ))
( (S (NP-SBJ-1 (-NONE- *) ) (VP (VBZ is) (S (NP-SBJ (-NONE- *-1) ) (VP (TO to) (VP (VB go) )))) (. .) ))
"""
JOHN = "(S (NP (NNP John)) (VP (VBZ has) (NP (DT a) (NN dog))) (. .))"
# Positions 0-1 NP, 2 the verb, 3-4 NP, 5 "." (deleted): S(0,5) NP(0,2) VP(2,5) NP(3,5).
REF = "(S (NP XX XX )NP (VP XX (NP XX XX )NP )VP . )S"


def _counts(predicted, reference):
  c = trees.bracket_counts(predicted, reference)
  return c.matched, c.predicted, c.reference


def test_read_bracketed_many_trees_and_the_wrapper():
  read = trees.read_bracketed(PIERRE)
  assert len(read) == 2 and read[0].label == "" and read[0].children[0].label == "S"
  assert read[0].leaves()[:3] == ["Pierre", "Vinken", ","]
  with pytest.raises(ValueError, match="left open"):
    trees.read_bracketed("(S (NP (DT the) (NN cat))")
  with pytest.raises(ValueError, match="no open bracket at character 8"):
    trees.read_bracketed("(NN cat))")


def test_clean_strips_traces_function_tags_and_the_wrapper():
  first, second = (trees.clean(t) for t in trees.read_bracketed(PIERRE))
  assert str(second) == "(S (VP (VBZ is) (S (VP (TO to) (VP (VB go))))) (. .))"
  assert str(first).startswith("(S (NP (NP (NNP Pierre) (NNP Vinken)) (, ,) (ADJP")
  assert "(PP (IN as)" in str(first) and "(NP (NNP Nov.) (CD 29))" in str(first)
  assert trees.clean(trees.read_bracketed("( (NP (-NONE- *T*-1)) )")[0]) is None
  for label, stripped in [("NP-SBJ-1", "NP"), ("PP-LOC=2", "PP"), ("ADVP|PRT", "ADVP"), ("S-TPC-1", "S"),
                          ("-NONE-", "-NONE-"), ("-LRB-", "-LRB-"), ("PRP$", "PRP$"), ("", "")]:
    assert trees.strip_function_tags(label) == stripped


def test_linearize_known_trees():
  john = trees.read_bracketed(JOHN)[0]
  # The paper's Figure 1, tags kept:
  assert trees.linearize(john, keep_pos=True) == "(S (NP NNP )NP (VP VBZ (NP DT NN )NP )VP . )S"
  assert trees.linearize(john) == "(S (NP XX )NP (VP XX (NP XX XX )NP )VP . )S"
  pierre = trees.clean(trees.read_bracketed(PIERRE)[0])
  assert trees.linearize(pierre) == (
      "(S (NP (NP XX XX )NP , (ADJP (NP XX XX )NP XX )ADJP , )NP (VP XX (VP XX (NP XX XX )NP "
      "(PP XX (NP XX XX XX )NP )PP (NP XX XX )NP )VP )VP . )S")
  assert trees.sentence(pierre) == ("Pierre Vinken , 61 years old , will join the board as a nonexecutive "
                                    "director Nov. 29 .")
  quoted = trees.read_bracketed("(S (`` ``) (NP (-LRB- -LRB-) (NN yes) (-RRB- -RRB-)) ('' ''))")[0]
  assert trees.linearize(quoted) == "(S `` (NP XX XX XX )NP '' )S"
  assert trees.sentence(quoted) == "`` ( yes ) ''"


def test_round_trip():
  for text in (JOHN, PIERRE):
    tree = trees.clean(trees.read_bracketed(text)[0])
    for keep_pos in (False, True):
      linear = trees.linearize(tree, keep_pos)
      assert trees.is_valid(linear)
      assert trees.linearize_skeleton(trees.delinearize(linear)) == linear
  john = trees.read_bracketed(JOHN)[0]
  assert trees.delinearize(trees.linearize(john, keep_pos=True)) == trees.skeleton(john)
  repaired = trees.delinearize("(NP NN )NP VBZ (VP VB )VP")
  assert trees.linearize_skeleton(repaired, keep_pos=False) == "(NP XX )NP XX (VP XX )VP"


def test_validate_names_the_problem():
  assert trees.validate(REF) is None
  assert trees.validate("(S (NP XX )VP )S") == "token 3 ()VP) does not match its opening bracket"
  assert trees.validate("(S XX )S (S XX )S") == "token 3 ((S) starts a second tree"
  assert trees.validate("(S (NP )NP XX )S") == "token 2 ()NP) closes an empty bracket"
  assert trees.validate("(S XX )S )S") == "token 3 ()S) closes a bracket that is not open"
  assert trees.validate("(S (NP XX") == "2 bracket(s) left open"
  assert trees.validate("XX (S XX )S") == "it does not start with an opening bracket"
  assert trees.validate("") == "it does not start with an opening bracket"


def test_delinearize_repairs():
  assert str(trees.delinearize("(S (NP XX XX")) == "(S (NP XX XX))"                      # closed at the end
  assert str(trees.delinearize(")S (S XX )VP )S )NP")) == "(S XX)"            # stray closers dropped
  assert str(trees.delinearize("(S (NP )NP XX )S")) == "(S XX)"               # empty bracket dropped
  assert str(trees.delinearize("(NP XX )NP (VP XX )VP .")) == "( (NP XX) (VP XX) .)"     # one wrapper
  assert str(trees.delinearize("")) == "( )"


def test_bracket_counts_by_hand():
  assert _counts(REF, REF) == (4, 4, 4) and trees.bracket_f1(REF, REF) == 100.0
  # A flat object: S, NP, VP right; the inner NP missed. P 3/3, R 3/4.
  flat = "(S (NP XX XX )NP (VP XX XX XX )VP . )S"
  assert _counts(flat, REF) == (3, 3, 4)
  assert trees.bracket_f1(flat, REF) == pytest.approx(2 * 100 * 75 / 175)
  # A wrong split: NP(0,1) and VP(1,5) wrong, S(0,5) and NP(3,5) right. P 2/4, R 2/4.
  shifted = "(S (NP XX )NP (VP XX XX (NP XX XX )NP )VP . )S"
  assert _counts(shifted, REF) == (2, 4, 4) and trees.bracket_f1(shifted, REF) == pytest.approx(50.0)
  # A wrong label counts as a miss.
  assert _counts("(S (NP XX XX )NP (VP XX (ADJP XX XX )ADJP )VP . )S", REF) == (3, 4, 4)


def test_punctuation_equal_labels_and_unary_chains():
  ref = "(S (NP (NP XX )NP , (NP XX )NP , )NP (VP XX )VP . )S"
  # The outer NP leaves out its final comma: the same span once punctuation is deleted.
  other = "(S (NP (NP XX )NP , (NP XX )NP )NP , (VP XX )VP . )S"
  assert _counts(other, ref) == (5, 5, 5) and trees.exact_match(other, ref)
  # A bracket over punctuation only is not counted.
  assert _counts("(S (NP XX )NP (VP XX )VP (PRN , )PRN . )S", "(S (NP XX )NP (VP XX )VP , . )S") == (3, 3, 3)
  # EVALB's EQ_LABEL ADVP PRT.
  assert trees.exact_match("(S (NP XX )NP (VP XX (ADVP XX )ADVP )VP )S",
                           "(S (NP XX )NP (VP XX (PRT XX )PRT )VP )S")
  # A unary chain VP -> VP is two brackets; a single VP matches one of them.
  assert _counts("(S (VP XX )VP )S", "(S (VP (VP XX )VP )VP )S") == (2, 2, 3)
  # Tags are not scored.
  assert trees.exact_match("(S (NP NNP NNP )NP (VP VBZ (NP DT NN )NP )VP . )S", REF)


def test_length_mismatch_and_malformed_predictions():
  # Too short: two XX added under S, so S spans the sentence; VP(2,3) is wrong.
  assert _counts("(S (NP XX XX )NP (VP XX )VP . )S", REF) == (2, 3, 4)
  # Too long: nothing is cut. Positions 0-7, reference punctuation at 5 deleted: S(0,7) NP(0,2)
  # VP(2,6) NP(3,6); only NP(0,2) matches, and it is no exact match.
  long = "(S (NP XX XX )NP (VP XX (NP XX XX XX XX )NP )VP . )S"
  assert _counts(long, REF) == (1, 4, 4) and not trees.exact_match(long, REF)
  # Missing its last closing bracket: repaired and scored, but no exact match.
  unclosed = "(S (NP XX XX )NP (VP XX (NP XX XX )NP )VP ."
  assert trees.bracket_f1(unclosed, REF) == 100.0 and not trees.exact_match(unclosed, REF)
  # Two trees side by side: the wrapper is not scored. P 3/3, R 3/4.
  assert _counts("(NP XX XX )NP (VP XX (NP XX XX )NP )VP .", REF) == (3, 3, 4)
  for garbage in ("", ")S )NP", "XX XX XX", "(S"):
    assert _counts(garbage, REF) == (0, 0, 4) and trees.bracket_f1(garbage, REF) == 0.0
  assert trees.bracket_f1("(S XX )S", "(S XX )S") == 100.0


def test_extra_brackets_of_an_over_long_prediction_are_scored():
  # The reference tree, then an extra NP over two positions past its end (not punctuation there):
  # all 4 reference brackets found, 5 predicted. P 80, R 100.
  longer = REF + " (NP XX XX )NP"
  counts = trees.bracket_counts(longer, REF)
  assert (counts.matched, counts.predicted, counts.reference) == (4, 5, 4)
  assert counts.recall == 100.0 and counts.precision == pytest.approx(80.0)
  assert counts.f1 == pytest.approx(2 * 80 * 100 / 180) and counts.f1 < 100.0
  assert not trees.exact_match(longer, REF)
  # Past the reference's end a "." is an ordinary position: the bracket over it counts.
  assert _counts("(S XX )S (NP . )NP", "(S XX )S") == (1, 2, 1)
  # Padding a short prediction adds no bracket: XX under S, which then spans the sentence.
  assert _counts("(S (NP XX XX )NP )S", REF) == (2, 2, 4)


def test_bracketed_trees_are_scored_too():
  ref = "(S (NP (DT the) (NN cat)) (VP (VBD sat)))"
  flat = "(S (DT the) (NN cat) (VP (VBD sat)))"
  assert _counts(flat, ref) == (2, 2, 3) and trees.bracket_f1(flat, ref) == pytest.approx(80.0)
  assert trees.exact_match("(S (NP XX XX )NP (VP XX )VP )S", ref)
  assert _counts("(S (NP (DT the)", ref) == (0, 0, 3)            # unreadable bracketed prediction
  with pytest.raises(ValueError, match="one bracketed reference"):
    trees.bracket_counts(ref, "(S (NN a)) (S (NN b))")


def test_corpus_scores_sum_counts():
  predictions = ["(S (NP XX XX )NP (VP XX XX XX )VP . )S", "(S (NP XX )NP (VP XX XX (NP XX XX )NP )VP . )S"]
  counts = trees.corpus_bracket_counts(predictions, [REF, REF])
  assert (counts.matched, counts.predicted, counts.reference) == (5, 7, 8)
  assert (counts.complete, counts.sentences) == (0, 2)
  assert counts.precision == pytest.approx(500 / 7) and counts.recall == pytest.approx(62.5)
  # EVALB's corpus F1 comes from the summed counts (66.67), not the mean of sentence F1s (67.86).
  assert trees.corpus_bracket_f1(predictions, [REF, REF]) == pytest.approx(200 / 3)
  assert trees.corpus_bracket_counts([REF, REF], [REF, REF]).complete == 2
  # A sentence with nothing to find and nothing predicted is perfect; an empty corpus is an error.
  assert trees.corpus_bracket_f1(["XX XX"], ["XX XX"]) == 100.0
  for empty in (trees.corpus_bracket_counts, trees.corpus_bracket_f1):
    with pytest.raises(ValueError, match="no examples"):
      empty([], [])
  with pytest.raises(ValueError, match="Received: 1 predictions, 2 references"):
    trees.corpus_bracket_counts([REF], [REF, REF])
