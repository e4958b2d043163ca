"""One trial: train and evaluate one spec under one recipe and seed, and return its record.

A trial never raises for what happens in training: a NaN/inf loss ends it as ``diverged``, an
exception or out-of-memory as ``failed`` with the reason, a reporter's stop as ``pruned``. Only
bad input (a data set that does not exist) and KeyboardInterrupt escape.
"""
from __future__ import annotations

import os
import random
import statistics
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from resbench.data import DataSplits, load_dataset, make_loader
from resbench.spec import Spec
from resbench.spec.recipe import DataConfig, Recipe
from resbench.store import (
    CurveRow,
    DataInfo,
    GradFlowRow,
    Metrics,
    TrialRecord,
    now_iso,
    trial_key,
)
from resbench.train.loop import Diverged, TrainLoop, resolve_device
from resbench.train.metrics import latency_ms, peak_memory, reset_peak_memory
from resbench.train.transfer import FreezeSchedule, initialise

Reporter = Callable[[int, dict[str, float]], bool]
CHECKPOINT = "last.pt"


def load_data(cfg: DataConfig) -> DataSplits:
    """The recipe's data set, split with a fixed seed so that every trial sees the same split."""
    return load_dataset(cfg.name, root=cfg.root, image_size=cfg.image_size, seed=0,
                        val_fraction=cfg.val_fraction, download=cfg.download, limit=cfg.limit,
                        options=cfg.options)


def data_meta(data: DataSplits) -> DataInfo:
    """What a record says about its data."""
    return DataInfo(dataset=data.name, num_classes=data.num_classes, in_channels=data.in_channels,
                    image_size=data.image_size, train_size=len(data.train),
                    val_size=len(data.val))


def adapt_spec(spec: Spec, data: DataSplits) -> Spec:
    """The spec with its input channels, classes and input size taken from the data.

    A spec's stem and head adapt to the data it trains on (the CIFAR specs run on 1-channel
    digits); the adapted spec is what the record stores and the trial key hashes.
    """
    return spec.model_copy(update={"input_channels": data.in_channels,
                                   "num_classes": data.num_classes,
                                   "input_size": data.image_size})


def trial_identity(spec: Spec, recipe: Recipe, seed: int, data: DataSplits) -> tuple[Spec, str]:
    """The adapted spec and the trial's content key (canonical spec + trial recipe + seed)."""
    adapted = adapt_spec(spec, data)
    return adapted, trial_key(adapted.canonical(), recipe.trial_dict(), seed)


def run_trial(spec: Spec, recipe: Recipe, seed: int, *, data: DataSplits | None = None,
              reporter: Reporter | None = None, checkpoint_dir: str | Path | None = None,
              experiment: str = "", cost: Mapping[str, int] | None = None) -> TrialRecord:
    """Train ``spec`` under ``recipe`` with ``seed``; its record (unsaved: the caller stores it).

    With ``checkpoint_dir``, the state after each epoch is saved there and a later call resumes
    from it. ``reporter(epoch, metrics)`` is called after each epoch; True stops as pruned.
    ``cost`` (``params`` and ``macs`` of the adapted spec at the data's size) saves a second
    count when the caller has made it (a search's candidate); otherwise it is counted here.
    """
    data = data if data is not None else load_data(recipe.data)
    adapted, key = trial_identity(spec, recipe, seed, data)
    run = _Run(adapted, recipe, seed, data, key, checkpoint_dir)
    if cost is not None:
        run.cost = {"params": int(cost["params"]), "macs": int(cost["macs"])}
    status, reason, trace = "completed", None, None
    try:
        run.execute(reporter)
        if run.stopped is not None:
            status, reason = "pruned", run.stopped
    except Diverged as e:
        status, reason = "diverged", str(e)
    except (torch.OutOfMemoryError, MemoryError) as e:
        status, reason = "failed", f"out of memory: {_first_line(e)}"
        trace = traceback.format_exc(limit=8)
    except Exception as e:
        oom = "can't allocate memory" in str(e) or "out of memory" in str(e).lower()
        prefix = "out of memory: " if oom else f"{type(e).__name__}: "
        status, reason = "failed", prefix + _first_line(e)
        trace = traceback.format_exc(limit=8)
    finally:
        run.release()
    record = TrialRecord(
        key=key, experiment=experiment, spec_name=spec.name, spec_key=adapted.key(),
        spec={**adapted.canonical(), "name": spec.name}, summary=adapted.summary_fields(),
        recipe=recipe.trial_dict(), seed=seed, data=data_meta(data),
        status=status, reason=reason, metrics=Metrics(**run.metrics()),
        curves=[CurveRow(**row) for row in run.curves],
        grad_flow=[GradFlowRow(**row) for row in run.probe_rows()],
        started_at=run.started_at, finished_at=now_iso())
    if run.resumed_from is not None:
        record.resumed_from_epoch = run.resumed_from
    if trace is not None:
        record.traceback = trace
    return record


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class _Run:
    """The mutable state of one trial while it runs (kept out of run_trial for readability)."""

    def __init__(self, spec: Spec, recipe: Recipe, seed: int, data: DataSplits, key: str,
                 checkpoint_dir: str | Path | None) -> None:
        self.spec, self.recipe, self.seed, self.data, self.key = spec, recipe, seed, data, key
        self.checkpoint = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
        self.curves: list[dict[str, float]] = []
        self.loop: TrainLoop | None = None
        self.train: Any = None  # the training loader, whose generator a checkpoint saves
        self.device: torch.device | None = None
        self.cost: dict[str, int] = {}
        self.extra: dict[str, Any] = {}
        self.earlier = 0.0  # wall seconds spent by interrupted runs of this trial
        self.start = time.perf_counter()
        self.started_at = now_iso()  # of the first run, when resumed
        self.resumed_from: int | None = None  # the checkpoint's epoch, when resumed
        self.stopped: str | None = None  # why the reporter stopped it, if it did

    def execute(self, reporter: Reporter | None) -> None:
        from resbench.compile import build, cost

        recipe, data = self.recipe, self.data
        self.device = resolve_device(recipe.device)
        reset_peak_memory(self.device)
        if not self.cost:
            c = cost(self.spec, input_size=data.image_size)
            self.cost = {"params": int(c.params), "macs": int(c.macs)}
        _seed_everything(self.seed)
        model = build(self.spec)
        initialise(model, recipe.transfer)
        freeze = FreezeSchedule(model, recipe.transfer)
        self.train = train = make_loader(data.train, recipe.batch_size, train=True,
                                         augment=recipe.augment, device=self.device,
                                         seed=self.seed, channels_last=recipe.channels_last)
        val = make_loader(data.val, recipe.eval_batch_size, train=False, augment=None,
                          device=self.device, seed=0, channels_last=recipe.channels_last)
        self.loop = loop = TrainLoop(model, recipe, self.device, len(train), model.blocks())
        first_epoch = self._resume() + 1
        for epoch in range(first_epoch, recipe.epochs + 1):
            loop.frozen_eval = freeze.apply(epoch)
            start = time.perf_counter()
            stats = loop.train_epoch(train)
            stats.update(loop.evaluate(val))
            epoch_time = time.perf_counter() - start
            row = {"epoch": epoch, "train_loss": stats["train_loss"], "train_acc": stats["train_acc"],
                   "val_loss": stats["val_loss"], "val_acc": stats["val_acc"],
                   "images_per_s": stats["images_per_s"], "train_time_s": stats["train_time_s"],
                   "epoch_time_s": epoch_time, "lr": stats["lr"]}
            self.curves.append(row)
            self._save(epoch)
            if reporter is not None and reporter(epoch, dict(row)):
                self.stopped = f"stopped by the reporter after epoch {epoch}"
                break
        self._measure_latency(model)

    def _measure_latency(self, model: torch.nn.Module) -> None:
        shape = (self.data.in_channels, self.data.image_size, self.data.image_size)
        forward = self.loop.forward if self.loop is not None else model
        big = self.recipe.latency_batch
        for label, batch in (("latency_ms_b1", 1), ("latency_ms_bn", big)):
            x = torch.randn(batch, *shape, device=self.device)
            if self.recipe.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self.extra[label] = latency_ms(forward, x)
        self.extra["latency_batch"] = big

    # checkpoints ------------------------------------------------------------------------------
    def _resume(self) -> int:
        """Restore the last saved epoch of this same trial, if any; returns that epoch (or 0)."""
        if self.checkpoint is None or not self.checkpoint.is_file() or self.loop is None:
            return 0
        # On the CPU: RNG states must stay CPU byte tensors; load_state_dict moves the rest.
        state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        if state.get("key") != self.key:
            return 0  # another trial's checkpoint: start afresh (it will be overwritten)
        self.loop.load_state_dict(state["loop"])
        generator = _loader_generator(self.train)
        if generator is not None and "loader_rng" in state:
            generator.set_state(state["loader_rng"])
        random.setstate(_as_random_state(state["python_rng"]))
        self.curves = list(state["curves"])
        self.earlier = float(state["elapsed"])
        self.started_at = state["started_at"]
        self.resumed_from = int(state["epoch"])
        return int(state["epoch"])

    def _save(self, epoch: int) -> None:
        if self.checkpoint is None or self.loop is None:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        state = {"key": self.key, "epoch": epoch, "loop": self.loop.state_dict(),
                 "python_rng": list(random.getstate()), "curves": self.curves,
                 "elapsed": self.elapsed(), "started_at": self.started_at}
        generator = _loader_generator(self.train)
        if generator is not None:
            state["loader_rng"] = generator.get_state()
        tmp = self.checkpoint.with_name(f".{CHECKPOINT}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint)

    # results ----------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Wall seconds of the whole trial so far (set-up, epochs, latency), across resumptions."""
        return self.earlier + time.perf_counter() - self.start

    def probe_rows(self) -> list[dict[str, Any]]:
        return list(self.loop.probe.rows) if self.loop is not None else []

    def metrics(self) -> dict[str, Any]:
        curves = self.curves
        last = curves[-1] if curves else {}
        out: dict[str, Any] = {
            **self.cost,
            "best_val_acc": max((r["val_acc"] for r in curves), default=None),
            "final_val_acc": last.get("val_acc"), "final_val_loss": last.get("val_loss"),
            "final_train_loss": last.get("train_loss"), "final_train_acc": last.get("train_acc"),
            "epochs": len(curves),
            "images_per_s": statistics.median(r["images_per_s"] for r in curves) if curves else None,
            "train_time_s": sum(r.get("train_time_s", r["epoch_time_s"]) for r in curves),
            "total_time_s": self.elapsed(),
        }
        if self.device is not None:
            out["peak_memory_bytes"], out["peak_memory_kind"] = peak_memory(self.device)
        out.update(self.extra)
        return out

    def release(self) -> None:
        """Free the model and optimizer before the next trial (matters on a GPU after an OOM)."""
        if self.loop is not None:
            self.loop.probe.disarm()  # drop hooks a failed step may have left
            self.loop.optimizer.zero_grad(set_to_none=True)
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.empty_cache()


def _loader_generator(loader: Any) -> torch.Generator | None:
    """The generator that orders and augments a training loader's batches (see resbench.data)."""
    inner = getattr(loader, "loader", None)  # a DeviceLoader wraps a DataLoader
    generator = getattr(inner if inner is not None else loader, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _as_random_state(value: Any) -> tuple:
    """``random.getstate()`` after a round trip through a checkpoint (lists back to tuples)."""
    version, internal, gauss = value
    return (version, tuple(internal), gauss)
