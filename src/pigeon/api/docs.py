"""The OpenAPI document and a self-contained HTML reference rendered from it.

Litestar generates the document from the route handlers. Request bodies are decoded by our own
strict decoder (``schemas.decode_body``), so each such handler names its body Struct in
``opt["request_body"]`` and ``openapi_document`` adds it, with msgspec's JSON Schema, which is
what OpenAPI 3.1 speaks.

The HTML page is server-rendered with inline CSS and no script, so ``/docs`` works on a machine
with no internet access (Litestar's bundled UIs load their JavaScript from a CDN).
"""

from __future__ import annotations

import html
import re
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.enums import OpenAPIMediaType
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.routes import HTTPRoute

from pigeon.api.problems import PROBLEM_MEDIA_TYPE, PROBLEMS, TYPE_PREFIX

REF_PREFIX = "#/components/schemas/"
_CACHE_KEY = "pigeon_openapi_document"


def openapi_document(app: Litestar) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app`` as a JSON-ready dict (built once per app)."""
    cached: dict[str, Any] | None = app.state.get(_CACHE_KEY)
    if cached is not None:
        return cached
    document = app.openapi_schema.to_schema()
    bodies: list[tuple[str, str, type[msgspec.Struct]]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            body = handler.opt.get("request_body")
            if body is not None:
                bodies.extend(
                    (route.path_format, method.lower(), body) for method in handler.http_methods
                )
    if bodies:
        refs, components = msgspec.json.schema_components(
            [body for _, _, body in bodies], ref_template=REF_PREFIX + "{name}"
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in components.items():
            schemas.setdefault(name, schema)
        for (path, method, _), ref in zip(bodies, refs, strict=True):
            operation = document["paths"][path][method]
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref}},
            }
    app.state[_CACHE_KEY] = document
    return document


class DocsPlugin(OpenAPIRenderPlugin):
    """Serves the offline HTML reference."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The HTML page for the app's OpenAPI document."""
        return render_docs(openapi_document(request.app)).encode("utf-8")


class SchemaPlugin(OpenAPIRenderPlugin):
    """Serves the OpenAPI document, request bodies included."""

    def __init__(self, *, path: str) -> None:
        super().__init__(path=path, media_type=OpenAPIMediaType.OPENAPI_JSON)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The app's OpenAPI document as JSON."""
        return msgspec.json.encode(openapi_document(request.app))


# --- HTML -----------------------------------------------------------------------------------

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2430;background:#fafbfc}
main{max-width:960px;margin:0 auto;padding:1.5rem}
h1{margin-bottom:0}h2{border-bottom:1px solid #d8dde3;padding-bottom:.25rem;margin-top:2.5rem}
section.op{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:.5rem 1rem;
margin:1rem 0}
.method{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}
.get{color:#1a7f37}.post{color:#0b5cad}.delete{color:#b42318}.put,.patch{color:#9a6700}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f3f5f7;padding:.5rem;overflow:auto}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #d8dde3;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}nav a{margin-right:1rem}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _json(value: object) -> str:
    return _e(msgspec.json.encode(value).decode("utf-8"))


_CODE = re.compile(r"`([^`]+)`")


def _text(text: object) -> str:
    """Escaped prose, with `backticks` shown as code."""
    return _CODE.sub(r"<code>\1</code>", _e(text))


def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)


def _type_of(schema: dict[str, Any]) -> str:
    """A short HTML rendering of a JSON Schema's type."""
    if "$ref" in schema:
        name = str(schema["$ref"]).removeprefix(REF_PREFIX)
        return f'<a href="#schema-{_anchor(name)}">{_e(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type_of(option) for option in schema[key])
    if "enum" in schema:
        return " | ".join(f"<code>{_json(value)}</code>" for value in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if isinstance(kind, list):
        return " | ".join(_e(k) for k in kind)
    if kind is None:
        return "any"
    fmt = schema.get("format")
    return _e(f"{kind} ({fmt})" if fmt else kind)


def _properties(schema: dict[str, Any]) -> str:
    props: dict[str, Any] = schema.get("properties", {})
    if not props:
        return f"<p>{_type_of(schema)}</p>"
    required = set(schema.get("required", []))
    rows = []
    for name, prop in props.items():
        notes = [_text(prop.get("description", ""))]
        if "default" in prop:
            notes.append(f"Default: <code>{_json(prop['default'])}</code>.")
        notes.extend(
            f"{key}: {_e(prop[key])}." for key in ("maxLength", "minimum", "maximum") if key in prop
        )
        rows.append(
            f"<tr><td><code>{_e(name)}</code></td><td>{_type_of(prop)}</td>"
            f"<td>{'yes' if name in required else 'no'}</td><td>{' '.join(notes)}</td></tr>"
        )
    return (
        "<table><tr><th>field</th><th>type</th><th>required</th><th>notes</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [
        f'<section class="op" id="{_anchor(op.get("operationId", method + path))}">',
        f'<h3><span class="method {_e(method)}">{_e(method)}</span> <code>{_e(path)}</code>'
        f" &mdash; {_e(op.get('summary', ''))}</h3>",
    ]
    if op.get("description"):
        parts.append(f"<p>{_text(op['description'])}</p>")
    if op.get("security"):
        parts.append("<p>Needs <code>Authorization: Bearer &lt;API key&gt;</code>.</p>")
    params = op.get("parameters", [])
    if params:
        cells = "".join(
            f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p['in'])}</td>"
            f"<td>{_type_of(p.get('schema', {}))}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td>"
            f"<td>{_text(p.get('description', ''))}</td></tr>"
            for p in params
        )
        parts.append(
            "<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th>"
            f"<th>required</th><th>description</th></tr>{cells}</table>"
        )
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        parts.append(f"<h4>Request body</h4><p>{_type_of(body['schema'])}</p>")
    rows = []
    for status, response in op.get("responses", {}).items():
        content = response.get("content", {})
        shapes = ", ".join(
            f"{_type_of(media.get('schema', {}))} <code>{_e(kind)}</code>"
            for kind, media in content.items()
        )
        rows.append(
            f"<tr><td>{_e(status)}</td><td>{_text(response.get('description', ''))}</td>"
            f"<td>{shapes}</td></tr>"
        )
    parts.append(
        "<h4>Responses</h4><table><tr><th>status</th><th>description</th><th>body</th></tr>"
        + "".join(rows)
        + "</table></section>"
    )
    return "".join(parts)


def render_docs(document: dict[str, Any]) -> str:
    """A self-contained HTML page documenting ``document`` and every problem code."""
    info = document.get("info", {})
    title = f"{info.get('title', 'API')} {info.get('version', '')}".strip()
    sections: dict[str, list[str]] = {}
    for path, item in document.get("paths", {}).items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                tag = (op.get("tags") or ["Other"])[0]
                sections.setdefault(tag, []).append(_operation(path, method, op))
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f"<p>{_text(info.get('description', ''))}</p>",
        '<nav><a href="/openapi.json">OpenAPI document (JSON)</a>',
        *(f'<a href="#tag-{_anchor(tag)}">{_e(tag)}</a>' for tag in sections),
        '<a href="#schemas">Schemas</a><a href="#problems">Errors</a></nav>',
    ]
    for tag, operations in sections.items():
        out.append(f'<h2 id="tag-{_anchor(tag)}">{_e(tag)}</h2>')
        out.extend(operations)
    out.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        out.append(
            f'<section class="op" id="schema-{_anchor(name)}"><h3>{_e(name)}</h3>'
            f"<p>{_text(schema.get('description', ''))}</p>{_properties(schema)}</section>"
        )
    out.append(
        '<h2 id="problems">Errors</h2>'
        f"<p>Errors are RFC 9457 <code>{PROBLEM_MEDIA_TYPE}</code> objects: "
        "<code>type</code>, <code>title</code>, <code>status</code>, <code>detail</code>, "
        "a stable <code>code</code> and, when one field is at fault, <code>field</code>. "
        f"<code>type</code> is <code>{_e(TYPE_PREFIX)}&lt;code&gt;</code>, a link to the "
        "entry below.</p><table><tr><th>code</th><th>status</th><th>meaning</th></tr>"
    )
    out.extend(
        f'<tr id="problem-{_anchor(code)}"><td><code>{_e(code)}</code></td>'
        f"<td>{kind.status}</td><td>{_text(kind.description)}</td></tr>"
        for code, kind in PROBLEMS.items()
    )
    out.append("</table></main></body></html>")
    return "\n".join(out)
