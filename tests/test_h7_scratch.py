import json, pytest
from .conftest import ADELIE
pytestmark = pytest.mark.django_db
def test_scratch(client, knn_model, settings, tmp_path, artifacts_dir):
    from django.test import Client
    c = Client(raise_request_exception=False)
    assert c.post("/classify/knn", data=ADELIE, content_type="application/json").status_code == 200
    settings.PENGUIN_ARTIFACTS_DIR = tmp_path / "typo"
    r = c.post("/classify/knn", data=ADELIE, content_type="application/json")
    print(r.status_code, r.content)
    settings.PENGUIN_ARTIFACTS_DIR = artifacts_dir
    r = c.post("/classify/knn", data=ADELIE, content_type="application/json")
    print(r.status_code, r.content)
    knn_model.refresh_from_db(); print(knn_model.broken_reason)
    from django.core.management import call_command
    call_command("sync_models")
    knn_model.refresh_from_db(); print(knn_model.broken_reason)
