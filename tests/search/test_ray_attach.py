"""Attaching to a Ray cluster fails with one message that says what to do (the real
``ray start`` cluster cases are in test_ray_start.py; these need no cluster)."""
from __future__ import annotations

import socket

import pytest

from resbench.errors import UserError
from resbench.search.ray_attach import attach_error, check_reachable


def test_a_closed_port_and_a_malformed_address_are_refused_before_ray_waits():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(UserError, match=f"127.0.0.1:{port}: no Ray cluster answers there"):
            check_reachable(f"127.0.0.1:{port}")
    for bad in ("localhost", ":6379", "host:port"):
        with pytest.raises(UserError, match="expected HOST:PORT"):
            check_reachable(bad)
    check_reachable("auto")  # left to Ray


def test_a_version_mismatch_names_both_versions():
    from ray._private.utils import check_version_info

    with pytest.raises(RuntimeError) as err:  # Ray's own check, with another cluster's versions
        check_version_info({"ray_version": "2.9.0", "python_version": "3.9.1"}, "this node")
    try:
        raise ConnectionError("Failed to connect to Ray cluster") from err.value
    except ConnectionError as exc:
        message = attach_error("10.0.0.1:6379", exc, "disabled")
    assert message.startswith("--address 10.0.0.1:6379: this driver and the cluster run "
                              "different versions (The cluster was started with: Ray: 2.9.0 "
                              "Python: 3.9.1")
    assert "\n" not in message and "install the cluster's Ray" in message


def test_a_refused_token_says_where_the_token_goes():
    from ray.exceptions import AuthenticationError

    exc = AuthenticationError("RPC error: InvalidAuthToken: Authentication token is missing")
    assert "refused this machine's authentication token" in attach_error("h:1", exc, "token")
    assert "this machine has no token" in attach_error("h:1", exc, "disabled")
