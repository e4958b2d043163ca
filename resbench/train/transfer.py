"""Transfer learning: initialise from a checkpoint, replace the head, freeze and unfreeze stages.

Parts are the compiled model's own grouping (``ResNet.parts()``: ``stem``,
``layer1``..``layerN``, ``head``) or any of its top-level modules by name (torchvision names:
``conv1``, ``bn1``, ``fc``).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from resbench.errors import SpecError, UserError, unknown
from resbench.spec.recipe import TransferConfig
from resbench.store import trial_weights

if TYPE_CHECKING:
    from resbench.compile import ResNet

_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / torch.compile wrappers


def load_checkpoint_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a torchvision weights file, one of ours, a trial checkpoint, or a stored
    trial: its record file (``results/<experiment>/trials/<key>.json``) names its final weights."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("checkpoint file not found", path="recipe.transfer.init", value=str(path))
    if path.suffix == ".json":
        path = trial_weights(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt file or one that needs unsafe unpickling
        raise UserError(f"{path}: cannot load as a weights-only checkpoint: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("loop"), dict):
        data = data["loop"]  # a trial checkpoint (see resbench.train.trial): loop state first
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise UserError(f"{path}: not a state_dict (a mapping of names to tensors)")
    out = {}
    for name, tensor in data.items():
        for prefix in _PREFIXES:
            name = name.removeprefix(prefix)
        out[name] = tensor
    return out


def initialise(model: ResNet, cfg: TransferConfig) -> list[str]:
    """Load ``cfg.init`` into ``model``; with ``replace_head`` a head of another shape is skipped.

    Returns the names of the parameters left at their fresh initialisation (the new head).
    Any other missing, unexpected or mis-shaped tensor is an error naming it.
    """
    if cfg.init is None:
        return []
    weights = load_checkpoint_weights(cfg.init)
    own = model.state_dict()
    head = set(_part_names(model, "head"))
    fresh = []
    for name, tensor in own.items():
        src = weights.get(name)
        if src is not None and src.shape != tensor.shape and cfg.replace_head \
                and name.split(".")[0] in head:
            fresh.append(name)
            del weights[name]
    missing = [n for n in own if n not in weights and n not in fresh]
    unexpected = [n for n in weights if n not in own]
    mismatched = [f"{n} {tuple(weights[n].shape)} vs {tuple(own[n].shape)}"
                  for n in own if n in weights and weights[n].shape != own[n].shape]
    problems = [f"{label}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}"
                for label, items in (("missing", missing), ("unexpected", unexpected),
                                     ("shape mismatch", mismatched)) if items]
    if problems:
        raise UserError(f"{cfg.init}: checkpoint does not fit the model ({'; '.join(problems)})")
    model.load_state_dict(weights, strict=False)
    return fresh


def _part_names(model: ResNet, part: str) -> list[str]:
    """Top-level module names that make up ``part`` (a group of ``model.parts()`` or a name)."""
    name_of = {id(module): name for name, module in model.named_children()}
    groups = {group: [name_of[id(m)] for m in modules] for group, modules in model.parts()}
    if part in groups:
        return groups[part]
    if part in name_of.values():
        return [part]
    raise unknown("part of the model", part, list(dict.fromkeys([*groups, *name_of.values()])),
                  path="recipe.transfer.freeze")


def parts(model: ResNet, names: tuple[str, ...] | list[str]) -> list[nn.Module]:
    """The top-level modules named by ``names`` (aliases expanded)."""
    modules = dict(model.named_children())
    return [modules[n] for part in names for n in _part_names(model, part)]


class FreezeSchedule:
    """Freezes ``cfg.freeze`` at the start and unfreezes each part at its ``cfg.unfreeze`` epoch.

    A frozen part has ``requires_grad=False`` and its norm layers stay in eval mode, so neither
    its weights nor its running statistics change.
    """

    def __init__(self, model: ResNet, cfg: TransferConfig) -> None:
        self.model = model
        self.cfg = cfg
        for part in cfg.freeze:
            _part_names(model, part)  # fail early on an unknown name

    def frozen_at(self, epoch: int) -> list[str]:
        """The parts frozen during (1-based) ``epoch``."""
        return [p for p in self.cfg.freeze if self.cfg.unfreeze.get(p, epoch + 1) > epoch]

    def apply(self, epoch: int) -> list[nn.Module]:
        """Set ``requires_grad`` for ``epoch``; returns the frozen modules (to keep in eval mode)."""
        frozen = parts(self.model, self.frozen_at(epoch))
        frozen_ids = {id(p) for m in frozen for p in m.parameters()}
        for p in self.model.parameters():
            p.requires_grad_(id(p) not in frozen_ids)
        return frozen
