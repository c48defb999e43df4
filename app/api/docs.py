"""/docs (Swagger UI 5) and /redoc, served entirely from this service: their files are vendored
under app/static/vendor (see the README there), so the pages work offline and with no CDN."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

VENDOR = Path(__file__).resolve().parent.parent / "static" / "vendor"
SWAGGER_ASSETS = "/docs-assets"
REDOC_ASSETS = "/redoc-assets"
SWAGGER_UI_PARAMETERS = {
    # The default validator badge calls validator.swagger.io: no outside requests from this page.
    "validatorUrl": None,
    # The key typed into "Authorize" survives a reload, so trying calls one after another stays easy.
    "persistAuthorization": True,
}
# Redoc's sidebar always shows a logo from cdn.redoc.ly; the policy keeps the page to this service
# (the image fails to load and Redoc hides it). Inline script and styles are how Redoc renders.
REDOC_POLICY = (
    "default-src 'self'; img-src 'self' data:; font-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'"
)


def install(app: FastAPI) -> None:
    app.mount(SWAGGER_ASSETS, StaticFiles(directory=VENDOR / "swagger-ui"), name="docs-assets")
    app.mount(REDOC_ASSETS, StaticFiles(directory=VENDOR / "redoc"), name="redoc-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_ASSETS}/favicon-32x32.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{REDOC_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{SWAGGER_ASSETS}/favicon-32x32.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = REDOC_POLICY
        return page
