"""The offline HTML reference rendered from an OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

from pigeon.api.docs import render_docs
from pigeon.api.problems import PROBLEMS

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Pigeon", "version": "1", "description": "Send `SMS` <safely>."},
    "paths": {
        "/v1/things/{id}": {
            "get": {
                "operationId": "getThing",
                "tags": ["Things"],
                "summary": "Get a thing",
                "security": [{"apiKey": []}],
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                        },
                    }
                },
            }
        }
    },
    "components": {
        "schemas": {
            "Thing": {
                "type": "object",
                "description": "A thing.",
                "properties": {
                    "name": {"type": "string", "description": "Its <b>name</b>."},
                    "kind": {"enum": ["a", "b"], "default": "a"},
                    "tags": {
                        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]
                    },
                },
                "required": ["name"],
            }
        }
    },
}


def test_page_documents_operations_schemas_and_problem_codes() -> None:
    """Operations, their parameters, schemas and every problem code get a section."""
    page = render_docs(DOCUMENT)
    assert 'id="getThing"' in page
    assert "<code>/v1/things/{id}</code>" in page
    assert 'href="#schema-Thing"' in page
    assert 'id="schema-Thing"' in page
    assert "array of string | null" in page
    for code in PROBLEMS:
        assert f'id="problem-{code}"' in page


def test_page_escapes_text_from_the_document() -> None:
    """Text from the document is HTML-escaped; backticks become code."""
    page = render_docs(DOCUMENT)
    assert "&lt;safely&gt;" in page
    assert "<code>SMS</code>" in page
    assert "<b>name</b>" not in page


def test_page_loads_nothing_from_elsewhere() -> None:
    """The page has no script and no absolute URL: it works with no internet access."""
    page = render_docs(DOCUMENT)
    assert "<script" not in page
    assert not re.search(r"(?:https?:)?//[a-z0-9]", page, re.IGNORECASE)
