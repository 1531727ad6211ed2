"""Reconciling the registry with the artifacts folder (sync_models and the serving refresh)."""

from __future__ import annotations

import io
import pickle

import pytest
from django.core.management import call_command

from classifier.models import ModelActivation, ModelVersion
from classifier.services.sync import registry_sync
from tests.support.data import ADELIE

pytestmark = pytest.mark.django_db


def drop(artifacts_dir, file_name: str, obj) -> None:
    folder = artifacts_dir / "models"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file_name).write_bytes(pickle.dumps(obj))


def test_sync_models_reports_what_it_added_and_registers_a_discovered_version(artifacts_dir, trained_results):
    drop(artifacts_dir, "forest_model.pkl", trained_results["randomforest"].pipeline)
    out = io.StringIO()
    call_command("sync_models", stdout=out)
    assert "added: forest v1" in out.getvalue()
    version = ModelVersion.objects.get(model__name="forest")
    assert (version.source, version.status, version.broken_reason) == ("discovered", "active", "")
    assert version.classes == ["Adelie", "Chinstrap", "Gentoo"]
    again = io.StringIO()
    call_command("sync_models", stdout=again)
    assert "0 added, 0 removed, 0 broken, 1 unchanged" in again.getvalue()


def test_replacing_a_dropped_file_makes_a_new_version(artifacts_dir, trained_results):
    drop(artifacts_dir, "m_model.pkl", trained_results["knn"].pipeline)
    registry_sync()
    drop(artifacts_dir, "m_model.pkl", trained_results["svm"].pipeline)
    report = registry_sync()
    assert report.added == ["m v2"]
    versions = {v.number: v for v in ModelVersion.objects.filter(model__name="m")}
    assert versions[2].model.active_version_id == versions[2].pk
    assert "replaced" in versions[1].broken_reason


def test_a_deleted_file_is_withdrawn_and_restored_when_it_comes_back(artifacts_dir, trained_results, client):
    drop(artifacts_dir, "m_model.pkl", trained_results["knn"].pipeline)
    registry_sync()
    (artifacts_dir / "models" / "m_model.pkl").unlink()
    assert registry_sync().removed == ["m v1"]
    assert client.post("/classify/m", ADELIE, content_type="application/json").status_code == 404

    drop(artifacts_dir, "m_model.pkl", trained_results["knn"].pipeline)
    assert registry_sync().restored == ["m v1"]
    assert client.post("/classify/m", ADELIE, content_type="application/json").status_code == 200
    reasons = list(ModelActivation.objects.filter(model__name="m").values_list("reason", flat=True))
    assert any("deleted" in reason for reason in reasons) and any("reappeared" in reason for reason in reasons)


def test_a_trained_version_whose_file_vanished_is_marked_broken(artifacts_dir, knn_model, client):
    (artifacts_dir / knn_model.artifact_path).unlink()
    assert registry_sync().broken == ["knn v1"]
    listed = client.get("/models").json()["available_models"]
    assert listed[0]["status"] == "broken" and "missing" in listed[0]["error"]


def test_files_with_names_the_registry_cannot_use_are_ignored(artifacts_dir, trained_results):
    drop(artifacts_dir, "Bad Name_model.pkl", trained_results["knn"].pipeline)
    drop(artifacts_dir, "notes.txt", "hello")
    report = registry_sync()
    assert report.ignored == ["Bad Name_model.pkl"]
    assert not ModelVersion.objects.exists()


def test_a_pickle_with_named_features_is_served_in_its_own_column_order(artifacts_dir, client):
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from core.datasets import dataset_load
    from tests.support.data import DATA

    dataset = dataset_load(DATA)
    frame = dataset.frame.assign(
        bill_ratio=dataset.frame.bill_length_mm / dataset.frame.bill_depth_mm,
    )[["bill_ratio", "flipper_length_mm", "bill_depth_mm"]]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        pd.DataFrame(frame), dataset.frame["species"]
    )
    drop(artifacts_dir, "named_model.pkl", pipeline)
    response = client.post("/classify/named", ADELIE, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["species_name"] == "Adelie"


def test_a_trained_version_whose_file_comes_back_intact_serves_again(artifacts_dir, knn_model, client):
    path = artifacts_dir / knn_model.artifact_path
    saved = path.read_bytes()
    path.unlink()
    registry_sync()
    path.write_bytes(saved[:-1] + b"\x00")  # a different file never revives the version
    assert registry_sync().restored == []
    path.write_bytes(saved)
    assert registry_sync().restored == ["knn v1"]
    response = client.post("/classify/knn", ADELIE, content_type="application/json")
    assert response.status_code == 200
