"""The SSRF guard of model installs (services/generation/fetch_guard.py): only https, only
public addresses (however the host is spelled, and whatever a name resolves to), unless
the host is on DAYDREAM_INSTALL_ALLOW_HOSTS; and what an install request may name
(services/generation/installs.py: parse_request, choose_files). No network: names
resolve through a table."""
from __future__ import annotations

import pytest

from services.generation import fetch_guard
from services.generation.fetch_guard import Refused, check_url

TABLE = {"models.example": ["93.184.215.14"], "inside.example": ["10.1.2.3"],
         "metadata.example": ["169.254.169.254"], "mixed.example": ["93.184.215.14", "192.168.1.9"],
         "v6.example": ["2606:4700::6810:84e5"], "mapped.example": ["::ffff:127.0.0.1"]}


def table(host, port):
    if host not in TABLE:
        raise OSError("name not known")
    return TABLE[host]


@pytest.mark.parametrize("url, why", [
    ("https://127.0.0.1/m.safetensors", "loopback"),
    ("https://10.0.0.7/m.safetensors", "private"),
    ("https://192.168.1.1/m.safetensors", "private"),
    ("https://172.16.5.4/m.safetensors", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://[fe80::1]/m.safetensors", "link-local"),
    ("https://[::1]/m.safetensors", "loopback"),
    ("https://[fd00::5]/m.safetensors", "private"),
    ("https://[::ffff:10.0.0.1]/m.safetensors", "inside an IPv6 address"),
    ("https://[::ffff:169.254.169.254]/m.safetensors", "link-local"),
    ("https://224.0.0.1/m.safetensors", "multicast"),
    ("https://240.0.0.1/m.safetensors", "reserved"),
    ("https://0.0.0.0/m.safetensors", "unspecified"),
    ("https://100.64.0.1/m.safetensors", "carrier-grade"),
    ("https://2130706433/m.safetensors", "unusual way"),
    ("https://0177.0.0.1/m.safetensors", "unusual way"),
    ("https://0x7f.0.0.1/m.safetensors", "unusual way"),
    ("https://127.1/m.safetensors", "unusual way"),
    ("https://inside.example/m.safetensors", "10.1.2.3"),
    ("https://metadata.example/m.safetensors", "link-local"),
    ("https://mixed.example/m.safetensors", "192.168.1.9"),
    ("https://mapped.example/m.safetensors", "loopback"),
    ("http://models.example/m.safetensors", "only https"),
    ("ftp://models.example/m.safetensors", "only https"),
    ("https://user:pw@models.example/m.safetensors", "password"),
    ("https://nowhere.example/m.safetensors", "could not be resolved"),
])
def test_the_guard_refuses_addresses_that_are_not_public(url, why):
    with pytest.raises(Refused, match=why):
        check_url(url, resolve=table)


def test_a_public_host_is_pinned_to_the_address_that_was_checked():
    target = check_url("https://models.example:8443/a/b.safetensors?x=1", resolve=table)
    assert (target.host, target.port, target.path, target.address) == (
        "models.example", 8443, "/a/b.safetensors?x=1", "93.184.215.14")
    assert check_url("https://v6.example/m.gguf", resolve=table).address == "2606:4700::6810:84e5"
    assert check_url("https://8.8.8.8/m.gguf", resolve=table).address == "8.8.8.8"


def test_the_allow_list_lets_named_hosts_through_and_nothing_else():
    allow = fetch_guard.allow_list(" 127.0.0.1, Inside.Example. ,")
    assert allow == {"127.0.0.1", "inside.example"}
    assert check_url("https://127.0.0.1:9000/m.safetensors", allow, resolve=table).address == "127.0.0.1"
    assert check_url("https://inside.example/m.safetensors", allow, resolve=table).address == "10.1.2.3"
    # Another spelling of an allowed address, or another private host, is not on the list.
    for url in ("https://2130706433/m.safetensors", "https://127.0.0.2/m.safetensors",
                "https://[::ffff:127.0.0.1]/m.safetensors", "https://metadata.example/m"):
        with pytest.raises(Refused):
            check_url(url, allow, resolve=table)


def test_without_a_resolver_only_the_form_and_a_written_address_are_checked():
    assert check_url("https://inside.example/m.safetensors", resolve=None).address == ""
    with pytest.raises(Refused, match="link-local"):
        check_url("https://169.254.169.254/m.safetensors", resolve=None)


def test_why_not_public_says_what_an_address_is():
    assert fetch_guard.why_not_public("93.184.215.14") is None
    assert "loopback" in fetch_guard.why_not_public("127.0.0.1")
    assert "private" in fetch_guard.why_not_public("fc00::1")
    assert fetch_guard.why_not_public("not-an-ip") == "not an IP address"


def test_a_repo_install_takes_the_components_safetensors_of_its_variant_and_never_a_pickle():
    from services.generation.installs import choose_files

    names = ["model_index.json", "README.md", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
             "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.bin",
             "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/pytorch_model.bin",
             "tokenizer/vocab.json", "tokenizer/merges.txt", "scheduler/scheduler_config.json",
             "vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors",
             "vae/flax_model.msgpack", "unet/model.onnx", "v1-5-pruned.ckpt", "../escape/x.json"]
    siblings = [{"rfilename": n, "size": 1} for n in names]
    plain = [s["rfilename"] for s in choose_files(siblings, {})]
    assert plain == sorted(["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                            "text_encoder/config.json", "text_encoder/model.safetensors", "tokenizer/vocab.json",
                            "tokenizer/merges.txt", "scheduler/scheduler_config.json",
                            "vae/diffusion_pytorch_model.safetensors"])
    fp16 = [s["rfilename"] for s in choose_files(siblings, {"variant": "fp16"})]
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in fp16
    assert "unet/diffusion_pytorch_model.safetensors" not in fp16
    assert "text_encoder/model.safetensors" in fp16  # no fp16 file there: the plain one
    picked = [s["rfilename"] for s in choose_files(siblings, {"files": ["*.ckpt", "unet/*.safetensors"]})]
    assert picked == ["unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors"]


def test_the_header_check_refuses_a_cut_safetensors_file_and_a_file_that_is_not_gguf(tmp_path):
    import json
    import struct

    from services.generation.downloads import DownloadError
    from services.generation.installs import check_header

    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    whole = tmp_path / "whole.safetensors"
    whole.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    check_header(whole, whole.name)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(whole.read_bytes()[:-4])
    with pytest.raises(DownloadError, match="not a whole safetensors file"):
        check_header(cut, cut.name)
    pickle = tmp_path / "renamed.safetensors"
    pickle.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    with pytest.raises(DownloadError, match="not a safetensors file"):
        check_header(pickle, pickle.name)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + struct.pack("<I", 3) + b"\0" * 16)
    check_header(gguf, gguf.name)
    gguf.write_bytes(b"GGML" + struct.pack("<I", 3))
    with pytest.raises(DownloadError, match="not a GGUF file"):
        check_header(gguf, gguf.name)
