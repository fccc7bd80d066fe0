"""The GPU figures a worker puts on its heartbeat (worker/metrics.py): summed over the
devices its process uses, and nothing at all without CUDA or before the process used
it (asking must not start CUDA from the heartbeat's thread)."""
from __future__ import annotations

import sys
from types import SimpleNamespace

from worker import metrics as worker_metrics


def metrics_fake_torch(available=True, initialized=True):
    props = {0: SimpleNamespace(total_memory=1000), 1: SimpleNamespace(total_memory=2000)}
    calls = []

    def initialise_check():
        calls.append("is_initialized")
        return initialized

    cuda = SimpleNamespace(is_available=lambda: available, is_initialized=initialise_check,
                           device_count=lambda: 2, memory_allocated=lambda d: 10 * (d + 1),
                           memory_reserved=lambda d: 100 * (d + 1), get_device_properties=props.__getitem__)
    return SimpleNamespace(cuda=cuda), calls


def test_metrics_heartbeat_sums_the_gpu_memory_of_every_device(monkeypatch):
    torch, _ = metrics_fake_torch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert worker_metrics.heartbeat_info() == {"gpu_allocated_bytes": 30, "gpu_reserved_bytes": 300,
                                               "gpu_total_bytes": 3000}


def test_metrics_heartbeat_says_nothing_without_cuda_or_before_it_is_used(monkeypatch):
    torch, calls = metrics_fake_torch(available=False)
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert worker_metrics.heartbeat_info() == {}
    torch, calls = metrics_fake_torch(initialized=False)
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert worker_metrics.heartbeat_info() == {}
    assert calls == ["is_initialized"]
    monkeypatch.delitem(sys.modules, "torch")
    assert worker_metrics.heartbeat_info() == {}
