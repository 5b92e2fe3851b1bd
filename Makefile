# t2t-multimodel: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= data/mm8_mini
RUN    ?= runs/demo
STEPS  ?= 1500
EVAL_EVERY ?= 500
EVAL_EXAMPLES ?= 100
# The demo's three problems (a label, a caption, a translation) and how its steps are shared:
# temperature 1.5 gives de->en ~73% of them, the batches it needs to translate recognisably.
DEMO_PROBLEMS ?= image_digits,caption_emoji,translate_deen_bible
DEMO_MIXING ?= temperature:1.5

TRAIN_RUN   ?= runs/train
TRAIN_STEPS ?= 14000

.PHONY: install browser demo train learning test test-all bench reproduce clean

install: $(VENV)/.installed

# Idempotent: reinstalls only when setup.py changes (the install is editable).
$(VENV)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	touch $@

# Runs `$(2)` and appends "$(1)<TAB>seconds" to $(3)/timings.tsv (default: the demo's run dir).
timed = start=$$(date +%s); $(2) && echo "$(1)	$$(( $$(date +%s) - start ))" >> $(or $(3),$(RUN))/timings.tsv

# mm-decoder on every demo/<problem>.in whose problem the run $(1) trained, into
# $(1)/decoder/<problem>.out.
decode_demo = for input in demo/*.in; do name=$$(basename $$input .in); \
	  grep -q "\"$$name\"" $(1)/problems.json || continue; \
	  cp $$input $(1)/decoder/; $(BIN)/mm-decoder --output_dir=$(1) --problem=$$name \
	  < $$input > $(1)/decoder/$$name.out || exit 1; done

# datagen -> joint training of multimodel_demo on three problems for 1,500 steps (resumes if
# interrupted) -> mm-evaluate on their whole test splits (beam 4, as make train) -> mm-decoder on
# the sentences in demo/*.in -> reports/demo.md with plots, and make train's figures beside its own.
demo: install
	@mkdir -p $(RUN)/decoder reports && rm -f $(RUN)/timings.tsv
	$(call timed,datagen,$(BIN)/mm-datagen --problems=mm8_mini --data_dir=$(DATA))
	$(call timed,train,$(BIN)/mm-trainer --problems=$(DEMO_PROBLEMS) \
	  --hparams_set=multimodel_demo --data_dir=$(DATA) --output_dir=$(RUN) --train_steps=$(STEPS) \
	  --mixing=$(DEMO_MIXING) --eval_every=$(EVAL_EVERY) --eval_examples=$(EVAL_EXAMPLES) \
	  --checkpoint_every=$(EVAL_EVERY) --final_eval_splits=)
	$(call timed,evaluate,$(BIN)/mm-evaluate --output_dir=$(RUN) --split=test)
	$(call timed,decode,$(call decode_demo,$(RUN)))
	$(BIN)/mm-report --output_dir=$(RUN) --report=reports/demo.md \
	  --examples_dir=$(RUN)/decoder --timings=$(RUN)/timings.tsv --compare=reports/train.json

# The recipe that learns on 2 cores (multimodel_small, batches of ~2k tokens, temperature mixing):
# datagen -> joint training on mm8_mini (resumes from its last checkpoint if interrupted) ->
# mm-evaluate on every whole test split -> mm-decoder on demo/*.in -> reports/train.md and
# reports/train.json ({problem: {metric: value}}), with reports/train_notes.md (what was tried).
train: install
	@mkdir -p $(TRAIN_RUN)/decoder reports && rm -f $(TRAIN_RUN)/timings.tsv
	$(call timed,datagen,$(BIN)/mm-datagen --problems=mm8_mini --data_dir=$(DATA),$(TRAIN_RUN))
	$(call timed,train,$(BIN)/mm-trainer --problems=mm8_mini --hparams_set=multimodel_small \
	  --data_dir=$(DATA) --output_dir=$(TRAIN_RUN) --train_steps=$(TRAIN_STEPS) --mixing=temperature:2 \
	  --eval_every=3000 --eval_examples=100 --checkpoint_every=500 --final_eval_splits=,$(TRAIN_RUN))
	$(call timed,evaluate,$(BIN)/mm-evaluate --output_dir=$(TRAIN_RUN) --split=test,$(TRAIN_RUN))
	$(call timed,decode,$(call decode_demo,$(TRAIN_RUN)),$(TRAIN_RUN))
	$(BIN)/mm-report --output_dir=$(TRAIN_RUN) --report=reports/train.md \
	  --examples_dir=$(TRAIN_RUN)/decoder --timings=$(TRAIN_RUN)/timings.tsv \
	  --json=reports/train.json --notes=reports/train_notes.md --targets

# pytest exits 5 when a marker selects no test: not a failure.
# Debian's chromium and its driver, for tests/test_web.py (mm-serve's page in a real browser).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver >/dev/null; }

test: install browser
	$(BIN)/python -m pytest -q -n 2 -m "not slow" tests; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-all: install browser
	$(BIN)/python -m pytest -q -n 2 tests

# Every script under benchmarks/ but the helper modules and `make learning`'s; each prints
# `name=value` figures (ratios measured within its own run), repeated together at the end.
# mm-datagen first builds mm8_mini, or finds it built (seconds): benchmarks/datagen.py and
# input_pipeline.py read it. TensorFlow's stderr is kept apart and shown only if a script fails.
bench: install
	$(BIN)/mm-datagen --problems=mm8_mini --data_dir=$(DATA)
	@log=$$(mktemp); err=$$(mktemp); rc=$$(mktemp); start=$$(date +%s); \
	for script in benchmarks/*.py; do \
	  case $$script in benchmarks/common.py|benchmarks/peer_sizing.py|benchmarks/peer_transformer.py|benchmarks/learning.py) continue;; esac; \
	  echo "== $$script"; \
	  ( $(BIN)/python $$script 2>$$err; echo $$? >$$rc ) | tee -a $$log; \
	  if [ "$$(cat $$rc)" != 0 ]; then tail -n 20 $$err; rm -f $$log $$err $$rc; exit 1; fi; \
	done; \
	echo "== figures (make bench took $$(( $$(date +%s) - start )) s)"; \
	grep -E '^(machine: |[a-z0-9_]+=)' $$log | sort -u; rm -f $$log $$err $$rc

# After `make train`: its figures against the targets, specialists trained alone on as many of
# their own batches, and a keras-hub Transformer of equal parameter count trained on
# translate_ende_bible for the specialist's CPU seconds (benchmarks/learning.py; about an hour on 2 cores).
learning: install
	$(BIN)/python benchmarks/learning.py --joint_run=$(TRAIN_RUN) --peer

# The paper's Tables 2-4 in miniature (reports/paper_tables.md + PNGs). SMOKE=1: a handful of
# steps of a cut-down model to check the pipeline. REPRO_STEPS (per problem, default 300),
# REPRO_SEEDS (0,1) and REPRO_JOBS (1) override the defaults.
reproduce: install
	$(BIN)/mm-datagen --problems=mm8_mini --data_dir=$(DATA)
	$(BIN)/python -m t2t_multimodel.bin.reproduce --data_dir=$(DATA) --out_dir=$(or $(OUT),reports) \
	  $(if $(filter-out 0,$(SMOKE)),--smoke) $(if $(REPRO_STEPS),--steps_per_problem=$(REPRO_STEPS)) \
	  $(if $(REPRO_SEEDS),--seeds=$(REPRO_SEEDS)) $(if $(REPRO_JOBS),--jobs=$(REPRO_JOBS))

clean:
	rm -rf $(VENV) build *.egg-info
