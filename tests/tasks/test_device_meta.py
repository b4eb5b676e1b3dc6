"""results.json meta.device: where a job evaluated (device, its name, backend, precision) and, for train
jobs, where Lightning trained (accelerator, device, devices, precision as the trainer resolved them)."""

from __future__ import annotations

import json
from pathlib import Path

from embedlab.devices import device_name


def test_evaluate_job_records_its_device(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    evaluate(make_cfg("model=tiny_bert", "data=lee", "logger=none", "encode=reference", task="evaluate"))
    device = json.loads((tmp_path / "results.json").read_text())["meta"]["device"]
    cpu = {"device": "cpu", "name": device_name("cpu")}
    assert device == {"evaluate": cpu | {"backend": "reference", "precision": "fp32"}}


def test_train_job_records_training_and_evaluation_devices(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import train

    run = ("model=tiny_bert", "data=lee", "debug=fast", "logger=none", "save_model=false")
    _, objects = train(make_cfg(*run, "trainer.precision=bf16-mixed"))
    device = json.loads((tmp_path / "results.json").read_text())["meta"]["device"]
    cpu = {"device": "cpu", "name": device_name("cpu")}
    assert device["evaluate"] == cpu | {"backend": "fast", "precision": "bf16"}
    assert device["train"] == cpu | {"accelerator": "cpu", "devices": 1, "precision": "bf16-mixed"}
    assert str(objects["model"].device) == "cpu"  # evaluated where encode.device (here: the trainer's) says
