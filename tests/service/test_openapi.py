"""The OpenAPI document describes the bodies the server really sends."""

from __future__ import annotations

from typing import Any

from support.jupiter_app import ADMIN


def _responses(document: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (path, method, status, answer)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, answer in operation.get("responses", {}).items()
    ]


async def test_every_documented_422_is_the_error_envelope(api):
    """FastAPI's own HTTPValidationError never reaches a client, so it is not documented."""
    _, client = api
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    unprocessable = [r for r in _responses(document) if r[2] == "422"]
    assert len(unprocessable) >= 10
    for path, method, _, answer in unprocessable:
        schema = answer["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (method, path)
    envelope = schemas["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    assert envelope["properties"]["error"] == {"$ref": "#/components/schemas/ErrorBody"}


async def test_a_real_422_has_the_documented_fields(api):
    _, client = api
    document = (await client.get("/openapi.json")).json()
    required = set(document["components"]["schemas"]["ErrorBody"]["required"])
    response = await client.get("/api/recent-errors", params={"limit": 0}, headers=ADMIN)
    assert response.status_code == 422
    assert required <= set(response.json()["error"])


async def test_405_allow_names_every_method_of_the_path(api):
    """GET and DELETE /api/scans/{id} are two routes; Allow lists both, not the first one."""
    _, client = api
    response = await client.request("OPTIONS", "/api/scans/1", headers=ADMIN)
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
    assert response.json()["error"]["type"] == "method_not_allowed"
    assert "DELETE, GET" in response.json()["error"]["message"]


def test_the_enums_in_the_schema_are_the_servers_own():
    """The query enums are written out for the schema; they must stay what the code accepts."""
    from typing import get_args

    from jupiter.intel._items import SEVERITIES
    from jupiter.scans import FORMATS
    from jupiter.service.routers.scans import ScanFormat
    from jupiter.service.routers.threats import Severity

    assert get_args(ScanFormat) == FORMATS
    assert get_args(Severity) == SEVERITIES


async def test_the_documented_chat_limit_is_this_servers_setting(settings_factory):
    from support.jupiter_app import running_app

    async with running_app(settings_factory(chat_max_message_chars=123)) as (_app, client):
        document = (await client.get("/openapi.json")).json()
    message = document["components"]["schemas"]["ChatRequest"]["properties"]["message"]
    assert message["maxLength"] == 123
    assert message["pattern"] == r"[^\s\x00-\x1f]"


async def test_findings_paths_are_openapi_templates(api):
    """Starlette's ``{finding_id:int}`` never reaches the document."""
    _, client = api
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/api/findings/{finding_id}" in paths
    assert not [path for path in paths if ":" in path]
    refresh = await client.get("/api/findings/refresh-kev")
    assert refresh.status_code == 405
    assert refresh.headers["allow"] == "POST"
