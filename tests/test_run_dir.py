"""The run directory: hparams.json and problems.json written once and checked on every rerun."""

import dataclasses
import json

import pytest

from t2t_multimodel.hparams.multimodel import multimodel_tiny
from t2t_multimodel.run import run_dir

SIGNATURE = {"name": "image_digits", "input_modality": "image", "target_modality": "class_label",
             "command": 5, "num_classes": 10}


def _record(**changes):
  record = run_dir.problems_record("image_digits", [SIGNATURE], "proportional",
                                   {"image_digits": 1.0}, 0, None, "/data")
  return {**record, **changes}


def test_prepare_writes_the_resolved_configuration(tmp_path):
  hp = multimodel_tiny()
  assert run_dir.prepare(str(tmp_path), hp, _record()) is False
  loaded_hp, record = run_dir.load_run(str(tmp_path))
  assert loaded_hp == hp
  assert record["problems"] == [SIGNATURE] and record["mixing"] == "proportional"
  assert json.loads((tmp_path / "hparams.json").read_text())["hidden_size"] == hp.hidden_size


def test_rerun_with_the_same_settings_continues(tmp_path):
  run_dir.prepare(str(tmp_path), multimodel_tiny(), _record())
  # The data dir may move and the rates may change with the data: the run is the same.
  assert run_dir.prepare(str(tmp_path), multimodel_tiny(), _record(data_dir="/elsewhere",
                                                                   rates={"image_digits": 1.0})) is True


def test_a_run_written_before_an_hparam_existed_continues_with_its_default(tmp_path):
  run_dir.prepare(str(tmp_path), multimodel_tiny(), _record())
  old = json.loads((tmp_path / "hparams.json").read_text())
  del old["moe_dispatch"]                                  # added to HParams after the run began
  (tmp_path / "hparams.json").write_text(json.dumps(old))
  assert run_dir.prepare(str(tmp_path), multimodel_tiny(), _record()) is True
  with pytest.raises(run_dir.RunDirMismatchError, match='moe_dispatch: "auto" -> "capacity"'):
    run_dir.prepare(str(tmp_path), dataclasses.replace(multimodel_tiny(), moe_dispatch="capacity"), _record())


@pytest.mark.parametrize("hp_changes, record_changes, named", [
    ({"learning_rate": 0.05}, {}, "learning_rate: 0.0018 -> 0.05"),
    ({}, {"problems": [dict(SIGNATURE, name="other")]}, 'problems: ["image_digits"] -> ["other"]'),
    ({}, {"mixing": "uniform"}, 'mixing: "proportional" -> "uniform"'),
    ({}, {"seed": 3}, "seed: 0 -> 3"),
    ({}, {"vocab_sha256": "abc"}, 'vocab_sha256: null -> "abc"'),
])
def test_rerun_with_other_settings_is_an_error(tmp_path, hp_changes, record_changes, named):
  run_dir.prepare(str(tmp_path), multimodel_tiny(), _record())
  hp = dataclasses.replace(multimodel_tiny(), **hp_changes)
  with pytest.raises(run_dir.RunDirMismatchError, match="--overwrite") as raised:
    run_dir.prepare(str(tmp_path), hp, _record(**record_changes))
  assert named in str(raised.value)


def test_overwrite_deletes_the_run_files_only(tmp_path):
  run_dir.prepare(str(tmp_path), multimodel_tiny(), _record())
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / "checkpoints" / "ckpt-1.index").write_text("x")
  (tmp_path / "metrics.jsonl").write_text("{}\n")
  (tmp_path / "notes.txt").write_text("mine")
  hp = dataclasses.replace(multimodel_tiny(), learning_rate=0.05)
  assert run_dir.prepare(str(tmp_path), hp, _record(), overwrite=True) is False
  assert sorted(p.name for p in tmp_path.iterdir()) == ["hparams.json", "notes.txt", "problems.json"]
  assert run_dir.load_run(str(tmp_path))[0].learning_rate == 0.05


def test_a_non_chief_only_checks(tmp_path):
  assert run_dir.prepare(str(tmp_path / "run"), multimodel_tiny(), _record(), write=False) is False
  assert not (tmp_path / "run").exists()


def test_load_run_of_an_empty_dir_is_a_one_line_error(tmp_path):
  with pytest.raises(run_dir.RunDirError, match="No training run in .*hparams.json is missing"):
    run_dir.load_run(str(tmp_path))


def test_jsonl_append_read_and_truncate(tmp_path):
  path = str(tmp_path / "metrics.jsonl")
  assert run_dir.read_jsonl(path) == []
  run_dir.append_jsonl(path, [{"step": 1, "a": 1.0}, {"step": 2}, {"step": 3}])
  with open(path, "a") as f:
    f.write('{"step": 4, "torn')  # a line cut by a kill
  assert [r["step"] for r in run_dir.read_jsonl(path)] == [1, 2, 3]
  run_dir.truncate_jsonl(path, 2)
  assert run_dir.read_jsonl(path) == [{"step": 1, "a": 1.0}, {"step": 2}]


def test_diff_names_each_changed_key():
  assert run_dir.diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == ["b: 2 -> 3", "c: null -> 4"]
