"""A short soak on the multi-node deployment (bench/soak_bench.py runs the long one): nothing lost, nothing
failed, nothing left behind, reloads applied while jobs come and go."""

from __future__ import annotations

from host.testing.soak import soak, write_agent


async def test_a_short_soak_loses_nothing(cluster, start_host, tmp_path):
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        write_agent(folder, 0)
    # one machine runs both nodes, both hosts and the load: its CPU is no measure of a host's room for jobs
    hosts = [start_host(node, folder, args=("--load-threshold", "0"))
             for node, folder in zip(cluster.nodes, folders, strict=True)]
    for h in hosts:
        await h.wait_log(r"registered agent soak")
    report = await soak(cluster.nodes, hosts, folders, seconds=60, concurrent=10, hold=(2, 6), reload_every=20)
    print("\n".join(report.lines()))
    assert report.dispatches >= 40 and report.ran == report.dispatches
    assert report.lost == [] and report.doubled == []
    assert not report.failed, report.failed
    assert report.reloads_applied == report.reloads_sent > 0
    assert all(n > 0 for n in report.jobs_per_host.values()), report.jobs_per_host
    assert report.leftovers == []
