"""The run record: node times from nipype's status callback, stages, save and reload."""

from __future__ import annotations

from types import SimpleNamespace

from infant_tissue.reports.runtime import RunRecord, RunRecorder, load_run_record, runtime_path


def _node(hierarchy: str, name: str) -> SimpleNamespace:
    return SimpleNamespace(_hierarchy=hierarchy, fullname=f"{hierarchy}.{name}")


def test_stage_times_span_parallel_nodes(monkeypatch):
    record = RunRecord(subject="01", session="A")
    recorder = RunRecorder(record)
    clock = iter([0.0, 1.0, 3.0, 4.0, 10.0, 30.0, 31.0, 32.0])
    monkeypatch.setattr("infant_tissue.reports.runtime.time.time", lambda: next(clock))
    a = _node("session_x.preproc_wf", "n4_t1w")
    b = _node("session_x.preproc_wf", "n4_t2w")
    seg = _node("session_x.segmentation_wf", "segment")
    out = _node("session_x.outputs_wf", "ds_dseg")
    recorder.status_callback(a, "start")  # 0
    recorder.status_callback(b, "start")  # 1
    recorder.status_callback(a, "end")  # 3
    recorder.status_callback(b, "end")  # 4: preprocessing spans 0..4, not 3 + 3
    recorder.status_callback(seg, "start")  # 10
    recorder.status_callback(seg, "end")  # 30
    recorder.status_callback(out, "start")  # 31
    recorder.status_callback(out, "exception")  # 32
    assert record.stage_times() == {"preprocessing": 4.0, "segmentation": 20.0, "outputs": 1.0}
    assert record.nodes["session_x.outputs_wf.ds_dseg"]["status"] == "exception"


def test_save_and_load(tmp_path):
    record = RunRecord(subject="01", session=None, warnings=["w"], mask_method="template")
    record.finished = record.started + 12.5
    path = record.save(tmp_path)
    assert path == runtime_path(tmp_path, "01", None) == tmp_path / "sub-01/log/sub-01_runtime.json"
    again = load_run_record(tmp_path, "01", None)
    assert again.duration == 12.5 and again.warnings == ["w"] and again.mask_method == "template"
    assert "infant-tissue" in again.versions and "torch" in again.versions


def test_unreadable_record_is_none(tmp_path):
    path = runtime_path(tmp_path, "01", "A")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert load_run_record(tmp_path, "01", "A") is None
    assert load_run_record(tmp_path, "02", None) is None


def test_stage_time_is_the_union_of_node_intervals():
    record = RunRecord(subject="01", session=None)
    record.nodes = {
        "a": {"stage": "outputs", "start": 5.0, "end": 6.0},  # early writer (the T1w)
        "b": {"stage": "outputs", "start": 31.0, "end": 32.5},  # after the segmentation
        "c": {"stage": "outputs", "start": 31.5, "end": 32.0},  # in parallel with b
        "d": {"stage": "segmentation", "start": 7.0, "end": None},  # never finished: ignored
    }
    assert record.stage_times() == {"outputs": 2.5}
