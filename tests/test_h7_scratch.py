import pytest
pytestmark = pytest.mark.django_db
def test_scratch(user):
    from rest_framework.test import APIClient
    c = APIClient(); c.force_authenticate(user)
    r = c.get("/api/v1/predictions?created_after=2000-01-01T00%3A00%3A00Z&created_before=2000-01-01T00%3A00%3A00Z&cursor=&endpoint=classify&has_feedback=true&model=&page_size=1&species=Gentoo&true_species=Gentoo")
    print(r.status_code, r.content)
    r = c.get("/api/v1/predictions?has_feedback=true")
    print(r.status_code, r.content)
    r = c.get("/api/v1/predictions?has_feedback=true&page_size=1")
    print(r.status_code, r.content)
