"""Every route of the app, in one table: the router and the OpenAPI document are built
from it, so they cannot drift apart.

``public`` routes need no session; every other route answers 401 (API) or redirects to
``/login`` (pages) without one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel

from datagems.job.listing import MAX_PAGE_SIZE, PAGE_SIZE, SORTS, STATUSES
from datagems.web import (
    api_admin,
    api_auth,
    api_drafts,
    api_events,
    api_jobs,
    api_lifecycle,
    api_misc,
    api_quality,
    api_records,
    api_report,
    api_user,
    openapi,
    pages,
)
from datagems.web.bodies import (
    AccountCreateBody,
    AccountDeleteBody,
    ConfirmBody,
    ExtendBody,
    LoginBody,
    ModelsBody,
    PasswordResetBody,
    PreviewBody,
    ProfileBody,
    ProfileDeleteBody,
    RegisterBody,
    ResendBody,
    ResetBody,
    SchemaBody,
)
from datagems.web.keys import ROUTE_SPECS

STATIC_DIR = Path(__file__).parent / "static"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    type: str = "string"
    enum: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    public: bool = False
    body: type[BaseModel] | None = None
    query: tuple[Param, ...] = ()
    kind: str = "json"  # json | html | sse | file | text
    status: int = 200
    errors: tuple[int, ...] = field(default=())


JOB_ID_ERRORS = (401, 404)
FORMAT = Param("format", "export format", enum=("json", "jsonl", "csv", "parquet"))
PARTIAL = Param("partial", "true: export what is done of a running or cancelled job")
# the export's row set (datagems.job.rows): the same rows in every format
EXPORT_META = Param("meta", "comma list of index, status, error: columns _index, _status, _error")
EXPORT_FAILED = Param(
    "failed",
    "include (default: a row per index, empty when failed) or exclude",
    enum=("include", "exclude"),
)
EXPORT_FLATTEN = Param("flatten", "true: nested fields as columns a.b in CSV and Parquet")
EXPORT_VARS = Param("vars", "true: each record with its variables' values (_vars, _seedRow)")

ROUTES: tuple[Route, ...] = (
    # health and auth
    Route("GET", "/api/health", api_misc.health, "Liveness of this replica", "meta", public=True),
    Route(
        "POST",
        "/api/auth/login",
        api_auth.login,
        "Sign in; sets the session cookie",
        "auth",
        public=True,
        body=LoginBody,
        errors=(400, 401, 429),
    ),
    Route(
        "POST",
        "/api/auth/token",
        api_auth.token,
        "Sign in for an API client: {token, tokenType, expiresAt, username, role}; no cookie",
        "auth",
        public=True,
        body=LoginBody,
        errors=(400, 401, 429),
    ),
    Route(
        "POST",
        "/api/auth/logout",
        api_auth.logout,
        "Sign out: this session (cookie or token) is refused by every replica from now on",
        "auth",
    ),
    Route("GET", "/api/auth/me", api_auth.me, "The signed-in user", "auth", errors=(401,)),
    Route(
        "POST",
        "/api/auth/register",
        api_auth.register,
        "Create an account; the password is e-mailed",
        "auth",
        public=True,
        body=RegisterBody,
        status=201,
        errors=(400, 409, 429, 502, 503),
    ),
    Route(
        "POST",
        "/api/auth/register/resend",
        api_auth.resend,
        "Forgot your password: e-mail the owner a one-hour link to choose a new one "
        "(nothing changes until it is used)",
        "auth",
        public=True,
        body=ResendBody,
        status=202,
        errors=(400, 429, 502, 503),
    ),
    Route(
        "POST",
        "/api/auth/reset",
        api_auth.reset_password,
        "Set a new password with the mailed link's token; ends every session, signs in",
        "auth",
        public=True,
        body=ResetBody,
        errors=(400,),
    ),
    # tasks
    Route(
        "POST",
        "/api/tasks/schema",
        api_drafts.draft_schema,
        "Draft a JSON Schema for one record (one LLM call, up to 3 attempts)",
        "tasks",
        body=SchemaBody,
        errors=(400, 401, 502),
    ),
    Route(
        "POST",
        "/api/tasks/preview",
        api_drafts.preview,
        "Three sample records with the drafted or edited schema (not part of any job)",
        "tasks",
        body=PreviewBody,
        errors=(400, 401, 429, 502),
    ),
    Route(
        "POST",
        "/api/tasks/confirm",
        api_drafts.confirm,
        "Confirm a draft: start the job (per-user limits: 429 with Retry-After)",
        "tasks",
        body=ConfirmBody,
        errors=(400, 401, 429),
    ),
    Route(
        "POST",
        "/api/seeds",
        api_quality.upload_seed,
        "Upload a seed file (CSV or JSONL, raw body): its rows go to R1FS; {cid, rows, columns}",
        "tasks",
        query=(Param("filename", "the file's name: .csv or .jsonl tells its kind"),),
        errors=(400, 401, 413),
    ),
    Route(
        "GET",
        "/api/tasks",
        api_jobs.list_tasks,
        "One page of the caller's jobs, newest first: {jobs, nextCursor}",
        "tasks",
        query=(
            Param("limit", f"page size (1-{MAX_PAGE_SIZE}, default {PAGE_SIZE})", "integer"),
            Param("cursor", "nextCursor of the previous page: the page after it"),
            Param("status", f"only these statuses, comma-separated ({', '.join(STATUSES)})"),
            Param("q", "only jobs whose title contains this text (any case)"),
            Param("sort", "newest (default), oldest or title", enum=SORTS),
            Param("all", "admins: true lists every user's jobs"),
            Param("owner", "admins: list this user's jobs"),
        ),
        errors=(400, 401),
    ),
    Route(
        "GET",
        "/api/tasks/{id}",
        api_jobs.get_task,
        "One job: base, peer states, details",
        "tasks",
        errors=JOB_ID_ERRORS,
    ),
    Route(
        "POST",
        "/api/tasks/{id}/cancel",
        api_jobs.cancel_task,
        "Ask every peer to stop the job",
        "tasks",
        status=202,
        errors=JOB_ID_ERRORS,
    ),
    Route(
        "POST",
        "/api/tasks/{id}/retry-failed",
        api_jobs.retry_failed,
        "Call again, once, every record of a finished job that failed: {jobId, retryRound}",
        "tasks",
        status=202,
        errors=(401, 404, 409, 429),
    ),
    Route(
        "POST",
        "/api/tasks/{id}/extend",
        api_jobs.extend_task,
        "Append additionalRecords records, split over the job's peers: {jobId, totalRecords}",
        "tasks",
        body=ExtendBody,
        status=202,
        errors=(400, 401, 404, 409, 429),
    ),
    # quality (issue 17): the report and resampling near-duplicates
    Route(
        "GET",
        "/api/tasks/{id}/report",
        api_report.task_report,
        "The quality report (report.json): fields, variables, near-duplicates, failures, usage",
        "tasks",
        query=(
            Param("threshold", "near-duplicate threshold in (0, 1] (default: the job's)", "number"),
            Param("download", "true: as an attachment", enum=("true", "false")),
        ),
        errors=(400, 401, 404),
    ),
    Route(
        "POST",
        "/api/tasks/{id}/resample-near-duplicates",
        api_report.resample_near_duplicates,
        "Call again, once, the later member of each near-duplicate pair, within a budget",
        "tasks",
        body=api_report.ResampleBody,
        status=202,
        errors=(400, 401, 404, 409, 429),
    ),
    # a dataset's life after its job (author helper)
    Route(
        "DELETE",
        "/api/tasks/{id}",
        api_lifecycle.delete_task,
        "Delete a stopped job with its results (CStore keys and R1FS files): {jobId, deleted}",
        "tasks",
        errors=(401, 404, 409, 503),
    ),
    Route(
        "POST",
        "/api/tasks/{id}/clone",
        api_lifecycle.clone_task,
        "A new draft with the job's title, records, texts, schema and inference choice",
        "tasks",
        errors=(401, 404),
    ),
    Route(
        "GET",
        "/api/tasks/{id}/records",
        api_jobs.task_records,
        "A page of records with their live state, attempt and failure reason",
        "tasks",
        query=(
            Param("offset", "first global index", type="integer"),
            Param("limit", "page size (1-500)", type="integer"),
        ),
        errors=(400, 401, 404),
    ),
    # the records view (datagems.web.api_records)
    Route(
        "GET",
        "/api/tasks/{id}/rows",
        api_records.task_rows,
        "A page of records for the grid, filtered (show) and searched (q), with counts",
        "tasks",
        query=(
            Param("offset", "first record of the page, among those shown", type="integer"),
            Param("limit", "page size (1-200)", type="integer"),
            Param("show", "which records", enum=("all", "ok", "failed", "retried", "in_flight")),
            Param("q", "text the record's data or error holds (case-insensitive)"),
        ),
        errors=(400, 401, 404),
    ),
    Route(
        "GET",
        "/api/tasks/{id}/records/{index}",
        api_records.task_record,
        "One record: data or error, its prompt, every attempt (raw answer, error, latency)",
        "tasks",
        errors=(400, 401, 404),
    ),
    Route(
        "GET",
        "/api/tasks/{id}/export",
        api_jobs.export_task,
        "The merged dataset as a download",
        "tasks",
        query=(FORMAT, PARTIAL, EXPORT_META, EXPORT_FAILED, EXPORT_FLATTEN, EXPORT_VARS),
        kind="file",
        errors=(400, 401, 404, 409),
    ),
    Route(
        "GET",
        "/api/tasks/{id}/events",
        api_events.task_events,
        "Server-sent events: the job view whenever it changes",
        "tasks",
        kind="sse",
        errors=JOB_ID_ERRORS,
    ),
    # metrics
    Route("GET", "/api/metrics", api_misc.metrics_json, "Fleet-wide metrics", "metrics"),
    Route(
        "GET",
        "/metrics",
        api_misc.metrics_prometheus,
        "Metrics in Prometheus text format",
        "metrics",
        kind="text",
    ),
    # user settings
    Route(
        "GET",
        "/api/user/settings",
        api_user.get_settings,
        "Inference profiles, keys masked",
        "settings",
    ),
    Route(
        "POST",
        "/api/user/settings",
        api_user.upsert_settings,
        "Create, update or activate an inference profile",
        "settings",
        body=ProfileBody,
        errors=(400, 401, 404, 409),
    ),
    Route(
        "DELETE",
        "/api/user/settings",
        api_user.delete_settings,
        "Delete an inference profile",
        "settings",
        body=ProfileDeleteBody,
        query=(Param("id", "the profile id"),),
        errors=(400, 401, 404),
    ),
    Route(
        "POST",
        "/api/user/models",
        api_user.user_models,
        "Models listed by an OpenAI-compatible provider",
        "settings",
        body=ModelsBody,
        errors=(400, 401, 404, 502),
    ),
    # admin
    Route(
        "GET",
        "/api/admin/accounts",
        api_user.admin_accounts,
        "Every account (admins)",
        "admin",
        errors=(401, 403),
    ),
    Route(
        "DELETE",
        "/api/admin/accounts",
        api_user.admin_delete_account,
        "Delete an account (admins)",
        "admin",
        body=AccountDeleteBody,
        errors=(400, 401, 403, 404),
    ),
    Route(
        "POST",
        "/api/admin/accounts",
        api_admin.create_account,
        "Create a user account without mail (admins): {username, email, password}, "
        "the password shown once",
        "admin",
        body=AccountCreateBody,
        status=201,
        errors=(400, 401, 403, 409),
    ),
    Route(
        "POST",
        "/api/admin/accounts/password",
        api_admin.reset_account_password,
        "Give an account a new generated password (admins): {username, password}, shown "
        "once; its sessions end",
        "admin",
        body=PasswordResetBody,
        errors=(400, 401, 403, 404),
    ),
    Route(
        "GET",
        "/api/openapi.json",
        openapi.openapi_document,
        "This document",
        "meta",
    ),
    # pages
    Route("GET", "/", pages.jobs_page, "Dashboard: your datasets", "pages", kind="html"),
    Route("GET", "/new", pages.new_page, "Create a dataset", "pages", kind="html"),
    Route("GET", "/jobs/{id}", pages.job_page, "One dataset, live", "pages", kind="html"),
    Route("GET", "/stats", pages.stats_page, "Metrics", "pages", kind="html"),
    Route("GET", "/settings", pages.settings_page, "Inference profiles", "pages", kind="html"),
    Route("GET", "/admin", pages.admin_page, "Accounts (admins)", "pages", kind="html"),
    Route("GET", "/login", pages.login_page, "Sign in", "pages", public=True, kind="html"),
    Route("GET", "/register", pages.register_page, "Sign up", "pages", public=True, kind="html"),
    Route("GET", "/reset", pages.reset_page, "New password", "pages", public=True, kind="html"),
)


def setup_routes(app: web.Application) -> None:
    specs: dict[tuple[str, str], Route] = {}
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler, name=None)
        specs[(route.method, route.path)] = route
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
    app[ROUTE_SPECS] = specs
