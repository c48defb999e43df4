"""The yardstick of bench/pollers.py: a FastAPI endpoint that does nothing but return a fixed JSON
body of a job's size, served by the same uvicorn command as the API."""
import json
import os

from fastapi import FastAPI, Response

BODY = json.dumps({"padding": "x" * max(0, int(os.environ.get("BARE_BODY_BYTES", "2000")) - 16)}).encode()
app = FastAPI()


@app.get("/bare")
async def bare() -> Response:
    return Response(BODY, media_type="application/json")
