"""The catalogue of problem codes and the problem+json responses built from it."""

from __future__ import annotations

import json

from pigeon.api.problems import PROBLEM_MEDIA_TYPE, PROBLEMS, TYPE_PREFIX, problem


def test_problem_response_is_rfc9457() -> None:
    """A problem carries type, title, status, detail, code and field, as problem+json."""
    response = problem(422, "invalid_recipient", "Not a number.", field="to")
    body = json.loads(response.content)
    assert response.status_code == 422
    assert response.media_type == PROBLEM_MEDIA_TYPE
    assert body == {
        "type": TYPE_PREFIX + "invalid_recipient",
        "title": "Invalid recipient",
        "status": 422,
        "detail": "Not a number.",
        "code": "invalid_recipient",
        "field": "to",
    }


def test_field_is_omitted_when_no_field_is_at_fault() -> None:
    """Without a field the key is absent rather than null."""
    body = json.loads(problem(404, "not_found", "No route.").content)
    assert "field" not in body


def test_undocumented_code_falls_back_to_the_status_phrase() -> None:
    """A code missing from the catalogue still gets a sensible title."""
    body = json.loads(problem(429, "rate_limited", "Slow down.").content)
    assert body["title"] == "Too Many Requests"


def test_catalogue_statuses_are_errors() -> None:
    """Every documented code maps to a 4xx or 5xx status with a title and description."""
    for code, kind in PROBLEMS.items():
        assert code.islower()
        assert 400 <= kind.status <= 599
        assert kind.title
        assert kind.description
