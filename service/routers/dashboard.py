"""The dashboard: `/dashboard` (one page of vanilla JavaScript and inline SVG, reading the
`/v1/stats*` API), `/dashboard/cases` (the follow-up queue, reading and changing `/v1/cases*`),
its login form and its static files, which ship inside the package and need
no network. With auth on, nothing but the login form is served without a key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from service.deps import ServiceState, State, key_matches
from service.feedback import COOKIE, has_access

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
ASSETS = {
    "common.js": "text/javascript",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "cases.js": "text/javascript",
}
SESSION_SECONDS = 12 * 3600


def _page(name: str, **replace: str) -> str:
    html = (STATIC / name).read_text(encoding="utf-8")
    for key, value in replace.items():
        html = html.replace("{{" + key + "}}", value)
    return html


def _login_page(message: str = "", status: int = 200) -> HTMLResponse:
    from html import escape

    note = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return HTMLResponse(_page("login.html", message=note), status_code=status)


def _behind_login(request: Request, state: ServiceState, name: str) -> Response:
    """The page `name` for a logged-in reader (never cached), else the way to the login."""
    if not has_access(request, state):
        return RedirectResponse("/dashboard/login", status_code=303)
    logout = "true" if state.settings.auth else "false"
    return HTMLResponse(_page(name, auth=logout), headers={"Cache-Control": "no-store"})


@router.get("", response_class=HTMLResponse)
async def dashboard(request: Request, state: State) -> Response:
    return _behind_login(request, state, "dashboard.html")


@router.get("/cases", response_class=HTMLResponse)
async def cases_page(request: Request, state: State) -> Response:
    return _behind_login(request, state, "cases.html")


@router.get("/login", response_class=HTMLResponse)
async def login_form() -> HTMLResponse:
    return _login_page()


@router.post("/login")
async def login(
    request: Request, state: State, key: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    """A random server-side session (`service.sessions`) for a valid key; failed attempts are
    throttled per client address (429 with Retry-After)."""
    if not state.settings.auth:
        return RedirectResponse("/dashboard", status_code=303)
    client = request.client.host if request.client else "unknown"
    wait = state.logins.retry_after(client)
    if wait is not None:
        response = _login_page(f"Too many failed attempts; try again in {wait} s.", status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    if not key_matches(key.strip(), state.api_keys + state.admin_keys):
        state.logins.failed(client)
        return _login_page("That key is not valid.", status=401)
    state.logins.succeeded(client)
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(
        COOKIE,
        state.sessions.create(key.strip()),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request, state: State) -> Response:
    """Ends the session on the server too: its cookie is refused from now on."""
    if state.sessions is not None:
        state.sessions.revoke(request.cookies.get(COOKIE))
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/i18n/{lang}")
async def i18n(lang: str, request: Request, state: State) -> Response:
    """The dashboard's words in `lang` (fa, ar, en): its own strings and the taxonomy's topic
    labels, with the writing direction, locale and calendar."""
    import json

    from fastapi.responses import JSONResponse

    from cxnlp.labels import LANGS
    from cxnlp.topics.taxonomy import load_taxonomy

    if not has_access(request, state):
        return Response(status_code=401)
    if lang not in LANGS:
        return JSONResponse(
            {"error": f"unknown language {lang!r}; expected one of {list(LANGS)}"},
            status_code=404,
        )
    words = json.loads((STATIC / "i18n.json").read_text(encoding="utf-8"))[lang]
    topics = {t.name: t.label(lang) for t in load_taxonomy()}
    return JSONResponse({"lang": lang, **words, "topics": topics})


@router.get("/static/{name}")
async def asset(name: str, request: Request, state: State) -> Response:
    if name not in ASSETS:
        return Response(status_code=404)
    if not has_access(request, state):
        return Response(status_code=401)
    return FileResponse(STATIC / name, media_type=ASSETS[name])
