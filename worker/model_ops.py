"""Convert and merge, the torch side (issue 26): `python -m worker.model_ops <job id>`.

The archive worker (worker/archive_jobs.py, run_model_op) starts this as a child process
for each convert or merge job, so torch never enters the archive worker, and the GPU
worker keeps serving generation meanwhile (a merge of two SDXL models takes minutes of
CPU; on the GPU worker's queue it would hold every user's tasks that long). Everything
loads on the CPU in float32 through the worker's own loader (worker/pipelines/load.py),
so whatever the worker can load, this can convert or merge.

- convert: load the single file, save_pretrained (safetensors) into a folder.
- merge: load A, B (and C); merge the denoiser's and the text encoders' state dicts
  tensor by tensor in float32 (InvokeAI merges the same parts): weighted_sum
  A·(1−α) + B·α, add_difference A + (B − C)·α; A's other parts (VAE, tokenizers,
  scheduler) are kept; save A's pipeline with the merged weights.

Either saves in the precision the job asks for (options.dtype): by default its source's
(a merge: A's), read from the safetensors headers, so an fp16 checkpoint stays fp16
rather than doubling in float32; "fp16", "bf16" or "fp32" choose one.

The job writes into <destination>.partial and renames it when complete; a failure
removes it and puts the reason on the job's row (services/generation/model_ops.py keeps
the row, its progress and its audit rows). Then a scan lists the new folder, disabled."""
from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path

import torch

from extensions import db
from services.generation import catalog
from services.generation import model_ops as ops
from worker import get_app
from worker.pipelines.errors import ModelLoadError, cause, without_paths
from worker.pipelines.load import load_pipeline

log = logging.getLogger("daydream.model_ops")

# The parts of a pipeline that are merged (the others are A's).
MERGED_PARTS = ("unet", "transformer", "text_encoder", "text_encoder_2", "text_encoder_3")
PROGRESS_EVERY = 0.5  # seconds between progress writes while merging


class OpError(Exception):
    """A reason for staff: why the job could not finish."""


def _load(row, job, step: int, steps: int, what: str):
    ops.progress(job, f"loading {what}", step, steps)
    config = get_app().config
    try:
        return load_pipeline(row.spec, Path(config["MODELS_PATH"]), device="cpu", vram="auto",
                             follow_links=config["MODELS_FOLLOW_LINKS"])
    except ModelLoadError as exc:
        raise OpError(f"{row.name} could not be loaded: {without_paths(str(exc))}") from exc


TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def cast(pipe, dtype: str) -> None:
    """Every torch part of the pipeline (denoiser, text encoders, VAE…) in `dtype`."""
    for part in pipe.components.values():
        if isinstance(part, torch.nn.Module):
            part.to(dtype=TORCH_DTYPES[dtype])


def _save(pipe, job, dtype: str) -> None:
    partial = ops.partial_path(job)
    if partial.exists():
        raise OpError(f"{partial.name} exists already (an earlier job's): remove it and try again")
    cast(pipe, dtype)
    pipe.save_pretrained(str(partial), safe_serialization=True)
    target = ops.destination_path(job)
    if target.exists():
        raise OpError(f"{job.destination} appeared in the models folder meanwhile: nothing was replaced")
    partial.rename(target)


def convert(job) -> None:
    row = catalog.row_of(job.source)
    if row is None:
        raise OpError(f"the model {job.source} is no longer in the catalog")
    pipe = _load(row, job, 0, 3, row.name)
    dtype = ops.save_dtype(job, row)
    ops.progress(job, f"saving ({dtype})", 1, 3, saved_dtype=dtype)
    _save(pipe, job, dtype)
    ops.progress(job, "scanning", 2, 3)


def merge_parts(pipes: list, method: str, alpha: float, on_tensor=None) -> int:
    """Merge the parts of pipes[1:] into pipes[0]'s, in place, tensor by tensor in float32.
    Returns the number of tensors merged; on_tensor(i, n) after each."""
    parts = [name for name in MERGED_PARTS if isinstance(getattr(pipes[0], name, None), torch.nn.Module)]
    dicts = []
    for name in parts:
        others = [getattr(pipe, name, None) for pipe in pipes[1:]]
        if any(not isinstance(other, torch.nn.Module) for other in others):
            raise OpError(f"the models do not all have a {name}")
        sds = [getattr(pipes[0], name).state_dict()] + [other.state_dict() for other in others]
        if any(sd.keys() != sds[0].keys() for sd in sds[1:]):
            raise OpError(f"the models' {name}s have different tensors: they are not the same architecture")
        for key, tensor in sds[0].items():
            bad = next((sd[key] for sd in sds[1:] if sd[key].shape != tensor.shape), None)
            if bad is not None:
                raise OpError(f"the models' {name}s differ at {key} ({list(tensor.shape)} against "
                              f"{list(bad.shape)}): they are not the same architecture")
        dicts.append(sds)
    total, done, seen = sum(len(sds[0]) for sds in dicts), 0, set()
    with torch.no_grad():
        for sds in dicts:
            for key, a in sds[0].items():
                if a.is_floating_point() and a.data_ptr() not in seen:  # (a tied tensor: once)
                    seen.add(a.data_ptr())
                    b = sds[1][key].float()
                    if method == "add_difference":
                        merged = a.float() + (b - sds[2][key].float()) * alpha
                    else:
                        merged = a.float() * (1 - alpha) + b * alpha
                    a.copy_(merged.to(a.dtype))  # (a state dict's tensors are the part's own)
                done += 1
                if on_tensor:
                    on_tensor(done, total)
    return total


def merge(job) -> None:
    options = job.options or {}
    ids, method, alpha = options.get("models") or [], options.get("method"), float(options.get("alpha", 0.5))
    rows = [catalog.row_of(model_id) for model_id in ids]
    missing = [model_id for model_id, row in zip(ids, rows) if row is None]
    if missing:
        raise OpError(f"the model {missing[0]} is no longer in the catalog")
    loads = len(rows)
    # Steps: one a load, then one a tensor (known once loaded), then saving.
    pipes = [_load(row, job, i, loads + 2, f"{'ABC'[i]}: {row.name}") for i, row in enumerate(rows)]
    last = [0.0]

    def on_tensor(i: int, n: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY or i == n:
            last[0] = now
            ops.progress(job, f"merging tensor {i}/{n}", loads + i, loads + n + 1)

    total = merge_parts(pipes, method, alpha, on_tensor)
    dtype = ops.save_dtype(job, rows[0])
    ops.progress(job, f"saving ({dtype})", loads + total, loads + total + 1, saved_dtype=dtype)
    _save(pipes[0], job, dtype)
    ops.progress(job, "scanning", loads + total, loads + total + 1)


def run(job_id: str) -> str:
    """Run one convert or merge job; its row says how it went."""
    job = ops.get_job(job_id)
    if job.state != "queued" or not ops.begin(job, runner()):
        return f"job {job_id} is {ops.model_jobs.state_of(job_id)}: nothing to do"
    try:
        (convert if job.kind == ops.CONVERT else merge)(job)
        ops.done(job)
    except ops.Cancelled:
        ops.fail(job, None)
    except OpError as exc:
        ops.fail(job, str(exc))
    except Exception as exc:  # the reason for staff, without the server's paths
        log.exception("model job %s failed", job_id)
        ops.fail(job, f"the {job.kind} failed: {without_paths(cause(exc))}")
    return f"job {job_id} {ops.model_jobs.state_of(job_id)}"


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if len(argv) != 2:
        print("usage: python -m worker.model_ops <job id>", file=sys.stderr)
        return 2
    with get_app().app_context():
        try:
            log.info(run(argv[1]))
            # Then the jobs queued meanwhile: their own start would cost as much again
            # (torch and diffusers), and their RQ jobs find them taken.
            while (more := ops.next_queued()) is not None:
                log.info(run(more))
        finally:
            db.session.remove()
    return 0


def runner() -> str:
    """This process, as the archive worker that started it knows it."""
    return f"{socket.gethostname()}:{os.getpid()}"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
