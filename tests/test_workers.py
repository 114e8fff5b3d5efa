"""Several workers, as the README promises: the process work pool, the prefect.yaml deployment,
two workers with their own PREFECT_HOME and an operator's manual run, all on one state.
The long version, on PostgreSQL with a reader and twenty deliveries, is bench/ops_drill.py."""

from __future__ import annotations

import pytest

from bench.fleet import Fleet, clean_run, day_of, deliver, differing_tables, kpis, sample_files, warehouse_problems

pytestmark = pytest.mark.slow


def test_two_workers_and_a_manual_run_share_one_state(small_landing, tmp_path, monkeypatch):
    from flows.server import local_server

    # a deployment run queued by the concurrency limit (1) is offered again after 2 s, not 30 s
    monkeypatch.setenv("PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS", "2")
    files = sample_files(small_landing)
    first_week = [rel for rel in files if day_of(rel, 14) <= 7]
    with local_server(port=4250, home=tmp_path / "server") as api_url:
        # one day's dirt is more than 5 % of its rows: the threshold is not what this test is about
        fleet = Fleet(tmp_path / "fleet", api_url, extra_env={"POLITIKPI_MAX_QUARANTINE_SHARE": "0.2"})
        try:
            fleet.set_up()
            fleet.start_workers(2)
            for rel in first_week:
                deliver(fleet.landing, rel, (small_landing / rel).read_bytes())
            fleet.wait([fleet.deployment_run(), fleet.manual_run()])  # at the same time
            for rel in sorted(set(files) - set(first_week)):
                deliver(fleet.landing, rel, (small_landing / rel).read_bytes())
            ingest = fleet.deployment_run()
            fleet.wait([ingest])
            # Back to back with nothing new, on one worker, then the other, then the first again (each
            # stopped with Ctrl-C while the other takes a run): the first worker's cached build is
            # older than the release the second one published (the stale-cache case of issue 13).
            first = fleet.worker_of(ingest)
            second = next(name for name in fleet.workers if name != first)
            fleet.stop_worker(first)
            fleet.wait([on_second := fleet.deployment_run()])
            fleet.start_worker(first)
            fleet.stop_worker(second)
            fleet.wait([on_first := fleet.deployment_run()])
            verify, own = warehouse_problems(fleet)
            clean = clean_run(fleet, tmp_path / "clean")
        finally:
            fleet.stop_all()
    failures = [(o.kind, o.detail) for o in fleet.outcomes if o.verdict not in ("ok", "overlap")]
    assert failures == []
    assert fleet.tally()["deployment"] == 4 and fleet.tally()["manual"] == 1
    assert (fleet.worker_of(on_second), fleet.worker_of(on_first)) == (second, first)
    assert verify == [] and own == []
    assert differing_tables(kpis(fleet.warehouse), clean) == []
