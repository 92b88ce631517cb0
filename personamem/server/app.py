"""The HTTP API over :class:`~personamem.memory.AsyncMemory`: tenants, keys, errors, limits.

Every user id a client sends is stored as ``<tenant>/<user id>``: two tenants may both have a
user ``alice`` and never see each other's. The prefix never leaves the server (responses and
error messages carry the client's own id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..memory.agent import MemoryUpdateError
from ..models import ModelError
from ..store import (
    AddResult,
    AsyncMemory,
    LeaseLost,
    MemoryBusy,
    OverCap,
    UpdateFailed,
    VersionInfo,
)
from ..store.base import Conflict, StoreError, UnknownUser
from .config import ServerConfig
from .keys import ApiKey, KeyStore
from .metrics import Metrics
from .queue import DurableUpdates, QueueConfig, update_user
from .schemas import (
    USER_ID_PATTERN,
    AddRequest,
    AnswerRequest,
    AnswerView,
    ContextView,
    DeleteView,
    EditRequest,
    ErrorResponse,
    ForgetRequest,
    LineWithMessages,
    MemoryView,
    UndoRequest,
    UserList,
)
from .updates import JobState, UpdateQueue

log = logging.getLogger("personamem.server")


# --- errors ------------------------------------------------------------------------------------
class ApiError(Exception):
    """An error the client gets as ``{"error": {"code", "message", "details"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}

ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse, "description": _HTTP_CODES[s].replace("_", " ")}
    for s in (400, 401, 403, 404, 409, 413, 422, 429)
}


# --- tenants and keys ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant their key belongs to, the key id and its scope."""

    tenant: str
    key_id: str
    scope: str

    def internal(self, user_id: str) -> str:
        return f"{self.tenant}/{user_id}"

    def external(self, internal: str) -> str:
        return internal.removeprefix(f"{self.tenant}/")

    def owns(self, internal: str) -> bool:
        return internal.startswith(f"{self.tenant}/")

    def scrub(self, text: str) -> str:
        """A message with the tenant prefix taken out of every user id."""
        return text.replace(f"{self.tenant}/", "")


class RateLimiter:
    """A token bucket per API key (``rate`` per second, bursts of ``2 * rate``)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 if the request may go now, else seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `personamem keys create`: `Authorization: Bearer pmk_...`.",
)


async def principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    """The caller, from the Bearer key (401 if missing, malformed, unknown or revoked; 429 if the
    key is over its rate limit)."""
    svc: Service = request.app.state.service
    if creds is None or not creds.credentials:
        raise ApiError(401, "unauthorized", "missing API key: send `Authorization: Bearer pmk_...`")
    key: ApiKey | None = await asyncio.to_thread(svc.keys.verify, creds.credentials)
    if key is None:
        raise ApiError(401, "unauthorized", "invalid API key")
    if key.revoked_at is not None:
        raise ApiError(401, "unauthorized", f"API key {key.key_id} was revoked")
    wait = svc.limiter.take(key.key_id)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests for this key; retry in {wait:.2f}s",
            headers={"Retry-After": str(max(1, round(wait + 0.5)))},
        )
    return Principal(tenant=key.tenant, key_id=key.key_id, scope=key.scope)


async def writer(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """The caller, if their key may change memories (403 for a read-only key)."""
    if who.scope != "write":
        raise ApiError(403, "forbidden", f"API key {who.key_id} is read-only")
    return who


Reader = Annotated[Principal, Depends(principal)]
Writer = Annotated[Principal, Depends(writer)]
UserId = Annotated[
    str, Path(pattern=USER_ID_PATTERN, description="Your id for the user (1-128 characters).")
]


# --- the service ------------------------------------------------------------------------------
class Service:
    """What the routes share: the memory store, keys, the update queue, limits and metrics."""

    def __init__(self, memory: AsyncMemory, keys: KeyStore, config: ServerConfig) -> None:
        self.memory, self.keys, self.config = memory, keys, config
        self.metrics = Metrics()
        self.limiter = RateLimiter(config.rate_limit)
        self.queue = UpdateQueue(
            run=self._update,
            workers=config.update_workers,
            max_attempts=config.update_retries,
            backoff=config.update_backoff,
            on_outcome=lambda o: self.metrics.updates.labels(o).inc(),
        )
        self.durable: DurableUpdates | None = None
        if config.queue:
            self.durable = DurableUpdates(
                QueueConfig(
                    url=config.queue,
                    namespace=config.queue_namespace,
                    max_retries=max(0, config.update_retries - 1),
                    min_backoff_ms=int(config.update_backoff * 1000),
                    heartbeat_ms=config.queue_heartbeat_ms,
                )
            )
        jobs = self.durable or self.queue
        self.metrics.watch_queue(jobs.depth, jobs.oldest_age, jobs.dead_letters)

    # --- update jobs: in this process, or durable in Redis ------------------------------------
    def enqueue(self, internal: str) -> None:
        (self.durable or self.queue).enqueue(internal)

    def job_state(self, internal: str) -> JobState:
        return (self.durable or self.queue).state(internal)

    def forget_jobs(self, internal: str) -> None:
        if self.durable is not None:
            self.durable.clear_dead(internal)
        else:
            self.queue.forget_user(internal)

    async def start(self) -> None:
        if self.config.update_workers <= 0:
            return
        if self.durable is None:
            self.queue.start()
            self._resume_task = asyncio.create_task(self._resume())
            return
        loop = asyncio.get_running_loop()

        def runner(internal: str) -> None:  # on a Dramatiq worker thread
            asyncio.run_coroutine_threadsafe(self._durable_job(internal), loop).result()

        self.durable.start_worker(runner, threads=self.config.update_workers)

    async def _resume(self) -> None:
        """After a restart, queue every user with a full chunk pending (the in-process queue is
        lost with the process; the pending messages are not)."""
        for internal in await self.memory.users():
            try:
                mem = await self.memory.get(internal)
            except UnknownUser:
                continue
            if mem.pending_tokens >= self.config.chunk_tokens:
                self.queue.enqueue(internal)

    async def stop(self) -> None:
        task = getattr(self, "_resume_task", None)
        if task is not None and not task.done():
            task.cancel()
        await self.queue.stop()
        if self.durable is not None:
            await asyncio.to_thread(self.durable.stop)

    async def _durable_job(self, internal: str) -> None:
        try:
            await self._update(internal)
        except Exception:
            self.metrics.updates.labels("retry").inc()
            raise
        self.metrics.updates.labels("ok").inc()

    async def _update(self, internal: str) -> None:
        """One sleep-time job: read every full chunk pending for the user into the memory."""
        try:
            versions = await update_user(self.memory, internal)
        except (UpdateFailed, MemoryUpdateError, ModelError) as e:
            if not isinstance(e, LeaseLost) and not isinstance(e.__cause__, LeaseLost):
                self.metrics.model_errors.labels("update").inc()  # a lost lease is no model error
            raise
        self.count_versions(versions, "update")

    def count_versions(self, versions: list[VersionInfo], op: str) -> None:
        for v in versions:
            self.metrics.tokens.labels(op, "in").inc(v.tokens_in)
            self.metrics.tokens.labels(op, "out").inc(v.tokens_out)

    async def guard(self, who: Principal, call: Awaitable[Any]) -> Any:
        """Run a store call, turning store errors into API errors without the tenant prefix."""
        try:
            return await call
        except UnknownUser as e:
            raise ApiError(404, "not_found", who.scrub(str(e))) from None
        except (Conflict, MemoryBusy, LeaseLost) as e:
            # Another writer holds (or took over) the user's lease: nothing was committed.
            raise ApiError(409, "conflict", who.scrub(str(e))) from None
        except OverCap as e:
            raise ApiError(422, "over_cap", who.scrub(str(e))) from None
        except UpdateFailed as e:
            if isinstance(e.__cause__, (LeaseLost, Conflict)):  # stored, and stay pending
                details = self.add_view(who, e.result.model_dump())
                raise ApiError(409, "conflict", who.scrub(str(e)), details) from None
            self.metrics.model_errors.labels("update").inc()
            details = self.add_view(who, e.result.model_dump())
            raise ApiError(502, "model_error", who.scrub(str(e)), details) from None
        except (MemoryUpdateError, ModelError) as e:
            self.metrics.model_errors.labels("memory").inc()
            raise ApiError(502, "model_error", who.scrub(str(e))) from None
        except (ValueError, StoreError) as e:
            raise ApiError(400, "bad_request", who.scrub(str(e))) from None

    @staticmethod
    def add_view(who: Principal, d: dict[str, Any]) -> dict[str, Any]:
        d["user_id"] = who.external(d["user_id"])
        return d


def _version(v: VersionInfo) -> dict[str, Any]:
    return v.model_dump()


# --- routes -----------------------------------------------------------------------------------
def _svc(request: Request) -> Service:
    return request.app.state.service


Svc = Annotated[Service, Depends(_svc)]


def _known_query(request: Request) -> None:
    """Unknown query parameters are refused (422), not ignored: a misspelt option
    (``?limt=5``) must not silently do the default."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known: set[str] = set()
    todo = [route.dependant]
    while todo:  # the endpoint's own query parameters and those of its dependencies
        d = todo.pop()
        known.update(p.alias for p in d.query_params)
        todo.extend(d.dependencies)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        names = ", ".join(repr(u) for u in unknown[:5])
        allowed = ", ".join(sorted(known)) or "none"
        raise ApiError(
            422, "invalid", f"unknown query parameter(s) {names}; this endpoint takes: {allowed}"
        )


api = APIRouter(prefix="/v1", responses=ERRORS, dependencies=[Depends(_known_query)])


@api.get(
    "/users",
    response_model=UserList,
    operation_id="listUsers",
    tags=["users"],
    summary="List your users",
)
async def list_users(who: Reader, svc: Svc) -> UserList:
    everyone = await svc.memory.users()
    return UserList(users=[who.external(u) for u in everyone if who.owns(u)])


@api.post(
    "/users/{user_id}/messages",
    operation_id="addMessages",
    response_model=AddResult,
    tags=["memory"],
    summary="Add messages",
    status_code=202,
    responses={
        200: {"model": AddResult, "description": "update=wait: stored and read into the memory"}
    },
)
async def add_messages(
    user_id: UserId, body: AddRequest, who: Writer, svc: Svc, request: Request
) -> JSONResponse:
    """Store messages (redacted; an `id` seen before is skipped). With `update=background` (the
    default) the call returns at once (202) and the memory updates in the background when a full
    chunk of new tokens is pending; `wait` updates before answering; `none` only stores."""
    internal = who.internal(user_id)
    msgs = [m.model_dump() for m in body.messages]
    result = await svc.guard(who, svc.memory.add(msgs, internal, update=body.update == "wait"))
    svc.count_versions(result.versions, "update")
    if body.update == "background":
        svc.enqueue(internal)
    status = 200 if body.update == "wait" else 202
    return JSONResponse(svc.add_view(who, result.model_dump()), status_code=status)


@api.post(
    "/users/{user_id}/flush",
    operation_id="flush",
    response_model=list[VersionInfo],
    tags=["memory"],
    summary="Read every pending message now",
)
async def flush(user_id: UserId, who: Writer, svc: Svc) -> list[dict[str, Any]]:
    internal = who.internal(user_id)
    versions = await svc.guard(who, svc.memory.flush(internal))
    svc.count_versions(versions, "update")
    if svc.job_state(internal).state == "dead":
        svc.forget_jobs(internal)
    return [_version(v) for v in versions]


@api.get(
    "/users/{user_id}/updates",
    operation_id="updateState",
    response_model=JobState,
    tags=["memory"],
    summary="Background update state (queued, running, retrying, dead)",
)
async def update_state(user_id: UserId, who: Reader, svc: Svc) -> JobState:
    internal = who.internal(user_id)
    await svc.guard(who, svc.memory.get(internal))
    return svc.job_state(internal)


@api.get(
    "/users/{user_id}/memory",
    response_model=MemoryView,
    operation_id="getMemory",
    tags=["memory"],
    summary="The memory, each line with the messages behind it",
)
async def get_memory(user_id: UserId, who: Reader, svc: Svc) -> MemoryView:
    internal = who.internal(user_id)
    for _ in range(5):  # two reads; retry if an update committed in between
        mem = await svc.guard(who, svc.memory.get(internal))
        lines = await svc.guard(who, svc.memory.sources(internal))
        if [ln.text for ln in lines] == [ln.text for ln in mem.lines]:
            break
    return MemoryView(
        **{**mem.model_dump(exclude={"lines"}), "user_id": user_id},
        lines=[
            LineWithMessages(text=s.text, sources=v.sources, messages=s.sources)
            for s, v in zip(lines, mem.lines, strict=False)
        ],
    )


@api.put(
    "/users/{user_id}/memory",
    operation_id="editMemory",
    response_model=VersionInfo,
    tags=["memory"],
    summary="Edit the memory (a new version)",
)
async def edit_memory(user_id: UserId, body: EditRequest, who: Writer, svc: Svc) -> dict[str, Any]:
    return _version(await svc.guard(who, svc.memory.edit(who.internal(user_id), body.text)))


@api.get(
    "/users/{user_id}/context",
    operation_id="getContext",
    response_model=ContextView,
    tags=["memory"],
    summary="The memory as text for a prompt",
)
async def context(
    user_id: UserId,
    who: Reader,
    svc: Svc,
    max_tokens: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> ContextView:
    """The memory without citations, newest lines within `max_tokens` (an unknown user has an
    empty memory)."""
    text = await svc.guard(who, svc.memory.context(who.internal(user_id), max_tokens))
    return ContextView(user_id=user_id, context=text)


@api.post(
    "/users/{user_id}/answer",
    operation_id="answer",
    response_model=AnswerView,
    tags=["memory"],
    summary="Answer a question from the memory",
)
async def answer(user_id: UserId, body: AnswerRequest, who: Reader, svc: Svc) -> AnswerView:
    a = await svc.guard(
        who,
        svc.memory.answer(
            who.internal(user_id), body.query, body.options, max_tokens=body.max_tokens
        ),
    )
    svc.metrics.tokens.labels("answer", "in").inc(a.tokens_in)
    svc.metrics.tokens.labels("answer", "out").inc(a.tokens_out)
    return AnswerView(**a.model_dump(include=set(AnswerView.model_fields)))


@api.get(
    "/users/{user_id}/history",
    operation_id="history",
    response_model=list[VersionInfo],
    tags=["memory"],
    summary="Every version with its diff",
)
async def history(user_id: UserId, who: Reader, svc: Svc) -> list[dict[str, Any]]:
    return [_version(v) for v in await svc.guard(who, svc.memory.history(who.internal(user_id)))]


@api.post(
    "/users/{user_id}/forget",
    operation_id="forget",
    response_model=VersionInfo,
    tags=["memory"],
    summary="Forget something",
)
async def forget(user_id: UserId, body: ForgetRequest, who: Writer, svc: Svc) -> dict[str, Any]:
    """Remove what `what` describes and keep it out of later updates (a new version)."""
    internal = who.internal(user_id)
    await svc.guard(who, svc.memory.get(internal))  # unknown users are 404, not created
    return _version(await svc.guard(who, svc.memory.forget(internal, body.what)))


@api.post(
    "/users/{user_id}/undo",
    operation_id="undo",
    response_model=VersionInfo,
    tags=["memory"],
    summary="Restore an earlier version",
)
async def undo(
    user_id: UserId, who: Writer, svc: Svc, body: UndoRequest | None = None
) -> dict[str, Any]:
    """Restore the version before the current one (or `version`; 0 is the empty memory) as a new
    version. 404 for a version that does not exist, 409 when there is nothing to undo."""
    internal = who.internal(user_id)
    version = body.version if body else None
    if version:
        known = {v.version for v in await svc.guard(who, svc.memory.history(internal))}
        if version not in known:
            raise ApiError(404, "not_found", f"{user_id} has no version {version}")
    try:
        return _version(await svc.guard(who, svc.memory.undo(internal, version)))
    except ApiError as e:
        if e.status == 400:  # nothing left to undo, or already the current version
            e.status, e.code = 409, "conflict"
        raise


@api.get(
    "/users/{user_id}/export",
    operation_id="export",
    tags=["users"],
    summary="Everything stored about the user",
)
async def export(user_id: UserId, who: Reader, svc: Svc) -> dict[str, Any]:
    data = await svc.guard(who, svc.memory.export(who.internal(user_id)))
    data.pop("store", None)  # the server's database URL is not the tenant's business
    data["user"]["user_id"] = user_id
    return data


@api.delete(
    "/users/{user_id}",
    response_model=DeleteView,
    operation_id="deleteUser",
    tags=["users"],
    summary="Delete the user",
)
async def delete_user(user_id: UserId, who: Writer, svc: Svc) -> DeleteView:
    internal = who.internal(user_id)
    counts = await svc.guard(who, svc.memory.delete_user(internal))
    svc.forget_jobs(internal)
    return DeleteView(user_id=user_id, deleted=counts)


# --- middleware -------------------------------------------------------------------------------
class BodyLimit:
    """Rejects request bodies over ``limit`` bytes with 413 before the app reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = error_response(
            413, "too_large", f"request body over {self.limit} bytes; send less per request"
        )
        try:
            if declared is not None and int(declared) > self.limit:
                return await too_big(scope, receive, send)
        except ValueError:
            return await error_response(400, "bad_request", "bad Content-Length")(
                scope, receive, send
            )
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            body = msg.get("body", b"")
            size += len(body)
            if size > self.limit:
                return await too_big(scope, receive, send)
            chunks.append(body)
            more = msg.get("more_body", False)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _allowed(request: Request) -> list[str]:
    """The methods any route serves at the request's path."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "_"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")


# --- the app ----------------------------------------------------------------------------------
def create_app(
    memory: AsyncMemory,
    keys: KeyStore,
    config: ServerConfig | None = None,
    *,
    upstream: Any = None,
) -> FastAPI:
    """The ASGI app over an open memory store and key store.

    ``upstream``: what the chat proxy forwards to (a base URL, a :class:`~personamem.models.Model`
    or None for ``config.upstream``)."""
    config = config or ServerConfig()
    service = Service(memory, keys, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        await service.start()
        try:
            yield
        finally:
            await service.stop()
            if app.state.proxy is not None:
                await app.state.proxy.aclose()

    app = FastAPI(
        title="personamem",
        version="1",
        summary="One human-readable, versioned memory per user, learned from their chats.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.proxy = None

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.code, e.message, e.details, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
            for err in e.errors()
        ]
        where = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in errors[:5])
        return error_response(422, "invalid", f"invalid request: {where}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(e.status_code, "error")
        headers = dict(e.headers or {})
        if e.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = ", ".join(_allowed(request))
        return error_response(e.status_code, code, str(e.detail), headers=headers or None)

    @app.exception_handler(Exception)
    async def _crash(request: Request, e: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal error; the server log has the details")

    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]):  # noqa: ANN202
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = _route_of(request)
            service.metrics.latency.labels(request.method, route).observe(time.perf_counter() - t0)
            service.metrics.requests.labels(request.method, route, str(status)).inc()

    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.include_router(api)

    @app.get("/healthz", tags=["service"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    from .proxy import install_proxy
    from .web import install_web

    _add_links(app)
    install_proxy(app, service, upstream if upstream is not None else config.upstream)
    install_web(app)
    return app


_USER_OPS = (
    "getMemory",
    "editMemory",
    "getContext",
    "answer",
    "history",
    "forget",
    "undo",
    "export",
    "flush",
    "updateState",
    "deleteUser",
)


def _add_links(app: FastAPI) -> None:
    """OpenAPI links from adding messages to every operation on that user (clients and
    stateful testers follow them)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = plain()
        links = {
            op: {"operationId": op, "parameters": {"user_id": "$request.path.user_id"}}
            for op in _USER_OPS
        }
        add = spec["paths"]["/v1/users/{user_id}/messages"]["post"]["responses"]
        for status in ("200", "202"):
            add.setdefault(status, {"description": "stored"})["links"] = links
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def build_app(config: ServerConfig) -> FastAPI:
    """The app for a config: opens the store and key store at ``config.db``."""
    memory = AsyncMemory(
        config.db,
        model=config.model,
        chunk_tokens=config.chunk_tokens,
        memory_tokens=config.memory_tokens,
    )
    return create_app(memory, KeyStore(config.db), config)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (several API processes): config from the environment."""
    return build_app(ServerConfig.from_env())


__all__ = ["ApiError", "Principal", "Service", "app_from_env", "build_app", "create_app"]
