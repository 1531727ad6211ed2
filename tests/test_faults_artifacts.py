"""Artifact files that go bad on disk, and a disk that fills up or vanishes during training.

A cold process refusing a tampered file is in test_compat_api.py
(test_a_tampered_artifact_is_refused_and_marked_broken) and test_fast_path.py (ONNX file);
here the process has already loaded the version when its file changes.
"""

from __future__ import annotations

import errno
import json
import os

import pytest

from classifier import artifacts
from classifier.models import MLModel, ModelVersion
from core.hashing import sha256_file
from tests.support.data import ADELIE, GENTOO
from tests.support.models import register_result
from training.models import TrainingRun
from training.start import training_run_start

pytestmark = pytest.mark.django_db


def classify(client, name, body=ADELIE):
    return client.post(f"/classify/{name}", data=json.dumps(body), content_type="application/json")


@pytest.fixture
def knn_two_versions_and_another_model(trained_results):
    register_result("knn", trained_results["knn"])
    second = register_result("knn", trained_results["knn"])
    register_result("logisticregression", trained_results["logisticregression"])
    return second


def truncate(path, other):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_one_byte_keeping_size_and_mtime(path, other):
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def substitute_another_valid_model(path, other):
    path.write_bytes(other.read_bytes())


@pytest.mark.parametrize("damage", [truncate, flip_one_byte_keeping_size_and_mtime, substitute_another_valid_model])
@pytest.mark.parametrize("file_name", ["model.joblib", "model.onnx"])
def test_a_file_damaged_under_a_serving_process_is_refused_other_models_serve_and_rollback_recovers(
    client, staff_client, artifacts_dir, knn_two_versions_and_another_model, damage, file_name
):
    v2 = knn_two_versions_and_another_model
    assert classify(client, "knn")["X-Model-Version"] == "2"  # loaded and cached in this process
    target = artifacts_dir / "registry" / "knn" / "v2" / file_name
    other = artifacts_dir / "registry" / "logisticregression" / "v1" / file_name
    damage(target, other)

    refused = classify(client, "knn")
    assert refused.status_code == 409, refused.content
    assert refused.json()["code"] == "model_unavailable"
    assert f"registry/knn/v2/{file_name} does not match its registry hash" in refused.json()["detail"]
    v2.refresh_from_db()
    assert v2.status == "broken" and "does not match its registry hash" in v2.broken_reason
    listed = {m["name"]: m for m in client.get("/models").json()["available_models"]}
    assert listed["knn"]["status"] == "broken" and "registry hash" in listed["knn"]["error"]

    assert classify(client, "logisticregression", GENTOO).json()["species_name"] == "Gentoo"

    again = staff_client.post("/api/v1/models/knn/versions/2/activate", {}, format="json")
    assert again.status_code == 409
    rollback = staff_client.post("/api/v1/models/knn/versions/1/activate", {"reason": "v2 damaged"}, format="json")
    assert rollback.status_code == 200, rollback.content
    recovered = classify(client, "knn")
    assert recovered.status_code == 200
    assert recovered["X-Model-Version"] == "1" and recovered.json()["species_name"] == "Adelie"


def test_touching_a_file_without_changing_it_keeps_it_serving(client, artifacts_dir, knn_model):
    assert classify(client, "knn").status_code == 200
    os.utime(artifacts_dir / knn_model.artifact_path)
    assert classify(client, "knn").status_code == 200
    knn_model.refresh_from_db()
    assert knn_model.status == "active"


def test_a_disk_that_fills_up_while_registering_fails_the_run_and_keeps_the_active_version(
    client, knn_model, artifacts_dir, monkeypatch
):
    real_write = artifacts.write_atomic
    writes = []

    def fill_up_after_the_first_file(path, data):
        writes.append(path)
        if len(writes) > 1:  # the model file is written, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    monkeypatch.setattr(artifacts, "write_atomic", fill_up_after_the_first_file)
    run = training_run_start(algorithm="knn", params={"n_neighbors": 3}, activation="force", in_process=True)

    assert run.status == TrainingRun.Status.FAILED
    assert "could not write the model files: No space left on device" in run.error
    assert "PENGUIN_ARTIFACTS_DIR" in run.error and str(artifacts_dir) not in run.error
    assert list(ModelVersion.objects.values_list("number", flat=True)) == [1]
    assert MLModel.objects.get(name="knn").active_version_id == knn_model.pk
    assert classify(client, "knn")["X-Model-Version"] == "1"

    monkeypatch.setattr(artifacts, "write_atomic", real_write)  # space freed
    retried = training_run_start(algorithm="knn", params={"n_neighbors": 3}, activation="force", in_process=True)
    assert retried.status == TrainingRun.Status.SUCCEEDED, retried.error
    v2 = retried.version
    assert sha256_file(artifacts_dir / v2.artifact_path) == v2.sha256
    assert classify(client, "knn")["X-Model-Version"] == "2"


def test_an_artifacts_folder_that_is_not_a_folder_is_503_fails_training_and_keeps_the_active_version(
    client, knn_model, artifacts_dir, settings, tmp_path
):
    # Root ignores permission bits, so a read-only folder is made by a file in its way.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    settings.PENGUIN_ARTIFACTS_DIR = blocker / "artifacts"

    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["failed"] == ["artifacts"]
    unavailable = classify(client, "knn")
    assert unavailable.status_code == 503, unavailable.content
    assert unavailable.json()["code"] == "storage_unavailable"
    assert str(blocker) not in unavailable.content.decode()
    run = training_run_start(algorithm="knn", activation="force", in_process=True)
    assert run.status == TrainingRun.Status.FAILED
    assert "could not write the model files: Not a directory" in run.error

    settings.PENGUIN_ARTIFACTS_DIR = artifacts_dir
    assert list(ModelVersion.objects.values_list("number", flat=True)) == [1]
    knn_model.refresh_from_db()
    assert knn_model.status == "active"
    assert classify(client, "knn")["X-Model-Version"] == "1"


@pytest.mark.parametrize("file_name", ["model.joblib", "model.onnx"])
def test_a_damaged_file_restored_byte_for_byte_serves_again_at_the_next_load_and_is_recorded(
    client, artifacts_dir, knn_model, file_name, caplog
):
    target = artifacts_dir / "registry" / "knn" / "v1" / file_name
    original = target.read_bytes()
    assert classify(client, "knn").status_code == 200
    flip_one_byte_keeping_size_and_mtime(target, None)
    assert classify(client, "knn").status_code == 409
    knn_model.refresh_from_db()
    assert knn_model.status == "broken"

    target.write_bytes(original)  # restored from a backup, say; nobody runs a sync
    with caplog.at_level("WARNING"):
        answer = classify(client, "knn")
    assert answer.status_code == 200, answer.content
    assert answer.json()["species_name"] == "Adelie"
    knn_model.refresh_from_db()
    assert knn_model.status == "active" and knn_model.broken_reason == ""
    listed = {m["name"]: m for m in client.get("/models").json()["available_models"]}
    assert listed["knn"]["status"] == "ready"
    restored = [r.getMessage() for r in caplog.records if "restored" in r.getMessage()]
    assert restored and "match" in restored[0], [r.getMessage() for r in caplog.records]


def test_a_broken_file_still_damaged_stays_refused(client, artifacts_dir, knn_model):
    target = artifacts_dir / "registry" / "knn" / "v1" / "model.joblib"
    assert classify(client, "knn").status_code == 200
    truncate(target, None)
    assert classify(client, "knn").status_code == 409
    target.write_bytes(target.read_bytes() + b"x")  # changed again, still not the file
    assert classify(client, "knn").status_code == 409
    knn_model.refresh_from_db()
    assert knn_model.status == "broken"
