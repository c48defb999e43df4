"""/v1/jobs/{id}/evaluate and /v1/jobs/{id}/predict: use a trained model. Keras runs in the warm
inference process (app.inference.pool), never in the API process."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.deps import OwnerDep, SessionFactoryDep, SettingsDep
from app.api.inference_schemas import EvaluateRead, EvaluateRequest, PredictRead, PredictRequest
from app.api.problems import problems
from app.errors import FieldError, InvalidInput, PayloadTooLarge
from app.inference.pool import Predictor
from app.services import inference as inference_service

router = APIRouter(prefix="/v1/jobs", tags=["inference"])
# Uploads stream to disk under MAX_UPLOAD_BYTES; JSON bodies keep MAX_REQUEST_BYTES (checked below).
UPLOAD_BODY_CEILING = 1024**4
CACHE_HEADER = "Epochly-Model-Cache"
_CACHE_HEADER_DOC = {
    CACHE_HEADER: {
        "description": "`hit` when the warm inference process already held the model, `miss` when it loaded the file",
        "schema": {"type": "string", "enum": ["hit", "miss"]},
    }
}
_MEDIA = {"npy": "application/octet-stream", "npz": "application/octet-stream", "csv": "text/csv"}
# /predict declares its JSON body and /predict/file its multipart one: one media type per operation.
# A generated client (openapi-python-client 0.29) of an operation with two body media types does not
# import (`NameError: Unset`). /predict still takes an upload too, as it always has.
_PREDICT_JSON_BODY = {"required": True, "content": {"application/json": {"schema": PredictRequest.model_json_schema()}}}
_PREDICT_FILE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "title": "PredictUpload",
                "required": ["file"],
                "additionalProperties": False,
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": ".npz (array `x`, or one array per input name), .npy, or a CSV with a header row and only feature columns",
                    },
                    "format": {
                        "type": "string",
                        "enum": ["npy", "csv"],
                        "description": "The file to answer with; default .npy, or CSV for a CSV upload",
                    },
                },
            }
        },
    },
}
_FILE_CONTENT = {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "text/csv": {"schema": {"type": "string"}},
}


def get_predictor(request: Request) -> Predictor:
    return request.app.state.predictor


PredictorDep = Annotated[Predictor, Depends(get_predictor)]


@router.post(
    "/{job_id}/evaluate",
    response_model=EvaluateRead,
    responses={**problems(404, 409, 422), 200: {"headers": _CACHE_HEADER_DOC}},
    summary="Evaluate the trained model on one of your datasets: the numbers of Keras' model.evaluate",
)
def evaluate_job(
    job_id: str,
    payload: EvaluateRequest,
    owner: OwnerDep,
    session_factory: SessionFactoryDep,
    settings: SettingsDep,
    predictor: PredictorDep,
    response: Response,
) -> dict[str, Any]:
    result = inference_service.evaluate(session_factory, settings, predictor, job_id, payload.dataset_id, owner_id=owner.id)
    response.headers[CACHE_HEADER] = result.cache
    return {**result.logs, "samples": result.samples}


@router.post(
    "/{job_id}/predict",
    response_model=PredictRead,
    responses={
        **problems(404, 409, 422),
        200: {
            "description": "JSON predictions for JSON inputs; for a dataset_id or an uploaded file, a CSV, or a .npy (a .npz with one array per output name when the model has several outputs)",
            "headers": _CACHE_HEADER_DOC,
            "content": _FILE_CONTENT,
        },
    },
    openapi_extra={"requestBody": _PREDICT_JSON_BODY},
    max_body_size=UPLOAD_BODY_CEILING,
    summary="Predict with the trained model: JSON rows in, JSON out; or a dataset_id / .npz / CSV in, .npy or CSV out",
    description="Inputs are raw features: any scaling (`fit.normalize`) is inside the model. JSON inputs are checked "
    "before the model runs; a bad row is a 422 naming it (`inputs[3]`, `inputs.age[2]`). A multipart upload is "
    "accepted here too, as on `/predict/file`.",
)
async def predict_job(
    job_id: str,
    request: Request,
    owner: OwnerDep,
    session_factory: SessionFactoryDep,
    settings: SettingsDep,
    predictor: PredictorDep,
) -> Response:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _predict_upload(job_id, request, owner.id, session_factory, settings, predictor)
    payload = await _json_payload(request, settings.max_request_bytes)
    if payload.inputs is not None:
        predictions = await run_in_threadpool(
            inference_service.predict_json, session_factory, settings, predictor, job_id, payload.inputs, owner_id=owner.id
        )
        body = PredictRead(predictions=predictions.values).model_dump(mode="json")
        return JSONResponse(body, headers={CACHE_HEADER: predictions.cache})
    assert payload.dataset_id is not None
    result = await run_in_threadpool(
        inference_service.predict_dataset,
        session_factory,
        settings,
        predictor,
        job_id,
        payload.dataset_id,
        payload.format,
        owner_id=owner.id,
    )
    return _file_response(job_id, result)


@router.post(
    "/{job_id}/predict/file",
    response_class=FileResponse,
    responses={
        **problems(404, 409, 422),
        200: {
            "description": "The predictions as a .npy (a .npz with one array per output name when the model has several outputs), or a CSV",
            "headers": _CACHE_HEADER_DOC,
            "content": _FILE_CONTENT,
        },
    },
    openapi_extra={"requestBody": _PREDICT_FILE_BODY},
    max_body_size=UPLOAD_BODY_CEILING,
    summary="Predict on an uploaded .npz, .npy or CSV file of raw features: a .npy or CSV out",
)
async def predict_job_file(
    job_id: str,
    request: Request,
    owner: OwnerDep,
    session_factory: SessionFactoryDep,
    settings: SettingsDep,
    predictor: PredictorDep,
) -> Response:
    return await _predict_upload(job_id, request, owner.id, session_factory, settings, predictor)


async def _json_payload(request: Request, limit: int) -> PredictRequest:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"the JSON body is larger than the {limit:,}-byte limit; send a .npz or CSV file for big inputs"
            )
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except ValueError:
        raise StarletteHTTPException(400, "the body is not valid JSON") from None
    try:
        return PredictRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]) from None


async def _predict_upload(
    job_id: str, request: Request, owner_id: str, session_factory: Any, settings: Any, predictor: Predictor
) -> Response:
    async with request.form(max_files=1, max_fields=4) as form:
        upload, fmt = form.get("file"), form.get("format")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("file: send the inputs as a multipart file field", [FieldError("file", "missing")])
        if fmt not in (None, "", "npy", "csv"):
            raise InvalidInput("format: must be 'npy' or 'csv'", [FieldError("format", "must be 'npy' or 'csv'")])
        is_csv = (upload.filename or "").lower().endswith((".csv", ".txt"))
        chosen: inference_service.FileFormat = "csv" if fmt == "csv" or (not fmt and is_csv) else "npy"
        result = await run_in_threadpool(
            inference_service.predict_upload, session_factory, settings, predictor, job_id, upload.file, chosen, owner_id=owner_id
        )
    return _file_response(job_id, result)


def _file_response(job_id: str, result: inference_service.PredictionFile) -> FileResponse:
    return FileResponse(
        result.path,
        media_type=_MEDIA[result.format],
        filename=f"{job_id}-predictions.{result.format}",
        headers={CACHE_HEADER: result.cache},
        background=BackgroundTask(result.path.unlink, missing_ok=True),
    )
