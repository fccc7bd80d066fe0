"""The one error answer (views/errors.py): a path takes its API's shape, and one complaint
is worded as each API words it (the native JSON API, A1111's, OpenAI's), without Redis,
a database or a worker."""
from __future__ import annotations

import pytest
from flask import Flask

from services.core.errors import NotFound, ValidationError
from views import errors
from views.compat.common import NotSignedIn
from views.errors import Shape


@pytest.mark.parametrize("path, shape", [
    ("/api/v1/tasks", Shape.NATIVE), ("/healthz", Shape.NATIVE),
    ("/sdapi/v1/txt2img", Shape.A1111), ("/sdapi", Shape.A1111), ("/controlnet/version", Shape.A1111),
    ("/v1/images/generations", Shape.OPENAI), ("/v1", Shape.OPENAI),
    ("/v1x", Shape.PAGE), ("/sdapix/v1", Shape.PAGE), ("/gallery", Shape.PAGE), ("/api", Shape.PAGE),
])
def test_a_path_takes_the_error_shape_of_its_api(path, shape):
    assert errors.shape_of(path) is shape


def _answer(path: str, exc):
    with Flask(__name__).test_request_context(path):
        response = errors.error_for(exc)
        return response.status_code, response.get_json()


def test_one_complaint_in_each_apis_own_words_and_field_names():
    complaint = ValidationError("samples", "must be at most 4")
    assert _answer("/api/v1/tasks", complaint) == (422, {"error": {
        "code": "invalid_field", "message": "samples: must be at most 4", "field": "samples",
        "fields": {"samples": "must be at most 4"}}})
    assert _answer("/sdapi/v1/txt2img", complaint) == (422, {
        "error": "ValidationError", "detail": "batch_size: must be at most 4", "body": "",
        "errors": "batch_size: must be at most 4"})
    assert _answer("/v1/images/generations", complaint) == (400, {"error": {
        "message": "n: must be at most 4", "type": "invalid_request_error", "code": "invalid_value",
        "param": "n"}})


def test_openai_names_a_missing_sign_in_and_a_missing_model_its_own_way():
    status, body = _answer("/v1/models", NotSignedIn("Send your Daydream API token."))
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, body = _answer("/v1/models/x", NotFound("No such model.", code="model_not_found", field="model"))
    assert status == 404 and body["error"] == {"message": "No such model.", "type": "invalid_request_error",
                                               "code": "model_not_found", "param": "model"}
    status, body = _answer("/sdapi/v1/sd-models", NotSignedIn("Send your Daydream API token."))
    assert status == 401 and body["error"] == "NotSignedIn"
