"""The REST API over a real catalog and ledger: sign-in, roles, every route's 401/403, job flow."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rerate.bootstrap import App
from rerate.domain.roles import MATRIX, Permission, Role
from rerate.entrypoints.api.app import create_app
from rerate.services import audit_log, users
from rerate.services.ingest import ingest
from tests.factories import write_xdrs

PASSWORD = "correct horse battery"
ROWS = [
    ("o1", "2026-10-10T10:00:00Z", "45", "1", "4930", "acc1", "gw1"),
    ("o2", "2026-10-20T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1"),
    ("o3", "2026-10-20T11:00:00Z", "30", "1", "4420794600", "acc2", "gw1"),
    ("f1", "2026-10-20T12:00:00Z", "30", "1", "4420794600", "stranger", "gw1"),
]


@pytest.fixture
def service(world: App, tmp_path: Path) -> Iterator[tuple[TestClient, App]]:
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    for role in Role:
        users.add_user(world, role.value, role.value, PASSWORD)
    with TestClient(create_app(world, poll_seconds=0.05)) as client:
        yield client, world


def _auth(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/token", data={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _finished(client: TestClient, headers: dict[str, str], job_id: int) -> dict[str, Any]:
    for _ in range(400):
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["finished"]:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def _api_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every route of the API, as the OpenAPI document lists it."""
    paths = client.get("/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, methods in paths.items() for method in methods]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_health_and_openapi_need_no_sign_in_and_every_other_route_does(
    service: tuple[TestClient, App],
) -> None:
    client, _ = service
    assert client.get("/api/health").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert "/api/rerate" in spec["paths"] and "/api/jobs" in spec["paths"]
    routes = _api_routes(client)
    assert len(routes) >= 30
    for method, path in routes:
        if path in ("/api/health", "/api/token"):
            continue
        response = client.request(method, _concrete(path))
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.headers["www-authenticate"] == "Bearer"
    bad = client.request("GET", "/api/jobs", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401


def test_a_wrong_password_is_refused_and_audited(service: tuple[TestClient, App]) -> None:
    client, app = service
    response = client.post("/api/token", data={"username": "admin", "password": "wrong password!"})
    assert response.status_code == 401
    assert client.post("/api/token", data={"username": "nobody", "password": PASSWORD}).status_code == 401
    failed = [e for e in audit_log.entries(app) if e["action"] == "access.sign_in_failed"]
    assert {e["actor"] for e in failed} == {"admin", "nobody"}


#: Every route that changes something, with a body valid for it, and the permission it needs.
CHANGES: list[tuple[str, str, dict[str, Any], tuple[Permission, ...]]] = [
    ("POST", "/api/rerate", {"json": {"customer": "Acme"}}, (Permission.RERATE,)),
    (
        "POST",
        "/api/rerate",
        {"json": {"customer": "Acme", "allow_closed": True}},
        (Permission.RERATE, Permission.CLOSED_PERIODS),
    ),
    ("POST", "/api/rerate", {"json": {"customer": "Acme", "dry_run": True}}, (Permission.DRY_RUN,)),
    ("POST", "/api/reprocess", {"json": {"customer": "Acme"}}, (Permission.REPROCESS,)),
    ("POST", "/api/collections/1/rollback", {"json": {}}, (Permission.ROLLBACK,)),
    (
        "POST",
        "/api/periods/close",
        {"json": {"customer": "Acme", "period": "2026-10"}},
        (Permission.CLOSE_PERIOD,),
    ),
    ("POST", "/api/users", {"json": {"name": "zed", "role": "readonly"}}, (Permission.USERS,)),
    ("GET", "/api/users", {}, (Permission.USERS,)),
    ("POST", "/api/ingest", {"files": {"file": ("y.csv", b"source_id\n")}}, (Permission.INGEST,)),
    (
        "POST",
        "/api/deliveries/schedules",
        {"json": {"customer": "Acme", "email": ["noc@example.com"], "cadence": "daily"}},
        (Permission.DELIVERIES,),
    ),
    ("DELETE", "/api/deliveries/schedules/1", {}, (Permission.DELIVERIES,)),
    ("POST", "/api/deliveries/run", {}, (Permission.DELIVERIES,)),
    ("POST", "/api/deliveries/1/resend", {}, (Permission.DELIVERIES,)),
    (
        "POST",
        "/api/tariffs/retail/import",
        {"files": {"file": ("d.csv", b"prefix,price\n44,1\n")}},
        (Permission.TARIFFS,),
    ),
    ("POST", "/api/jobs/1/revert", {}, (Permission.REVERT,)),
    ("POST", "/api/jobs/1/cancel", {}, (Permission.REVERT,)),
]


@pytest.mark.parametrize("role", list(Role))
def test_each_role_is_refused_exactly_what_the_matrix_denies_and_refusals_are_audited(
    service: tuple[TestClient, App], role: Role
) -> None:
    client, app = service
    headers = _auth(client, role.value)
    refused = 0
    for method, path, body, needs in CHANGES:
        response = client.request(method, path, headers=headers, **body)
        missing = [p for p in needs if p not in MATRIX[role]]
        if not missing:
            assert response.status_code != 403, (role, method, path, response.text)
        else:
            assert response.status_code == 403, (role, method, path, response.status_code, response.text)
            assert f"'{missing[0].value}'" in response.json()["detail"]
            refused += 1
    denied = [e for e in audit_log.entries(app, limit=1000) if e["action"] == "access.denied"]
    assert len(denied) == refused and all(e["actor"] == role.value for e in denied)
    assert client.get("/api/jobs", headers=headers).status_code == 200  # every role views


def test_a_rerating_previewed_applied_and_reverted_through_the_api(service: tuple[TestClient, App]) -> None:
    client, app = service
    support, noc, finance = (_auth(client, r) for r in ("support", "noc", "finance"))
    body = {"customer": ["Acme"], "tariff": "cost", "ghost_percent": "10", "dry_run": True}
    queued = client.post("/api/rerate", headers=support, json=body)
    assert queued.status_code == 202 and queued.json()["state"] == "scheduled"
    preview = _finished(client, support, queued.json()["job_id"])
    assert preview["state"] == "planned" and preview["dry_run"] and preview["actor"] == "support"
    assert preview["in_scope"] == 3 and preview["changed"] == 3
    assert preview["progress"]["days_done"] == preview["progress"]["days_total"] == 2
    assert preview["report"]["by_day"] and preview["report"]["sample"]
    delta = Decimal(preview["totals"]["delta"]["EUR"]["amount"])
    diff = client.get(preview["diff_url"], headers=support)
    assert diff.status_code == 200 and diff.text.count("\n") == 4  # header + 3 changed XDRs
    assert client.post(f"/api/jobs/{preview['job_id']}/apply", headers=support).status_code == 403
    applied = client.post(f"/api/jobs/{preview['job_id']}/apply", headers=noc)
    assert applied.status_code == 202
    done = _finished(client, noc, applied.json()["job_id"])
    assert done["state"] == "applied" and done["actor"] == "noc"
    twice = client.post(f"/api/jobs/{preview['job_id']}/apply", headers=noc)  # a double click, say
    assert twice.status_code == 409 and f"as job {done['job_id']}" in twice.json()["detail"]
    shown = client.get(f"/api/jobs/{preview['job_id']}", headers=noc).json()
    assert shown["parameters"]["applied_as"] == done["job_id"]
    assert Decimal(done["totals"]["delta"]["EUR"]["amount"]) == delta
    summary = client.get("/api/reports/summary", headers=support, params={"period": "2026-10"}).json()
    acme = next(line for line in summary["lines"] if line["customer"] == "Acme")
    before = Decimal(preview["totals"]["before"]["EUR"]["amount"])
    assert Decimal(acme["revenue"]) == before + delta
    reverted = client.post(f"/api/jobs/{done['job_id']}/revert", headers=finance)
    assert reverted.status_code == 200 and reverted.json()["kind"] == "revert"
    assert client.get(f"/api/jobs/{done['job_id']}", headers=finance).json()["state"] == "reverted"
    summary = client.get("/api/reports/summary", headers=support, params={"period": "2026-10"}).json()
    assert Decimal(next(x for x in summary["lines"] if x["customer"] == "Acme")["revenue"]) == before
    actions = {(e["actor"], e["action"]) for e in audit_log.entries(app, limit=1000)}
    assert {("support", "job.queue"), ("noc", "job.applied"), ("finance", "job.revert")} <= actions


def test_bad_input_gets_a_clear_error_not_a_traceback(service: tuple[TestClient, App]) -> None:
    client, _ = service
    admin = _auth(client, "admin")
    empty = client.post("/api/rerate", headers=admin, json={})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"].lower()
    unknown = client.post("/api/rerate", headers=admin, json={"customer": "Nobody"})
    assert unknown.status_code == 404 and "Nobody" in unknown.json()["detail"]
    for ghost in ("NaN", "Infinity", "1e999999", "ten"):
        refused = client.post("/api/rerate", headers=admin, json={"customer": "Acme", "ghost_percent": ghost})
        assert refused.status_code == 422 and "ghost_percent" in refused.json()["detail"], ghost
    too_much = client.post("/api/rerate", headers=admin, json={"customer": "Acme", "ghost_percent": "1001"})
    assert too_much.status_code == 422
    assert too_much.json()["detail"].startswith("'ghost_percent' must be between 0 and "), too_much.text
    assert client.get("/api/audit", headers=admin, params={"limit": -5}).status_code == 422
    nameless = client.post("/api/ingest", headers=admin, files={"file": ("..", b"x")})
    assert nameless.status_code == 422 and "name" in nameless.json()["detail"]
    long_name = client.post("/api/token", data={"username": "x" * 300, "password": "wrong password"})
    assert long_name.status_code == 401  # audited with the name cut to the column's size
    typo = client.post("/api/rerate", headers=admin, json={"customers": "Acme"})
    assert typo.status_code == 422  # unknown fields are refused, not ignored
    assert client.get("/api/jobs/999", headers=admin).status_code == 404
    period = client.post("/api/periods/close", headers=admin, json={"customer": "Acme", "period": "26-10"})
    assert period.status_code == 422


def test_the_read_routes_answer_every_role(service: tuple[TestClient, App]) -> None:
    client, _ = service
    readonly = _auth(client, "readonly")
    collections = client.get("/api/collections", headers=readonly).json()
    assert collections[0]["loaded"] == 4 and collections[0]["state"] == "loaded"
    assert client.get("/api/collections/1", headers=readonly).json()["file"] == "x.csv"
    xdrs = client.get("/api/xdrs", headers=readonly, params={"status": "failed"}).json()
    assert [x["source_id"] for x in xdrs] == ["f1"]
    export = client.get("/api/xdrs/export", headers=readonly, params={"customer": "Acme"})
    assert export.status_code == 200 and export.text.count("\n") == 4
    csv = client.get("/api/reports/summary", headers=readonly, params={"period": "2026-10", "format": "csv"})
    assert csv.text.splitlines()[0].startswith("section,customer,currency,calls")
    assert client.get("/api/reports/failures", headers=readonly).json()[0]["reason"]
    assert client.get("/api/reports/by-day", headers=readonly).json()[0]["day"] == "2026-10-10"
    for path in (
        "/api/reports/negative-margins",
        "/api/reports/jumps",
        "/api/periods",
        "/api/periods/adjustments",
        "/api/deliveries/log",
        "/api/deliveries/schedules",
    ):
        assert client.get(path, headers=readonly).status_code == 200, path
    assert {t["name"] for t in client.get("/api/tariffs", headers=readonly).json()} == {"retail", "cost"}
    retail = client.get("/api/tariffs/retail", headers=readonly, params={"at": "2026-10-20T00:00:00Z"}).json()
    assert {r["prefix"] for r in retail["rates"]} >= {"44", "49"}
    parties = client.get("/api/parties", headers=readonly).json()
    assert parties["accounts"][0] == {"identifier": "acc1", "customer": "Acme", "own_tariff": None}
    assert parties["customers"][0] == {
        "name": "Acme",
        "currency": "EUR",
        "timezone": "UTC",
        "tariff": "retail",
        "accounts": 2,
    }
    assert client.get("/api/me", headers=readonly).json()["permissions"] == ["view"]
    assert client.get("/api/roles", headers=readonly).json()["support"] == ["dry_run", "view"]
    assert client.get("/api/audit", headers=readonly).status_code == 200


def test_a_web_session_needs_the_csrf_token_for_changes(service: tuple[TestClient, App]) -> None:
    client, _ = service
    signed_in = client.post("/login", data={"username": "noc", "password": PASSWORD}, follow_redirects=False)
    assert signed_in.status_code == 303 and "rerate_session" in signed_in.cookies
    assert client.get("/api/jobs").status_code == 200  # reads with the cookie alone
    refused = client.post("/api/rerate", json={"customer": "Acme", "dry_run": True})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    page = client.get("/rerate").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    accepted = client.post(
        "/api/rerate", json={"customer": "Acme", "dry_run": True}, headers={"X-CSRF-Token": token.group(1)}
    )
    assert accepted.status_code == 202


def test_ingest_and_rollback_through_the_api(service: tuple[TestClient, App], tmp_path: Path) -> None:
    client, _ = service
    noc = _auth(client, "noc")
    rows = [("n1", "2026-11-02T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1")]
    data = write_xdrs(tmp_path / "november.csv", rows).read_bytes()
    queued = client.post("/api/ingest", headers=noc, files={"file": ("november.csv", data)})
    assert queued.status_code == 202 and queued.json()["kind"] == "ingest"  # loaded by the job runner
    loaded = _finished(client, noc, queued.json()["job_id"])
    assert loaded["state"] == "done", loaded["error"]
    assert loaded["changed"] == 1 and loaded["progress"]["xdrs_read"] == 1
    (report,) = loaded["totals"]["collections"]
    assert report["loaded"] == 1 and report["file"].endswith("/november.csv")
    collection = report["collection_id"]
    again = client.post("/api/ingest", headers=noc, files={"file": ("november.csv", data)})
    assert (
        _finished(client, noc, again.json()["job_id"])["totals"]["collections"][0]["state"]
        == "already_loaded"
    )
    broken = client.post(
        "/api/ingest", headers=noc, files={"file": ("broken.csv", b"not,an,xdr,file\n1,2\n")}
    )
    failed = _finished(client, noc, broken.json()["job_id"])
    assert failed["state"] == "failed" and failed["error"]  # a bad file: a clear error on the job
    reverting = client.post(f"/api/jobs/{loaded['job_id']}/revert", headers=noc)
    assert reverting.status_code == 409  # an ingest is undone by rolling back its collection
    preview = client.post(f"/api/collections/{collection}/rollback", headers=noc, json={"dry_run": True})
    assert _finished(client, noc, preview.json()["job_id"])["changed"] == 1
    job = client.post(f"/api/collections/{collection}/rollback", headers=noc, json={})
    assert _finished(client, noc, job.json()["job_id"])["state"] == "applied"
    assert client.get(f"/api/collections/{collection}", headers=noc).json()["state"] == "rolled back"


def test_scheduled_corrections_and_user_admin(service: tuple[TestClient, App]) -> None:
    client, app = service
    admin = _auth(client, "admin")
    later = client.post(
        "/api/rerate",
        headers=admin,
        json={"customer": "Acme", "tariff": "cost", "at": "2099-01-01T00:00:00Z"},
    )
    assert later.status_code == 202 and later.json()["scheduled_for"].startswith("2099-01-01")
    unset = client.post("/api/rerate", headers=admin, json={"customer": "Acme", "tariff": "cost", "at": ""})
    assert unset.status_code == 422 and "not an ISO time" in unset.json()["detail"]
    cancelled = client.post(f"/api/jobs/{later.json()['job_id']}/cancel", headers=admin)
    assert cancelled.json()["state"] == "cancelled"
    created = client.post("/api/users", headers=admin, json={"name": "nora", "role": "noc"})
    assert created.status_code == 201 and len(created.json()["password"]) >= 10
    nora = client.post("/api/token", data={"username": "nora", "password": created.json()["password"]})
    assert nora.json()["role"] == "noc"
    duplicate = client.post("/api/users", headers=admin, json={"name": "nora", "role": "noc"})
    assert duplicate.status_code == 409
    bad_role = client.post("/api/users", headers=admin, json={"name": "x", "role": "boss"})
    assert bad_role.status_code == 422 and "roles:" in bad_role.json()["detail"]
    assert {u["name"] for u in client.get("/api/users", headers=admin).json()} >= {"nora", "admin"}
    nora_token = {"Authorization": f"Bearer {nora.json()['access_token']}"}
    assert client.get("/api/me", headers=nora_token).json()["name"] == "nora"
    users.set_password(app, "nora", "another long password")
    assert client.get("/api/me", headers=nora_token).status_code == 401  # a new password ends her tokens


def test_reverting_into_a_period_closed_since_needs_allow_closed(service: tuple[TestClient, App]) -> None:
    client, _app = service
    noc, finance = (_auth(client, r) for r in ("noc", "finance"))
    queued = client.post("/api/rerate", headers=noc, json={"customer": ["Acme"], "tariff": "cost"})
    done = _finished(client, noc, queued.json()["job_id"])
    assert done["state"] == "applied" and "periods" not in done["totals"]  # kept, not listed
    closing = client.post(
        "/api/periods/close", headers=finance, json={"customer": "Acme", "period": "2026-10"}
    )
    assert closing.status_code == 201
    refused = client.post(f"/api/jobs/{done['job_id']}/revert", headers=finance)
    assert refused.status_code == 409 and "Acme 2026-10" in refused.json()["detail"]
    denied = client.post(f"/api/jobs/{done['job_id']}/revert", headers=noc, params={"allow_closed": True})
    assert denied.status_code == 403  # undoing an invoiced period takes the closed-periods right
    reverted = client.post(
        f"/api/jobs/{done['job_id']}/revert", headers=finance, params={"allow_closed": True}
    )
    assert reverted.status_code == 200
    lines = client.get("/api/periods/adjustments", headers=finance).json()
    assert any(line["job_id"] == reverted.json()["job_id"] for line in lines)


def test_hostile_or_odd_input_gets_a_clear_refusal_never_a_500(service: tuple[TestClient, App]) -> None:
    client, world = service
    readonly = _auth(client, "readonly")
    huge = 10**20  # beyond the catalog's 64-bit integers
    for method, path in (("GET", f"/api/jobs/{huge}"), ("POST", f"/api/jobs/{huge}/revert")):
        response = client.request(method, path, headers=_auth(client, "admin"))
        assert (response.status_code, response.json()["detail"]) == (
            422,
            "a number in the request is out of range",
        )
    for period in ("0000-01", "9999-12"):
        response = client.get(f"/api/reports/summary?period={period}", headers=readonly)
        assert response.status_code == 422 and "between 1970 and 9998" in response.json()["detail"]
    long_name = "x" * 250 + ".csv"
    response = client.post(
        "/api/ingest", headers=_auth(client, "admin"), files={"file": (long_name, b"a,b\n")}
    )
    assert response.status_code == 422 and "name is too long" in response.json()["detail"]

    # A role that applies no correction is refused before the job is looked up, and audited.
    denied_before = len([e for e in audit_log.entries(world) if e["action"] == "access.denied"])
    for job_id in (1, 999):
        assert client.post(f"/api/jobs/{job_id}/apply", headers=readonly).status_code == 403
    denied = [e for e in audit_log.entries(world) if e["action"] == "access.denied"]
    assert len(denied) == denied_before + 2

    # Sessions: a non-ASCII CSRF token is a wrong token; a sign-in posted from another site is refused.
    signed_in = client.post(
        "/login", data={"username": "finance", "password": PASSWORD}, follow_redirects=False
    )
    assert signed_in.status_code == 303
    form = {"csrf": "é", "customer": "Acme", "period": "2026-09"}
    assert client.post("/periods/close", data=form, follow_redirects=False).status_code == 403
    assert (
        client.post(
            "/api/periods/close", json=form, headers={"X-CSRF-Token": "é".encode("latin-1")}
        ).status_code
        == 403
    )
    forged = client.post(
        "/login",
        data={"username": "finance", "password": PASSWORD},
        headers={"Origin": "https://elsewhere.example"},
        follow_redirects=False,
    )
    assert forged.status_code == 403


def test_uploads_are_refused_before_their_body_is_read(world: App, tmp_path: Path) -> None:
    for role in (Role.READONLY, Role.ADMIN):
        users.add_user(world, role.value, role.value, PASSWORD)
    small = replace(world, settings=world.settings.model_copy(update={"max_upload_mb": 1}))
    read: list[int] = []

    def body(size: int) -> Iterator[bytes]:
        read.append(size)  # the server asked for the body
        yield b"x" * size

    with TestClient(create_app(small, run_jobs=False)) as client:
        readonly, admin = _auth(client, "readonly"), _auth(client, "admin")
        multipart = {"Content-Type": "multipart/form-data; boundary=b"}
        for headers, path, status in (
            ({}, "/api/ingest", 401),
            (readonly, "/api/ingest", 403),
            (readonly, "/api/tariffs/retail/import", 403),
            ({**admin, "Content-Length": str(2 * 1024 * 1024)}, "/api/ingest", 413),
        ):
            response = client.post(path, headers={**multipart, **headers}, content=body(10))
            assert response.status_code == status, (path, response.text)
        assert read == []
        assert [e["action"] for e in audit_log.entries(world)[:2]] == ["access.denied"] * 2
        # Without a declared length (chunked), the body is stopped once it passes the limit.
        chunked = client.post(
            "/api/ingest",
            headers={**multipart, **admin},
            content=iter([b"--b\r\n", b"x" * (1024 * 1024), b"y" * (1024 * 1024)]),
        )
        assert chunked.status_code == 413 and "RERATE_MAX_UPLOAD_MB" in chunked.json()["detail"]
        # The web UI's upload forms are gated the same way (a session, then the role).
        client.post("/login", data={"username": "readonly", "password": PASSWORD}, follow_redirects=False)
        for path in ("/collections/ingest", "/import"):
            web = client.post(path, headers=multipart, content=body(10), follow_redirects=False)
            assert web.status_code == 403, (path, web.text)
        assert read == []
        unknown = client.post("/api/ingest?template=nope", headers=admin, files={"file": ("x.csv", b"a,b\n")})
        assert unknown.status_code == 404 and "no XDR template 'nope'" in unknown.json()["detail"]
        assert list((world.home / "uploads").iterdir()) == []  # the refused upload is not kept


def test_odd_queries_get_the_refusal_the_command_line_gives(service: tuple[TestClient, App]) -> None:
    client, world = service
    admin = _auth(client, "admin")
    for path, message in (
        ("/api/jobs?state=bogus", "unknown job state bogus"),
        ("/api/xdrs?limit=-5", "greater than or equal to 1"),
        # The refusal names the request's fields, not the command line's options.
        ("/api/reports/failures?from=2026-11-01T00:00:00Z&to=2026-10-01T00:00:00Z", "after 'from'"),
    ):
        response = client.get(path, headers=admin)
        assert response.status_code == 422 and message in response.text, (path, response.text)
    for body, message in (
        ({"customer": "Acme", "ghost_percent": "0.0000001", "dry_run": True}, "at most 4 decimals"),
        (
            {"customer": "Acme", "ghost_percent": "1e-999999999999999999", "dry_run": True},
            "at most 4 decimals",
        ),
        ({"prefix": "４４", "ghost_percent": "10", "dry_run": True}, "prefixes must be digits"),
    ):
        response = client.post("/api/rerate", headers=admin, json=body)
        assert response.status_code == 422 and message in response.json()["detail"], response.text
    for name, currency, message in (
        ("weird", "X'Y", "ISO 4217"),
        ("w" * 201, "EUR", "1 to 200 characters"),
    ):
        response = client.post(
            f"/api/tariffs/{name}/import",
            headers=admin,
            files={"file": ("deck.csv", b"prefix,price\n44,0.01\n")},
            data={"currency": currency, "preview": "false"},
        )
        assert response.status_code == 422 and message in response.json()["detail"], response.text
    readonly = _auth(client, "readonly")
    assert client.post("/api/tariffs/" + "T" * 400 + "/import", headers=readonly).status_code == 403
    (refused, *_) = audit_log.entries(world)
    assert refused["action"] == "access.denied" and len(refused["subject"]) == 300


def test_the_job_page_offers_apply_only_when_applying_can_succeed(service: tuple[TestClient, App]) -> None:
    client, _ = service
    noc, finance = (_auth(client, r) for r in ("noc", "finance"))
    client.post("/login", data={"username": "noc", "password": PASSWORD}, follow_redirects=False)
    preview = client.post(
        "/api/rerate", headers=noc, json={"customer": "Acme", "tariff": "cost", "dry_run": True}
    )
    planned = _finished(client, noc, preview.json()["job_id"])
    assert 'id="apply"' in client.get(f"/jobs/{planned['job_id']}").text
    applied = client.post(f"/api/jobs/{planned['job_id']}/apply", headers=noc).json()
    page = client.get(f"/jobs/{planned['job_id']}").text
    assert 'id="apply"' not in page and f'href="/jobs/{applied["job_id"]}"' in page
    _finished(client, noc, applied["job_id"])
    closing = client.post(
        "/api/periods/close", headers=finance, json={"customer": "Acme", "period": "2026-10"}
    )
    assert closing.status_code == 201
    later = client.post(
        "/api/rerate", headers=noc, json={"customer": "Acme", "tariff": "retail", "dry_run": True}
    )
    closed = _finished(client, noc, later.json()["job_id"])
    page = client.get(f"/jobs/{closed['job_id']}").text
    assert 'id="closed-refused"' in page and 'id="apply"' not in page


def test_web_pages_for_odd_names_expired_sessions_and_long_lists(
    service: tuple[TestClient, App], tmp_path: Path
) -> None:
    from rerate.services import parties, tariffs
    from tests.factories import COST, write_rates

    client, app = service
    tariffs.import_rates(
        app, "Carrier/Premium", write_rates(tmp_path / "p.csv", COST), currency="EUR", allow_past=True
    )
    parties.add_customer(app, "Acme, Inc.", tariff="retail")
    parties.add_account(app, "inc1", customer="Acme, Inc.")
    # A form posted after the session ended: back to the page it was on once signed in, never a 405.
    elsewhere = client.post(
        "/login",
        data={"username": "noc", "password": PASSWORD, "next": "/\\evil.example"},
        follow_redirects=False,
    )
    assert elsewhere.headers["location"] == "/"  # never off the site
    client.cookies.clear()
    expired = client.post(
        "/jobs/1/apply",
        data={"csrf": "x"},
        headers={"Referer": "http://testserver/xdrs?number=4420"},
        follow_redirects=False,
    )
    assert expired.status_code == 303 and expired.headers["location"] == "/login?next=/xdrs%3Fnumber%3D4420"
    client.post("/login", data={"username": "noc", "password": PASSWORD}, follow_redirects=False)
    page = client.get("/tariffs/Carrier/Premium")
    assert page.status_code == 200 and "Tariff Carrier/Premium" in page.text
    assert page.headers["cache-control"] == "no-store"
    shown = client.get("/api/tariffs/Carrier/Premium", headers=_auth(client, "noc")).json()
    assert shown["name"] == "Carrier/Premium", shown
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and "<html" in missing.text.lower()  # the error page, not JSON
    narrowed = client.get("/tariffs/retail", params={"prefix": "44"}).text
    assert "<td>44</td>" in narrowed and "<td>49</td>" not in narrowed
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/rerate").text)
    assert csrf is not None
    preview = client.post(
        "/rerate",
        data={"csrf": csrf.group(1), "customer": "Acme, Inc.", "tariff": "cost"},
        follow_redirects=False,
    )
    assert preview.status_code == 303, preview.text  # one customer with a comma in its name, not two
    search = client.get("/xdrs", params={"number": "4930"}).text
    assert "number=4930" in search  # the export link keeps the number filter
    exported = client.get("/api/xdrs/export", params={"number": "4930"})
    assert exported.status_code == 200 and exported.text.count("\n") == 2  # header + o1


def test_the_import_wizards_countries_box_keeps_one_line_per_prefix_across_reviews() -> None:
    from rerate.entrypoints.api.web import _countries_text

    first = _countries_text("", ["999123", "99913"])
    assert first == "999123=\n99913=\n"
    again = _countries_text(first.replace("99913=", "99913=XX"), ["999123"])  # one assigned, reviewed again
    assert again == "999123=\n99913=XX\n"


def test_forms_a_role_cannot_submit_say_so_instead_of_offering_a_button(
    service: tuple[TestClient, App],
) -> None:
    client, _ = service
    client.post("/login", data={"username": "readonly", "password": PASSWORD}, follow_redirects=False)
    for page in ("/rerate", "/import"):
        assert 'id="not-allowed"' in client.get(page).text, page
    client.post("/login", data={"username": "admin", "password": PASSWORD}, follow_redirects=False)
    for page in ("/rerate", "/import"):
        assert 'id="not-allowed"' not in client.get(page).text, page
