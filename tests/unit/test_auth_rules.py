"""The pure rules behind login and authorization: path grants, safe redirects, throttle waits."""
from __future__ import annotations

import pytest

from app.auth import rbac
from app.auth.principal import Principal
from app.auth.throttle import throttle_delay
from app.web.auth import safe_next


@pytest.mark.parametrize("grant, path, expected", [
    ("/login", "/login", True),
    ("/login", "/login/", True),
    ("/login", "/logins", False),
    ("/login", "/login/x", False),
    ("/", "/", True),
    ("/", "/x", False),
    ("/pipeline_core/**", "/pipeline_core/pipelines/abc/edit", True),
    ("/pipeline_core/**", "/pipeline_core", True),
    ("/pipeline_core/**", "/pipeline_core/", True),
    ("/pipeline_core/**", "/pipeline_corex", False),
    ("/pipeline_core/**", "/pipeline_corex/y", False),
    ("/pipeline_core/**", "/api/pipeline_core/pipelines", False),
    ("/pipeline_core/%", "/pipeline_core/pipelines", True),
    ("/pipeline_core%", "/pipeline_core/pipelines", True),
    ("/pipeline_core%", "/pipeline_corex", False),
    ("/**", "/anything/at/all", True),
    ("/t/{id}", "/t/abc", True),
    ("/t/{id}", "/t", False),
    ("/t/{id}", "/t/abc/edit", False),
    ("/t/{id}/edit", "/t/abc/edit", True),
    ("/t/{id}/edit", "/t/abc/delete", False),
    ("/t/{id}/edit", "/t//edit", False),
    ("/t/{id}/**", "/t/abc/edit", True),
    ("/t/abc", "/t/abd", False),
    ("", "/", False),
    ("login", "/login", False),
])
def test_path_matching(grant, path, expected):
    assert rbac.path_matches(grant, path) is expected
    assert Principal("u", "u", frozenset(), (grant,)).allows(path) is expected


@pytest.mark.parametrize("grant, path, template, expected", [
    ("/t/{id}", "/t/abc", "/t/{id}", True),
    ("/t/{id}", "/t/new", "/t/new", False),   # a record grant does not open the create page
    ("/t/new", "/t/new", "/t/new", True),
    ("/t/abc", "/t/abc", "/t/{id}", True),     # a grant for one record
    ("/t/**", "/t/new", "/t/new", True),
])
def test_path_matching_with_route_template(grant, path, template, expected):
    assert rbac.path_matches(grant, path, template) is expected


def test_default_deny_without_grants():
    nobody = Principal(None, None, frozenset({"any", "anonymous"}), ())
    assert not nobody.allows("/") and not nobody.allows("/login") and nobody.is_anonymous


@pytest.mark.parametrize("value, expected", [
    ("/pipeline_core/pipelines?page=2", "/pipeline_core/pipelines?page=2"),
    ("/", "/"), ("", "/"), (None, "/"), ("//evil.example/x", "/"), ("/\\evil.example", "/"),
    ("https://evil.example/", "/"), ("javascript:alert(1)", "/"), ("pipeline_core", "/"), ("/a\nb", "/"),
])
def test_safe_next(value, expected):
    assert safe_next(value) == expected


@pytest.mark.parametrize("failures, seconds", [
    (0, 0), (4, 0), (5, 1), (6, 2), (7, 4), (14, 512), (15, 900), (1000, 900),
])
def test_throttle_delay_doubles_to_a_cap(failures, seconds):
    assert throttle_delay(failures) == seconds
