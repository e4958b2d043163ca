"""CUDA-only checks (marked ``cuda``: skipped without a GPU; benchmarks/gpu_check.py runs them):
the compiled net on the device, a whole trial with bf16 autocast, channels_last and
torch.compile, the peak-memory figure a GPU trial records, and data batches kept on the device."""
from __future__ import annotations

import pytest

from resbench.spec import parse_spec
from resbench.spec.recipe import parse_recipe

pytestmark = pytest.mark.cuda

SPEC = {"name": "tiny", "stem": {"kind": "cifar", "width": 8}, "shortcut": "projection",
        "stages": [{"depth": 1, "width": 8, "stride": 1}, {"depth": 1, "width": 16, "stride": 2}]}
DATA = {"name": "synthetic", "image_size": 16, "options": {"count": 256, "num_classes": 4}}


def recipe(**fields):
    return parse_recipe({"epochs": 2, "batch_size": 64, "grad_probe_steps": [],
                         "latency_batch": 8, "data": DATA, **fields})


def test_the_compiled_net_runs_on_the_gpu_and_matches_the_cpu():
    import torch

    from resbench.compile import build

    spec = parse_spec(SPEC)
    torch.manual_seed(0)
    cpu = build(spec).eval()
    gpu = build(spec, device="cuda").eval()
    gpu.load_state_dict(cpu.state_dict())
    assert all(p.device.type == "cuda" for p in gpu.parameters())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("precision, channels_last, compile", [
    ("fp32", False, False), ("bf16", True, False), ("bf16", True, True), ("fp16", False, False)])
def test_a_trial_trains_on_the_gpu(precision, channels_last, compile):
    from resbench.train.trial import run_trial

    r = recipe(device="cuda", precision=precision, channels_last=channels_last, compile=compile)
    record = run_trial(parse_spec(SPEC), r, 0)
    assert record.status == "completed", (record.reason, record.traceback)
    assert record.metrics.peak_memory_kind == "cuda_max_allocated"
    assert 0 < record.metrics.peak_memory_bytes < 2**31
    assert len(record.curves) == 2 and record.curves[-1].train_loss < record.curves[0].train_loss * 2
    cpu = run_trial(parse_spec(SPEC), recipe(device="cpu", epochs=1), 0)
    assert record.metrics.params == cpu.metrics.params  # the same net, wherever it runs


def test_in_memory_batches_live_on_the_gpu():
    import torch

    from resbench.data import make_loader
    from resbench.train.trial import load_data

    data = load_data(recipe().data)
    loader = make_loader(data.train, 32, train=True, augment=recipe().augment, device="cuda",
                         seed=0, channels_last=True)
    x, y = next(iter(loader))
    assert x.device.type == "cuda" and y.device.type == "cuda"
    assert x.is_contiguous(memory_format=torch.channels_last)
