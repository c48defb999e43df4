"""/ui: the live dashboard, static pages served by the API process itself.

Every page is the same HTML shell; its script reads the path and draws the page from the /v1 API
with the key the user logged in with (kept in sessionStorage, so never in a URL or a cookie). The
shell therefore holds no data and needs no key. Assets are vendored (uPlot) or plain files: no
build step, no CDN.
"""

import json
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.specs import TUTORIAL_COMPILE, TUTORIAL_FIT, TUTORIAL_LAYERS

STATIC = Path(__file__).resolve().parent.parent.parent / "static"
PAGES = (
    "/ui",
    "/ui/",
    "/ui/login",
    "/ui/jobs/{job_id}",
    "/ui/sweeps",
    "/ui/sweeps/{sweep_id}",
    "/ui/compare",
    "/ui/datasets",
    "/ui/new",
)
TUTORIAL_SPEC = {
    "name": "side-effects tutorial",
    "model": {"layers": TUTORIAL_LAYERS},
    "compile": TUTORIAL_COMPILE,
    "fit": TUTORIAL_FIT,
}


def _shell() -> str:
    # The new-job form is prefilled from the same constants the API's examples use. "</" is
    # escaped so that no value can close the script element it is embedded in.
    tutorial = json.dumps(TUTORIAL_SPEC).replace("</", "<\\/")
    return (STATIC / "ui" / "index.html").read_text().replace("{{TUTORIAL}}", tutorial)


def install(app: FastAPI) -> None:
    shell = _shell()
    router = APIRouter(include_in_schema=False)

    async def page() -> HTMLResponse:
        return HTMLResponse(shell, headers={"Cache-Control": "no-cache"})

    for path in PAGES:
        router.add_api_route(path, page, methods=["GET"])

    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC / "ui"), name="ui-assets")
    app.mount("/ui/vendor/uplot", StaticFiles(directory=STATIC / "vendor" / "uplot"), name="ui-uplot")
