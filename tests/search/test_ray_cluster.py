"""The Ray runner on a multi-node cluster simulated on this machine (``ray.cluster_utils``):
attached with ``--address``, trials spread over the nodes, records all reach the store."""
from __future__ import annotations

import pytest

from resbench.cli import main
from resbench.store import Store
from tests.search.conftest import tiny_space

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """A head node and one worker node, one CPU each; this process is not a driver of it."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()


def test_trials_spread_over_nodes(cluster, write_space, tmp_path):
    space = tiny_space(recipe={"epochs": 3, "optimizer": {"name": "sgd",
                                                          "lr": {"$float": [0.01, 0.3], "log": True}},
                               "data": {"name": "synthetic", "image_size": 8,
                                        "options": {"count": 1500, "num_classes": 4}}},
                       search={"sampler": "random", "experiment": "cluster"})
    path = write_space(space)
    root = tmp_path / "results"
    code = main(["search", str(path), "--runner", "ray", "--address", cluster.address,
                 "--trials", "6", "--results", str(root), "--quiet", "--scheduler", "none"])
    assert code == 0
    records = list(Store(root / "cluster").records())
    assert len(records) == 6 and all(r.status == "completed" for r in records)
    nodes = {r.search.ray.node_id for r in records}
    assert nodes == {node.node_id for node in cluster.list_all_nodes()}  # both nodes ran trials
