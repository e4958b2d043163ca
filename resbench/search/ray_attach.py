"""The Ray session of one search: attach to ``--address`` (passing the cluster's token
authentication through), reuse a session this process already has, or start a local one.

``ray start --head --port=6379`` prints the address to attach to (``ray start
--address='HEAD_IP:6379'``) and, with token authentication on, "Token authentication is
enabled for this Ray cluster": it is on whenever the head machine has a token
(``~/.ray/auth_token``, which Ray writes the first time ``ray.init()`` starts a local cluster;
``ray get-auth-token`` prints it). A driver attaching to an explicit address sends its token only
in token mode, which Ray never turns on for it; resbench does, for the length of the search,
when this machine has a token and ``RAY_AUTH_MODE`` is unset (``_compat.ray.token_auth``). On
another machine, copy the head's token to ``~/.ray/auth_token`` (or set ``RAY_AUTH_TOKEN``);
``RAY_AUTH_MODE=disabled`` never sends one.

Every way attaching can fail (a malformed or unreachable address, no cluster, a refused token,
another Ray or Python version on the cluster) is a :class:`UserError` saying what to do.
"""
from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from resbench.errors import UserError

CONNECT_TIMEOUT_S = 5.0
HINT = "start one with `ray start --head --port=6379`; `ray status` on the head shows it"


@contextlib.contextmanager
def ray_session(address: str | None, runtime_env: dict[str, Any], *, num_cpus: int | None = None,
                num_gpus: int | None = None) -> Iterator[bool]:
    """Ray for the block; yields whether it attached to a cluster at ``address``. A session
    started or attached here is shut down at the end; one the caller already had is kept."""
    import ray

    from resbench._compat.ray import token_auth

    if ray.is_initialized():
        yield bool(address)
        return
    if not address:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                 runtime_env=runtime_env)
        try:
            yield False
        finally:
            ray.shutdown()
        return
    with token_auth() as mode:
        attach(address, runtime_env, mode)
        try:
            yield True
        finally:
            ray.shutdown()


def attach(address: str, runtime_env: dict[str, Any], auth_mode: str = "disabled") -> None:
    """``ray.init(address=...)``, every failure turned into one :class:`UserError`."""
    import ray

    check_reachable(address)
    try:
        ray.init(address=address, runtime_env=runtime_env)
    except Exception as exc:  # noqa: BLE001 - each kind becomes a message below
        if ray.is_initialized():
            ray.shutdown()
        raise UserError(attach_error(address, exc, auth_mode)) from None


def check_reachable(address: str) -> None:
    """A ``HOST:PORT`` address must accept a connection (Ray itself retries for minutes when
    nothing listens); ``auto`` and ``ray://`` addresses are left to Ray."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.1:6379) or "
                        "auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"--address {address}: no Ray cluster answers there ({reason}); "
                        f"{HINT}") from None


def attach_error(address: str, exc: BaseException, auth_mode: str) -> str:
    """The one line that explains why ``ray.init(address=...)`` failed."""
    from ray.exceptions import AuthenticationError

    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, AuthenticationError) for e in chain) or "InvalidAuthToken" in text:
        if auth_mode == "token":
            return (f"--address {address}: the Ray cluster refused this machine's "
                    "authentication token; use the head's (`ray get-auth-token` on the head "
                    "prints it): put it in ~/.ray/auth_token or RAY_AUTH_TOKEN")
        return (f"--address {address}: the Ray cluster requires token authentication and this "
                "machine has no token; copy the head's (`ray get-auth-token` on the head) to "
                "~/.ray/auth_token or set RAY_AUTH_TOKEN")
    if "Version mismatch" in text:
        detail = " ".join(next(e for e in chain if "Version mismatch" in str(e)).__str__()
                          .split())
        return (f"--address {address}: this driver and the cluster run different versions "
                f"({detail.removeprefix('Version mismatch: ')}); install the cluster's Ray "
                "and Python here, or attach from a node of the cluster")
    if "Could not find any running Ray instance" in text:
        return f"--address {address}: no Ray cluster is running on this machine; {HINT}"
    first = " ".join(str(chain[-1]).split())[:300]
    return f"--address {address}: cannot attach to the Ray cluster: {first}"
