"""The analyses a recipe asks for, run on one trial: its trained net, its net at initialisation
(rebuilt with the trial's seed) and its data."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from resbench.analysis._modes import batch_statistics
from resbench.analysis.landscape import landscape
from resbench.analysis.lesion import lesion_study
from resbench.analysis.shatter import line_between, shattered_gradients
from resbench.analysis.signal import signal_propagation
from resbench.data import DataSplits, make_loader
from resbench.spec.recipe import AnalysesConfig
from resbench.store import Analyses

EVAL_BATCH = 512
CALIBRATION_BATCH = 128  # training images whose statistics the batch norms hold for ``shatter``


def _batches(dataset, device: torch.device, batch_size: int = EVAL_BATCH) -> list:
    loader = make_loader(dataset, batch_size, train=False, augment=None, device=device, seed=0)
    return [(x, y) for x, y in loader]


def _first(dataset, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples of ``dataset`` (fewer if it is smaller), as one batch."""
    x, y = next(iter(make_loader(dataset, min(n, len(dataset)), train=False, augment=None,
                                 device=device, seed=0)))
    return x, y


@torch.no_grad()
def accuracy(model: nn.Module, batches: list) -> float:
    """Top-1 accuracy of ``model`` in eval mode over ``batches``."""
    model.eval()
    correct = seen = 0
    for x, y in batches:
        correct += int((model(x).argmax(1) == y).sum())
        seen += int(y.shape[0])
    return correct / max(seen, 1)


def run_analyses(cfg: AnalysesConfig, trained: nn.Module | None,
                 initial: Callable[[], nn.Module], data: DataSplits, device: torch.device,
                 only: tuple[str, ...] | None = None) -> Analyses:
    """Run the analyses of ``cfg`` (those in ``only``, when given). ``trained`` is the trained
    net (lesion and landscape need it); ``initial()`` returns the net as the trial initialised
    it (a fresh one each call)."""
    names = [n for n in cfg.names if only is None or n in only]
    if trained is None and {"lesion", "landscape"} & set(names):
        raise ValueError("the lesion study and the loss landscape need the trained net")
    out = Analyses()
    if trained is not None:
        trained = trained.to(device)
    if "lesion" in names:
        opts = cfg.lesion
        val = _batches(data.val, device)
        out.lesion = lesion_study(trained, lambda m: accuracy(m, val), draws=opts.draws,
                                  max_k=opts.max_k, seed=opts.seed)
        out.lesion.val_size = len(data.val)
    if "signal" in names:
        x, _ = _first(data.train, cfg.signal.examples, device)
        out.signal = signal_propagation(initial().to(device), x)
    if "shatter" in names:
        opts = cfg.shatter
        x, _ = _first(data.train, CALIBRATION_BATCH, device)  # the line runs from x[0] to x[1]
        out.shatter = shattered_gradients(initial().to(device),
                                          line_between(x[0], x[1], opts.points), x, seed=opts.seed)
    if "landscape" in names:
        opts = cfg.landscape
        x, y = _first(data.train, opts.examples, device)
        criterion = nn.CrossEntropyLoss()

        def loss_fn(model: nn.Module) -> tuple[float, float]:
            logits = batch_statistics(model)(x)
            return float(criterion(logits, y)), float((logits.argmax(1) == y).float().mean())

        start = {k: v.detach().clone() for k, v in initial().to(device).state_dict().items()}
        out.landscape = landscape(trained, start, loss_fn, points=opts.points,
                                  alpha_min=opts.alpha_min, alpha_max=opts.alpha_max,
                                  grid=opts.grid, radius=opts.radius, seed=opts.seed,
                                  examples=int(x.shape[0]))
    return out
