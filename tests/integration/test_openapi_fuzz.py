"""The OpenAPI document says what the server does: schemathesis generates requests for
every operation of /api/v1/openapi.json (valid and invalid ones) and sends them to the
app in-process (WSGI), as a registered user with a bearer token. No answer may be a 5xx,
have a status code, content type or headers the document does not give, or a body that
does not match its schema; a request the document calls invalid is refused, and one it
calls valid is accepted (unless what refuses it is state the document cannot know:
STATE_DEPENDENT)."""
from __future__ import annotations

import uuid

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import views.api  # noqa: F401  (registers every route module, so the document is whole)
from views.api.openapi import document
from tests.integration.helpers import ApiUser

# A request the document calls valid may still be refused for what no document can know:
# your password, the addresses other accounts use, a well-known password, your plan's
# limits, the model's card (its size step, schedulers, guidance), the ids of your images,
# boards, models and LoRAs, and image-to-image's one step at least. Those answers are
# documented (a 422 naming the field, 402, 415); only these fields and statuses pass.
TASK_STATE = {"model", "scheduler", "width", "height", "samples", "guidance", "negative_prompt", "loras",
              "init_image", "board_id", "steps", "strength", "mask", "outpaint", "mask_blur", "inpaint_area",
              "inpaint_padding", "masked_content", "mask_invert", "initial_noise_multiplier",
              # a hires fix: its final size against your plan and the model's size step, the
              # enabled upscaler models, the card's schedulers and negative prompt, the prompt
              # rules, and what the fields above ask (an init image, a mask, the steps)
              "hires",
              # the guides: the card, the enabled guide models and preprocessors, your images,
              # the counts, start after end, and what an edit leaves out
              "control", "references", "edit"}
UPSCALE_STATE = {"image", "upscaler", "scale", "width", "height", "board_id"}
STATE_DEPENDENT = {  # (method, path): the fields a 422 may name
    ("POST", "/auth/reauth"): {"password"},  # not your password
    ("POST", "/me/password"): {"current_password", "new_password"},  # not yours; a well-known one
    ("POST", "/auth/register"): {"password"},  # a well-known password, or the username
    ("PATCH", "/me"): {"email"},  # another account's
    ("GET", "/images"): {"to"},  # not after `from`
    ("POST", "/estimate"): TASK_STATE | UPSCALE_STATE, ("POST", "/tasks"): TASK_STATE,
    ("POST", "/upscales"): UPSCALE_STATE,  # whose image, the upscaler enabled, the tier's cap
    ("POST", "/png-info"): {"image", "file"},  # bytes that are not a picture
    # a picture of yours or a readable one; the preprocessors installed, and their thresholds
    ("POST", "/control/detect"): {"image", "mask", "preprocessor", "threshold_a", "threshold_b"},
}
STATE_STATUSES = {("POST", "/tasks"): {402}, ("POST", "/upscales"): {402},  # not enough tokens left
                  ("POST", "/uploads"): {415},  # bytes that are not a PNG, JPEG or WebP picture
                  ("POST", "/png-info"): {415}}  # the same


def valid_requests_are_accepted(ctx, response, case):
    """positive_data_acceptance, but for the refusals of STATE_DEPENDENT and STATE_STATUSES."""
    key = (case.method.upper(), case.operation.path)
    if response.status_code in STATE_STATUSES.get(key, ()):
        return None
    if response.status_code == 422:
        fields = set((response.json().get("error") or {}).get("fields") or ())
        if fields and fields <= STATE_DEPENDENT.get(key, set()):
            return None
    return positive_data_acceptance(ctx, response, case)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance,
          negative_data_rejection,  # a request the document calls invalid is a 4xx
          valid_requests_are_accepted]  # and one it calls valid is not
EXAMPLES = 30  # requests per operation, valid and invalid ones mixed: about 40 s in all
# The fuzz user is neither staff nor in a class: a staff route or a class's answers it 403
# or 404 before reading the request, so a few requests show that as well as thirty would.
REFUSED_EXAMPLES = 6
REFUSED_PREFIXES = ("/admin/", "/classes/")

# Left out, because they would end the very credentials the run uses (the fuzzer reuses
# ids it has seen in answers, so it would find the token's own id): deleting the
# account, and revoking an API token. No operation of /api/v1 streams or long-polls.
EXCLUDED = {("DELETE", "/me"), ("DELETE", "/auth/tokens/{id}")}
OPERATIONS = [(method.upper(), path) for path, operations in document()["paths"].items()
              for method in operations if (method.upper(), path) not in EXCLUDED]


@pytest.fixture(scope="module")
def fuzz_user(idle_app) -> ApiUser:
    return ApiUser(idle_app.test_client(), f"fuzz{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def api_schema(idle_app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", idle_app)


def test_the_fuzzed_operations_are_every_documented_one_but_two(idle_app):
    served = idle_app.test_client().get("/api/v1/openapi.json").get_json()["paths"]
    assert len(OPERATIONS) + len(EXCLUDED) == sum(len(ops) for ops in served.values())


@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_answer_matches_the_document(api_schema, fuzz_user, method, path):
    operation = api_schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE))

    examples = REFUSED_EXAMPLES if path.startswith(REFUSED_PREFIXES) else EXAMPLES

    @given(case=cases)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def answers_as_documented(case):
        if case.headers and "Idempotency-Key" in case.headers:
            # A key used before returns that first task whatever the body says (API.md);
            # a fresh key per request keeps the body what the answer is about.
            case.headers["Idempotency-Key"] = uuid.uuid4().hex
        case.call_and_validate(headers=fuzz_user.headers, checks=CHECKS)

    answers_as_documented()


# --- what the fuzzer found, each pinned down ------------------------------------------------

def test_a_405_says_which_methods_are_allowed(fuzz_user):
    for path, operations in document()["paths"].items():
        if "{" in path:
            path = path.replace("{id}", "x")
        documented = {m.upper() for m in operations}
        method = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m not in documented)
        response = fuzz_user.client.open("/api/v1" + path, method=method, headers=fuzz_user.headers)
        assert response.status_code == 405, (method, path, response.status_code)
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert documented <= allowed and method not in allowed, (path, allowed)
        assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_patching_me_with_nothing_to_change_says_what_is_wrong(fuzz_user):
    for kwargs in ({}, {"json": {}}):
        response = fuzz_user.client.patch("/api/v1/me", headers=fuzz_user.headers, **kwargs)
        assert response.status_code == 422, response.get_json()
        error = response.get_json()["error"]
        assert error["field"] == "body" and "first_name" in error["message"]
    unknown = fuzz_user.client.patch("/api/v1/me", headers=fuzz_user.headers, json={"username": "x"})
    assert unknown.status_code == 422 and unknown.get_json()["error"]["field"] == "username"


def test_a_body_that_is_not_json_and_paging_out_of_range_are_documented():
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                assert {"400", "422"} <= set(operation["responses"]), (method, path)
            if any(p["name"] in ("offset", "limit") for p in operation.get("parameters", ())):
                assert "422" in operation["responses"], (method, path)
    task = document()["components"]["schemas"]["Task"]["properties"]
    assert "null" in task["strength"]["type"]  # a task without an init image has none


@pytest.mark.parametrize("field", ["scheduler", "model"])
def test_a_scheduler_or_model_that_is_not_text_is_a_422(fuzz_user, field):
    response = fuzz_user.post("/api/v1/estimate", json={"prompt": "x", field: {"a": 1}})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == field


def test_strength_out_of_range_is_a_422_even_without_an_init_image(fuzz_user):
    response = fuzz_user.post("/api/v1/estimate", json={"prompt": "x", "strength": 2})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "strength"


def test_flags_in_the_query_are_true_or_false(fuzz_user):
    for path in ("/api/v1/images?starred=", "/api/v1/images?public=maybe",
                 "/api/v1/showcase?include_hidden=2"):
        response = fuzz_user.get(path)
        assert response.status_code == 422, (path, response.get_json())
    assert fuzz_user.get("/api/v1/images?starred=false").status_code == 200


# --- what no generator makes, sent to every documented JSON body ------------------------------

JSON_BODIES = [(method.upper(), path) for path, operations in document()["paths"].items()
               for method, operation in operations.items()
               if "application/json" in operation.get("requestBody", {}).get("content", {})
               and (method.upper(), path) not in EXCLUDED]
ODD_BODIES = {"lone surrogate": ('{"%s": "a \\ud800"}', 422), "400-digit number": ('{"%s": ' + "9" * 400 + "}", 422),
              "1e400": ('{"%s": 1e400}', 422), "9.3e18": ('{"%s": 9.3e18}', 422), "nested 100,000 deep": ("[" * 100_000 + "]" * 100_000, 400)}


@pytest.mark.parametrize("method, path", JSON_BODIES, ids=[f"{m} {p}" for m, p in JSON_BODIES])
def test_odd_json_bodies_are_a_4xx_naming_the_field_or_bad_json(fuzz_user, method, path):
    schema = document()["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]
    field = next(iter(schema.get("properties") or {"body": None}))
    for name, (template, status) in ODD_BODIES.items():
        raw = template % field if "%s" in template else template
        response = fuzz_user.client.open("/api/v1" + path.replace("{id}", "x"), method=method, data=raw,
                                         headers={**fuzz_user.headers, "Content-Type": "application/json"})
        # (a staff route refuses this user before it reads the body: tests/integration/
        # test_odd_input.py sends the same to every route as staff)
        staff_only = path.startswith("/admin/") or (path.startswith("/showcase") and "report" not in path)
        allowed = (status, 404, 403) if staff_only else (status, 404)
        assert response.status_code in allowed, (name, response.status_code, response.get_json())
        if response.status_code == 422:
            assert response.get_json()["error"]["field"] == field, name
        elif response.status_code == 400:
            assert response.get_json()["error"]["code"] == "bad_json", name


def test_the_document_states_what_every_body_shares():
    """A field a schema does not name is ignored, but its value is checked all the same: the
    document says so (JsonValue), and says it as the server does, for floats too."""
    from services.core.args import MAX_JSON_INT, check_json
    from services.core.errors import ValidationError

    bounds = document()["components"]["schemas"]["JsonValue"]["anyOf"][1]
    assert (bounds["minimum"], bounds["maximum"]) == (-MAX_JSON_INT, MAX_JSON_INT)
    for number in (9.3e18, -9.3e18, MAX_JSON_INT + 1):
        with pytest.raises(ValidationError):
            check_json({"x": number})
    check_json({"x": 9.2e18})
    reauth = document()["paths"]["/auth/reauth"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert reauth["additionalProperties"] == {"$ref": "#/components/schemas/JsonValue"}


def test_times_at_the_ends_of_the_calendar_are_no_500(fuzz_user):
    for query in ("to=9999-12-31", "from=0001-01-01T00:00:00%2B05:00", "before=9999-12-31T23:59:59-05:00"):
        response = fuzz_user.get("/api/v1/images?" + query)
        assert response.status_code == 200, (query, response.status_code)
