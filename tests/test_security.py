"""Who may do what: every endpoint of the URL conf, for anonymous, user and staff callers.

The policy table below must name every route and method the URL conf serves, so a new
endpoint fails these tests until someone decides who may call it. Writes need staff,
except classifying (open by contract). Token authentication and the session CSRF check of
one endpoint are in test_api_auth.py; here CSRF is checked on every staff write and on the
admin. `check --deploy` under production settings is in test_production_settings.py.
"""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from classifier.models import MLModel, ModelVersion
from core.hashing import sha256_file
from penguinsite.logs import JsonFormatter
from tests.support.data import ADELIE
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

OPEN, LOGIN, STAFF = "open", "login", "staff"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Open by design (classify is open and rate-limited): the only open writes.
OPEN_WRITES = {
    ("compat-classify", "POST"),
    ("api:model-predict", "POST"),
    ("v2:infer", "POST"),
    ("v2:version-infer", "POST"),
}

POLICY: dict[tuple[str, str], str] = {
    ("compat-models", "GET"): OPEN,
    ("compat-classify", "POST"): OPEN,
    ("api:registry-sync", "POST"): STAFF,
    ("api:model-list", "GET"): OPEN,
    ("api:model-detail", "GET"): OPEN,
    ("api:model-predict", "POST"): OPEN,
    ("api:model-monitoring", "GET"): LOGIN,
    ("api:model-version-list", "GET"): OPEN,
    ("api:model-version-detail", "GET"): OPEN,
    ("api:model-version-activate", "POST"): STAFF,
    ("api:model-challenger", "GET"): OPEN,
    ("api:model-challenger", "PUT"): STAFF,
    ("api:model-challenger", "DELETE"): STAFF,
    ("api:model-activations", "GET"): OPEN,
    ("api:prediction-list", "GET"): LOGIN,
    ("api:prediction-detail", "GET"): LOGIN,
    ("api:prediction-feedback", "POST"): STAFF,
    ("api:training-run-list", "GET"): STAFF,
    ("api:training-run-list", "POST"): STAFF,
    ("api:training-run-detail", "GET"): STAFF,
    ("schema", "GET"): OPEN,
    ("swagger-ui", "GET"): OPEN,
    ("redoc", "GET"): OPEN,
    ("healthz", "GET"): OPEN,
    ("readyz", "GET"): OPEN,
    ("metrics", "GET"): OPEN,  # Prometheus scrapes it; counts only, no inputs or secrets
    # The Open Inference Protocol: open like classifying, for KServe/Triton clients.
    ("v2:server-metadata", "GET"): OPEN,
    ("v2:health-live", "GET"): OPEN,
    ("v2:health-ready", "GET"): OPEN,
    ("v2:model-metadata", "GET"): OPEN,
    ("v2:model-ready", "GET"): OPEN,
    ("v2:infer", "POST"): OPEN,
    ("v2:version-metadata", "GET"): OPEN,
    ("v2:version-ready", "GET"): OPEN,
    ("v2:version-infer", "POST"): OPEN,
}
# Function views cannot be introspected for their methods: declared here, and checked below.
FUNCTION_VIEW_METHODS = {"healthz": {"GET"}, "readyz": {"GET"}}
# Logging in, and logging out (harmless for someone not logged in), need no staff login.
ADMIN_PUBLIC = {"admin:login", "admin:logout"}


def walk(patterns, prefix="", namespace=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace])) or None
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield name, prefix + str(pattern.pattern), pattern.callback


def served_methods(name: str, callback) -> set[str]:
    actions = getattr(callback, "actions", None)  # a DRF viewset route
    if actions:
        # DRF adds "head" to a GET route's actions the first time it is called.
        return {method.upper() for method in actions if method not in {"head", "options"}}
    view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view is not None:
        return {m.upper() for m in view.http_method_names if m not in {"options", "head"} and hasattr(view, m)}
    return FUNCTION_VIEW_METHODS[name]


def endpoints() -> list[tuple[str, str, object]]:
    """(route name, route, view) of every non-admin route of the URL conf."""
    found = [entry for entry in walk(get_resolver().url_patterns) if not entry[1].startswith("admin/")]
    unnamed = [route for name, route, _ in found if not name]
    assert not unnamed, f"routes without a name cannot be checked: {unnamed}"
    return found


def admin_routes() -> list[tuple[str | None, str]]:
    return [(name, route) for name, route, _ in walk(get_resolver().url_patterns) if route.startswith("admin/")]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(knn_model, user, staff_user):
    """A model, a logged prediction and a training run; a client per kind of caller."""
    prediction_id = int(Client().post("/classify/knn", ADELIE, content_type="application/json")["X-Prediction-Id"])
    run = TrainingRun.objects.create(model_name="knn", algorithm="knn", data_path="x", status="failed", trigger="api")
    clients = {"anonymous": APIClient()}
    for kind, who in (("user", user), ("staff", staff_user)):
        clients[kind] = APIClient()
        clients[kind].credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=who).key}")
    kwargs = {"name": "knn", "model_name": "knn", "number": 1, "version": 1}
    return {"clients": clients, "prediction": prediction_id, "run": run.pk, "kwargs": kwargs}


def url_of(name: str, world) -> str:
    routes = {entry_name: route for entry_name, route, _ in endpoints()}
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>", lambda m: f"<{m.group(1) or m.group(2)}>", routes[name])
    values = {**world["kwargs"], "pk": world["run"] if "training-run" in name else world["prediction"]}
    return reverse(name, kwargs={key: value for key, value in values.items() if f"<{key}>" in route})


def call(client, method: str, url: str):
    body = ADELIE if method == "POST" else None
    return client.generic(method, url, json.dumps(body) if body else "", content_type="application/json")


def test_every_route_and_method_of_the_url_conf_has_a_declared_policy():
    served = {(name, method) for name, _, view in endpoints() for method in served_methods(name, view)}
    assert served - POLICY.keys() == set(), "new endpoints: declare who may call them in POLICY"
    assert POLICY.keys() - served == set(), "POLICY names endpoints the URL conf no longer serves"


def test_every_write_needs_staff_except_classifying():
    open_writes = {key for key, policy in POLICY.items() if key[1] in WRITE_METHODS and policy != STAFF}
    assert open_writes == OPEN_WRITES


def test_each_endpoint_refuses_exactly_the_callers_its_policy_excludes(world):
    problems = []
    for (name, method), policy in sorted(POLICY.items()):
        url = url_of(name, world)
        answers = {kind: call(client, method, url) for kind, client in world["clients"].items()}
        statuses = {kind: answer.status_code for kind, answer in answers.items()}
        refused = {kind for kind, status in statuses.items() if status in {401, 403}}
        expected = {OPEN: set(), LOGIN: {"anonymous"}, STAFF: {"anonymous", "user"}}[policy]
        if refused != expected or (expected and statuses["anonymous"] != 401):
            problems.append((method, url, policy, statuses))
        for kind, answer in answers.items():
            if answer.status_code == 401 and not answer["WWW-Authenticate"].startswith("Token"):
                problems.append((method, url, kind, "401 without WWW-Authenticate: Token"))
            if kind == "user" and policy == STAFF and answer.status_code != 403:
                problems.append((method, url, kind, answer.status_code))
            if answer.status_code in {401, 403} and answer.json()["code"] not in {
                "not_authenticated",
                "permission_denied",
            }:
                problems.append((method, url, kind, answer.content[:200]))
    assert not problems, problems


def test_methods_an_endpoint_does_not_serve_change_nothing_for_anyone(world):
    """PUT/PATCH/DELETE (and POST where only GET is served) never succeed, even for staff."""
    before = (ModelVersion.objects.count(), TrainingRun.objects.count())
    problems = []
    for name in sorted({name for name, _ in POLICY}):
        url = url_of(name, world)
        served = {method for (route_name, method) in POLICY if route_name == name}
        for method in sorted(WRITE_METHODS - served):
            for kind, client in world["clients"].items():
                status = call(client, method, url).status_code
                if status not in {401, 403, 405}:
                    problems.append((method, url, kind, status))
    assert not problems, problems
    assert (ModelVersion.objects.count(), TrainingRun.objects.count()) == before


# --- the admin ----------------------------------------------------------------------------------

ADMIN_KWARGS = {"object_id": "1", "content_type_id": "1", "app_label": "classifier", "url": "nope", "id": "1"}


def admin_url(route: str) -> str:
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: ADMIN_KWARGS[m.group(1)], route)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: ADMIN_KWARGS[m.group(1)], path)
    return "/" + path.replace("^", "").replace("$", "")


def test_every_admin_page_sends_anonymous_and_non_staff_users_to_the_login(user, staff_user):
    staff = Client()
    staff.force_login(staff_user)
    problems = []
    for name, route in admin_routes():
        if name in ADMIN_PUBLIC:
            continue
        url = admin_url(route)
        for who in (None, user):
            client = Client()
            if who is not None:
                client.force_login(who)
            for method in ("get", "post"):
                response = getattr(client, method)(url)
                if response.status_code != 302 or not response["Location"].startswith("/admin/login/"):
                    problems.append((method, url, who and who.username, response.status_code))
        if staff.get(url).get("Location", "").startswith("/admin/login/"):
            problems.append(("get", url, "staff", "sent to the login"))
    assert not problems, problems


def test_no_admin_form_lets_anyone_write_a_file_path(rf, django_user_model, knn_model):
    """Artifact and data paths are shown read-only; no add or change form has a path field."""
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")
    request = rf.get("/admin/")
    request.user = superuser
    for model, model_admin in admin.site._registry.items():
        obj = model.objects.first()
        for instance in (None, obj):
            if instance is None and not model_admin.has_add_permission(request):
                continue
            if instance is not None and not model_admin.has_change_permission(request, instance):
                continue
            form = model_admin.get_form(request, instance)
            editable = set(form.base_fields) - set(model_admin.get_readonly_fields(request, instance))
            paths = {field for field in editable if re.search(r"path|dir|file|folder", field)}
            assert not paths, f"{model.__name__} admin lets a user write {paths}"


def test_the_admin_refuses_posts_without_a_csrf_token(staff_user, django_user_model, trained_results):
    from tests.support.models import register_result

    v1 = register_result("knn", trained_results["knn"])
    register_result("knn", trained_results["knn"])
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    activate = f"/admin/classifier/modelversion/{v1.pk}/activate/"

    assert client.post(activate).status_code == 403
    assert v1.model.__class__.objects.get(pk=v1.model_id).active_version.number == 2

    client.get(f"/admin/classifier/modelversion/{v1.pk}/change/")
    response = client.post(activate, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert response.status_code == 302
    assert v1.model.__class__.objects.get(pk=v1.model_id).active_version.number == 1

    login = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "root", "password": "root-pass-123"})
    assert login.status_code == 403


def test_every_staff_write_by_session_needs_the_csrf_token(world, staff_user):
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="staff", password="staff-pass-123")
    before = (MLModel.objects.get(name="knn").active_version_id, TrainingRun.objects.count())
    writes = sorted(key for key, policy in POLICY.items() if policy == STAFF and key[1] in WRITE_METHODS)
    assert writes
    for name, method in writes:
        response = call(client, method, url_of(name, world))
        assert response.status_code == 403, (name, response.content)
        assert "CSRF" in response.json()["detail"]
    assert (MLModel.objects.get(name="knn").active_version_id, TrainingRun.objects.count()) == before


# --- secrets stay out of the logs ------------------------------------------------------------------


@pytest.fixture
def all_logs():
    """Everything logged at any level, formatted as in production (JSON lines with extras)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def test_passwords_and_tokens_never_reach_the_log(all_logs, world, staff_user, monkeypatch):
    password = "staff-pass-123"
    token = Token.objects.get(user=staff_user).key
    wrong_password = "not-the-password-987"
    wrong_token = "f" * 40

    Client().post("/admin/login/", {"username": "staff", "password": password})
    Client().post("/admin/login/", {"username": "staff", "password": wrong_password})
    APIClient().login(username="staff", password=password)
    for key in (token, wrong_token):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        client.post("/api/v1/registry/sync")
        client.get(f"/api/v1/training-runs?token={key}&password={password}")
        client.post("/api/v1/training-runs/", {"algorithm": "nope"}, format="json")

    import classifier.api.compat as compat

    def explode(**kwargs):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(compat, "prediction_make", explode)  # a 500 logs the request with its traceback
    crashing = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {token}")
    crashing.cookies["sessionid"] = "session-secret-123"
    assert crashing.post("/classify/knn", ADELIE, content_type="application/json").status_code == 500

    logged = all_logs.getvalue()
    assert "RuntimeError" in logged, "the capture saw the error log line"
    for secret in (password, wrong_password, token, wrong_token, "session-secret-123"):
        assert secret not in logged, f"{secret[:6]}… was logged"


# --- the pickle trust boundary ------------------------------------------------------------------


class _Marker:
    """Unpickling this writes a file: the proof that a pickle was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("where", ["absolute", "dot-dot"])
def test_a_registry_row_cannot_make_the_service_load_a_file_outside_the_artifacts_folder(
    knn_model, artifacts_dir, tmp_path, where
):
    """Someone who can write the database but not the artifacts folder gains nothing."""
    import pickle

    from classifier import artifacts

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Marker(str(marker))))
    path = str(evil) if where == "absolute" else f"registry/knn/v1/../../../../{evil.name}"
    if where == "dot-dot":
        (artifacts_dir.parent / evil.name).write_bytes(evil.read_bytes())
    ModelVersion.objects.filter(pk=knn_model.pk).update(
        artifact_path=path, sha256=sha256_file(evil), runtime="sklearn", onnx_path=""
    )

    response = Client().post("/classify/knn", ADELIE, content_type="application/json")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "model_unavailable"
    assert not marker.exists(), "the pickle was loaded"
    with pytest.raises(artifacts.ArtifactError, match="is not inside the artifacts folder"):
        artifacts.read_verified(path, sha256_file(evil))
    knn_model.refresh_from_db()
    assert knn_model.status == "broken"
