"""One trial: train and evaluate one spec under one recipe and seed, and return its record.

A trial never raises for what happens in training: a NaN/inf or exploding loss or a numeric
overflow ends it as ``diverged``, an exception or out-of-memory as ``failed`` with the reason, a
reporter's stop as ``pruned``. Only bad input (a data set that does not exist), a checkpoint
folder that cannot be written (``StoreWriteError``) and KeyboardInterrupt escape (also where a
library's cleanup replaced the KeyboardInterrupt by an error of its own: ``errors.interrupted``).
"""
from __future__ import annotations

import os
import random
import statistics
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from resbench import memory
from resbench.errors import first_line, interrupted
from resbench.data import DataSplits, load_dataset, make_loader
from resbench.spec import Spec
from resbench.spec.recipe import DataConfig, Recipe
from resbench.store import (
    Analyses,
    CurveRow,
    DataInfo,
    GradFlowRow,
    Metrics,
    StoreWriteError,
    TrialRecord,
    now_iso,
    trial_key,
    writing,
    weights_name,
)
from resbench.train.loop import Diverged, TrainLoop, resolve_device
from resbench.train.metrics import latency_ms, peak_memory, reset_peak_memory
from resbench.train.transfer import FreezeSchedule, initialise

Reporter = Callable[[int, dict[str, float]], bool]
CHECKPOINT = "last.pt"
PREVIOUS = "prev.pt"  # the checkpoint before last.pt, kept until the next one is safely written
CORRUPT = ".corrupt"  # suffix of a checkpoint set aside because it could not be loaded
_STATE_KEYS = ("key", "epoch", "loop", "python_rng", "curves", "elapsed", "started_at")


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


def initial_model(spec: Spec, recipe: Recipe, seed: int) -> torch.nn.Module:
    """The net exactly as trial ``seed`` starts training it (seeded build, then ``transfer.init``);
    the analyses at initialisation rebuild it from a record with this."""
    from resbench.compile import build

    _seed_everything(seed)
    model = build(spec)
    initialise(model, recipe.transfer)
    return model


def run_trial(spec: Spec, recipe: Recipe, seed: int, *, data: DataSplits | None = None,
              reporter: Reporter | None = None, checkpoint_dir: str | Path | None = None,
              experiment: str = "", store_dir: str | Path | None = None) -> TrialRecord:
    """Train ``spec`` under ``recipe`` with ``seed``; its record (unsaved: the caller stores it).

    With ``checkpoint_dir``, the state after each epoch is saved there and a later call resumes
    from it. ``reporter(epoch, metrics)`` is called after each epoch; True stops as pruned.
    A trial that completes runs the recipe's analyses and, with ``store_dir`` (the experiment
    folder) and ``recipe.save_weights``, saves its final weights as ``weights/<key>.pt`` there.
    """
    data = data if data is not None else load_data(recipe.data)
    adapted, key = trial_identity(spec, recipe, seed, data)
    run = _Run(adapted, recipe, seed, data, key, checkpoint_dir)
    status, reason, trace = "completed", None, None
    try:
        run.execute(reporter)
        if run.stopped is not None:
            status, reason = "pruned", run.stopped
        else:
            run.finish(store_dir)
    except StoreWriteError:
        raise  # the results folder cannot be written: the run stops, the trial is not at fault
    except Diverged as e:
        status, reason = "diverged", str(e)
    except memory.TooLarge as e:  # refused before anything was allocated
        status, reason = "failed", str(e)
    except (torch.OutOfMemoryError, MemoryError) as e:
        status, reason = "failed", f"out of memory: {first_line(e)}"
        trace = traceback.format_exc(limit=8)
    except Exception as e:
        if interrupted(e):  # Ctrl-C, which a library's cleanup replaced by its own error
            raise KeyboardInterrupt from e
        oom = "can't allocate memory" in str(e) or "out of memory" in str(e).lower()
        prefix = "out of memory: " if oom else f"{type(e).__name__}: "
        status, reason = "failed", prefix + first_line(e)
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
    if status == "completed" and run.weights is not None:
        record.weights = run.weights
    if status == "completed" and run.analyses is not None:
        record.analyses = run.analyses
    return record


def check_fits(spec: Spec, recipe: Recipe, params: int, activation_bytes: int,
               device: torch.device) -> None:
    """Refuse (:class:`resbench.memory.TooLarge`) a trial whose estimated training memory
    exceeds the device's memory (a GPU's) or what this process may use (the CPU)."""
    estimate = memory.training(params, activation_bytes, recipe.batch_size, recipe.optimizer.name)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        memory.check(estimate, total, where=f"{device} ({torch.cuda.get_device_name(device)})",
                     name=f"spec {spec.name!r}")
    else:
        memory.check(estimate, where="this machine's memory", name=f"spec {spec.name!r}")


class _OtherTrial(Exception):
    """The checkpoint belongs to another trial (its key differs)."""


class _Run:
    """The mutable state of one trial while it runs (kept out of run_trial for readability)."""

    def __init__(self, spec: Spec, recipe: Recipe, seed: int, data: DataSplits, key: str,
                 checkpoint_dir: str | Path | None) -> None:
        self.spec, self.recipe, self.seed, self.data, self.key = spec, recipe, seed, data, key
        self.checkpoint = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
        self.model: torch.nn.Module | None = None
        self.freeze: FreezeSchedule | None = None
        self.val: Any = None
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
        self.model: torch.nn.Module | None = None
        self.weights: str | None = None  # the record's ``weights``, once saved
        self.analyses: Analyses | None = None

    def execute(self, reporter: Reporter | None) -> None:
        from resbench.compile import cost

        recipe, data = self.recipe, self.data
        self.device = resolve_device(recipe.device)
        reset_peak_memory(self.device)
        c = cost(self.spec, input_size=data.image_size)
        self.cost = {"params": int(c.params), "macs": int(c.macs)}
        check_fits(self.spec, recipe, c.params, c.activation_bytes, self.device)
        first_epoch = self._start() + 1
        loop, model, freeze, train, val = self.loop, self.model, self.freeze, self.train, self.val
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

    def finish(self, store_dir: str | Path | None) -> None:
        """After the last epoch: save the final weights, then run the recipe's analyses."""
        if store_dir is not None and self.recipe.save_weights and self.model is not None:
            self.weights = save_weights(self.model, Path(store_dir), self.key)
        if self.recipe.analyses.names and self.model is not None:
            from resbench.analysis import run_analyses

            start = time.perf_counter()
            self.analyses = run_analyses(
                self.recipe.analyses, self.model,
                lambda: initial_model(self.spec, self.recipe, self.seed), self.data, self.device)
            self.extra["analysis_time_s"] = time.perf_counter() - start

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

    def _setup(self) -> None:
        """A fresh, seeded model, loaders and training loop (epoch 0)."""
        recipe, data = self.recipe, self.data
        self.model = model = initial_model(self.spec, recipe, self.seed)
        self.freeze = FreezeSchedule(model, recipe.transfer)
        self.train = make_loader(data.train, recipe.batch_size, train=True, augment=recipe.augment,
                                 device=self.device, seed=self.seed,
                                 channels_last=recipe.channels_last)
        self.val = make_loader(data.val, recipe.eval_batch_size, train=False, augment=None,
                               device=self.device, seed=0, channels_last=recipe.channels_last)
        self.loop = TrainLoop(model, recipe, self.device, len(self.train), model.blocks())

    # checkpoints ------------------------------------------------------------------------------
    def _start(self) -> int:
        """Set up, and continue from the newest checkpoint of this trial that loads; returns
        its epoch (0: from scratch). One that cannot be loaded (truncated, corrupt) is set
        aside with a warning and the one before it is tried: the trial never fails for that."""
        candidates = [] if self.checkpoint is None else \
            [p for p in (self.checkpoint, self.checkpoint.with_name(PREVIOUS)) if p.is_file()]
        for i, path in enumerate(candidates):
            self._setup()
            try:
                return self._resume(path)
            except _OtherTrial:
                return 0  # another trial's checkpoint: start afresh (it will be overwritten)
            except Exception as e:  # noqa: BLE001 - any failure to load means a bad file
                aside = path.with_name(path.name + CORRUPT)
                os.replace(path, aside)
                warnings.warn(f"{path}: cannot resume from this checkpoint ({first_line(e)}); "
                              f"set aside as {aside.name}; "
                              f"{'trying the one before it' if i + 1 < len(candidates) else 'starting the trial again'}",
                              RuntimeWarning, stacklevel=2)
                self.curves, self.earlier, self.resumed_from = [], 0.0, None
                self.started_at = now_iso()
        self._setup()
        return 0

    def _resume(self, path: Path) -> int:
        """Restore the saved epoch in ``path`` into a fresh set-up; returns that epoch."""
        # On the CPU: RNG states must stay CPU byte tensors; load_state_dict moves the rest.
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged file
            raise ValueError(f"truncated or corrupt file, {type(e).__name__} from torch.load") from e
        if not isinstance(state, dict) or any(k not in state for k in _STATE_KEYS):
            raise ValueError("not a resbench trial checkpoint")
        if state["key"] != self.key:
            raise _OtherTrial
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
        state = {"key": self.key, "epoch": epoch, "loop": self.loop.state_dict(),
                 "python_rng": list(random.getstate()), "curves": self.curves,
                 "elapsed": self.elapsed(), "started_at": self.started_at}
        generator = _loader_generator(self.train)
        if generator is not None:
            state["loader_rng"] = generator.get_state()
        tmp = self.checkpoint.with_name(f".{CHECKPOINT}.{os.getpid()}.tmp")
        # A full disk or read-only folder is a StoreWriteError naming the folder, which ends
        # the run (it is no fault of the trial's); no partial temp file is left.
        with writing(self.checkpoint.parent):
            for again in (True, False):
                self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with open(tmp, "wb") as f:  # a file object: torch raises the OSError itself
                        torch.save(state, f)
                        f.flush()
                        os.fsync(f.fileno())
                    if self.checkpoint.is_file():  # keep the last good state until this one is in
                        os.replace(self.checkpoint, self.checkpoint.with_name(PREVIOUS))
                    os.replace(tmp, self.checkpoint)
                    return
                except FileNotFoundError:
                    if not again:  # the folder was removed under us (a twin trial that ended)
                        raise
                finally:
                    tmp.unlink(missing_ok=True)

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


def save_weights(model: torch.nn.Module, store_dir: Path, key: str) -> str:
    """Write ``model``'s state_dict (on the CPU) atomically to ``store_dir/weights/<key>.pt``;
    returns that path relative to ``store_dir`` (the record's ``weights``)."""
    name = weights_name(key)
    path = store_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return name


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
