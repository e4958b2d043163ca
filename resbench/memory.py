"""Will a network fit in memory? Estimated from ``cost()`` (counted on the meta device, so
nothing is allocated) and compared with what this process may use, so that a spec too large for
the machine is refused with its numbers instead of ending in an out-of-memory kill.

The estimate is deliberately simple and says what it counts: 4-byte weights, and for training
their gradients and the optimizer's state (SGD's momentum: one copy, AdamW's moments: two), plus
``activation_bytes`` (every tensor one forward pass allocates, an upper bound on what the
backward pass keeps) times the batch size."""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

from resbench.errors import UserError

BYTES_PER_PARAM = 4  # fp32 weights (and gradients, and optimizer state)
OPTIMIZER_STATES = {"sgd": 1, "adamw": 2}


class TooLarge(UserError):
    """A network whose estimated memory exceeds what this machine (or device) has."""


@dataclass(frozen=True)
class Estimate:
    """Bytes a network needs: its parameters' share and its activations' share."""

    parameter_bytes: int
    activation_bytes: int
    what: str  # "inference at batch 1", "training at batch 128 with sgd"

    @property
    def total(self) -> int:
        return self.parameter_bytes + self.activation_bytes


def inference(params: int, activation_bytes: int) -> Estimate:
    """Weights plus one forward pass at batch 1 (``cost()``'s default)."""
    return Estimate(params * BYTES_PER_PARAM, activation_bytes, "a forward pass at batch 1")


def training(params: int, activation_bytes: int, batch_size: int, optimizer: str) -> Estimate:
    """Weights, gradients and optimizer state, plus activations (``activation_bytes`` at batch
    1) for ``batch_size`` images."""
    copies = 2 + OPTIMIZER_STATES.get(optimizer, 2)
    return Estimate(params * BYTES_PER_PARAM * copies, activation_bytes * batch_size,
                    f"training at batch {batch_size} with {optimizer}")


def available_bytes() -> int | None:
    """Memory this process may use: the least of the machine's RAM (``/proc/meminfo``, else
    ``sysconf``), its cgroup's limit (``memory.max``, containers) and the address-space limit
    (``RLIMIT_AS``); None when none of them is known."""
    limits = [b for b in (_meminfo_total(), _cgroup_limit(), _rlimit_as()) if b]
    return min(limits) if limits else None


def check(estimate: Estimate, available: int | None = None, *, where: str = "this machine",
          name: str = "the network") -> None:
    """Raise :class:`TooLarge` when ``estimate`` exceeds ``available`` bytes (default: this
    process's :func:`available_bytes`)."""
    if available is None:
        available = available_bytes()
    if available is not None and estimate.total > available:
        raise TooLarge(f"{name} is too large for {where}: {estimate.what} needs an estimated "
                       f"{gib(estimate.total)} (parameters {gib(estimate.parameter_bytes)}, "
                       f"activations {gib(estimate.activation_bytes)}), but only "
                       f"{gib(available)} is available")


def gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _meminfo_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or a huge number: no limit
            return int(text)
    return None


def _rlimit_as() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft
