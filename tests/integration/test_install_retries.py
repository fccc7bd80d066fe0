"""How a model install's download meets a failing server (services/generation/downloads.py),
against the real HTTPS server the install tests use (tests/helpers.py ModelFileServer): a
cut connection, 500/502/503/504 and 429 are tried again after a wait (the server's
Retry-After up to the longest wait, else a doubling backoff), taken up with Range from
what arrived, at most `retries` more tries in a row; 404, 403 and a refused address are
not tried again. The waits are recorded, not slept."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from services.generation import downloads
from services.generation.downloads import DownloadError, Settings, download, fetch_json
from tests.helpers import ModelFileServer

DATA = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture(scope="module")
def retry_server(tmp_path_factory):
    return ModelFileServer(tmp_path_factory.mktemp("retry-files"))


@pytest.fixture
def tries(retry_server):
    """(settings, record): waits and reasons go to record["retries"], not to sleep."""
    record = {"retries": [], "paused": []}
    settings = Settings(allow=frozenset({"127.0.0.1"}), ca_bundle=str(retry_server.ca), retries=3, backoff=0.25,
                        max_wait=5.0, pause=record["paused"].append,
                        on_retry=lambda wait, why: record["retries"].append((wait, why)))
    retry_server.requests.clear()
    return settings, record


def asked(retry_server, path):
    return [ranges for p, ranges in retry_server.requests if p == path]


def test_a_cut_then_503s_are_tried_again_and_resumed_with_range_from_what_arrived(retry_server, tries, tmp_path):
    settings, record = tries
    path = "/files/busy.safetensors"
    retry_server.files[path] = DATA
    retry_server.cut_once[path] = len(DATA) // 3

    def on_retry(wait, why):  # once bytes have arrived, the server gets busy for two tries
        if not record["retries"]:
            retry_server.fail_next[path] = [503, (503, {"Retry-After": "1"})]
        record["retries"].append((wait, why))

    settings.on_retry = on_retry
    part = tmp_path / "busy.part"
    size, digest = download(retry_server.url(path), part, settings)
    assert (size, digest) == (len(DATA), hashlib.sha256(DATA).hexdigest()) and part.read_bytes() == DATA
    resume = f"bytes={len(DATA) // 3}-"
    assert asked(retry_server, path) == [None, resume, resume, resume]
    why = [w for _wait, w in record["retries"]]
    assert why[0].startswith("a connection failure") and why[1:] == ["503", "503"]
    # The backoff doubles with each failure in a row; the server's Retry-After wins.
    assert record["paused"] == [0.25, 0.5, 1.0]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_are_tried_again(retry_server, tries, tmp_path, status):
    settings, record = tries
    path = f"/files/error-{status}.safetensors"
    retry_server.files[path] = DATA
    retry_server.fail_next[path] = [status]
    assert download(retry_server.url(path), tmp_path / "e.part", settings)[0] == len(DATA)
    assert [why for _w, why in record["retries"]] == [str(status)] and len(asked(retry_server, path)) == 2


def test_a_429_waits_as_long_as_asked_up_to_the_longest_wait(retry_server, tries, tmp_path):
    settings, record = tries
    path = "/files/limited.safetensors"
    retry_server.files[path] = DATA
    retry_server.fail_next[path] = [(429, {"Retry-After": "3600"}), (429, {"Retry-After": "2"}), 429]
    assert download(retry_server.url(path), tmp_path / "l.part", settings)[0] == len(DATA)
    assert record["retries"] == [(5.0, "429"), (2.0, "429"), (1.0, "429")]  # (the last: the backoff, 0.25·2²)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert downloads.retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert downloads.retry_after((now - timedelta(minutes=1)).strftime("%a, %d %b %Y %H:%M:%S GMT"), now) == 0.0
    assert downloads.retry_after("soon") is None and downloads.retry_after(None) is None


def test_a_server_that_stays_busy_fails_after_four_tries_and_keeps_the_part(retry_server, tries, tmp_path):
    settings, record = tries
    path = "/files/down.safetensors"
    retry_server.fail_next[path] = [503] * 10
    with pytest.raises(DownloadError, match=r"answered 503 \(Service Unavailable\) 4 times in a row") as caught:
        download(retry_server.url(path), tmp_path / "d.part", settings)
    assert caught.value.keep_part and len(asked(retry_server, path)) == 4 and len(record["retries"]) == 3
    retry_server.fail_next.pop(path)


@pytest.mark.parametrize("path, status, says", [
    ("/files/missing.safetensors", 404, "not found"),
    ("/files/private.safetensors", 403, "needs an access token"),
    ("/files/unauthorized.safetensors", 401, "needs an access token"),
])
def test_final_answers_are_not_tried_again(retry_server, tries, tmp_path, path, status, says):
    settings, record = tries
    retry_server.fail_next[path] = [status]
    with pytest.raises(DownloadError, match=says):
        download(retry_server.url(path), tmp_path / "m.part", settings)
    assert len(asked(retry_server, path)) == 1 and record["retries"] == []


def test_a_refused_address_is_not_tried_again(retry_server, tries, tmp_path):
    settings, record = tries
    retry_server.redirects["/files/meta.safetensors"] = "https://169.254.169.254/latest/meta.safetensors"
    with pytest.raises(DownloadError, match="link-local"):
        download(retry_server.url("/files/meta.safetensors"), tmp_path / "r.part", settings)
    assert len(asked(retry_server, "/files/meta.safetensors")) == 1 and record["retries"] == []


def test_the_hubs_file_list_is_asked_again_after_a_503(retry_server, tries, tmp_path):
    settings, record = tries
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    retry_server.repos["tiny/retry-listing"] = folder
    path = "/api/models/tiny/retry-listing/revision/main"
    retry_server.fail_next[path] = [502, 503]
    listing = fetch_json(retry_server.url(path + "?blobs=true"), settings)
    assert [s["rfilename"] for s in listing["siblings"]] == ["model_index.json"]
    assert [why for _w, why in record["retries"]] == ["502", "503"] and len(asked(retry_server, path)) == 3
