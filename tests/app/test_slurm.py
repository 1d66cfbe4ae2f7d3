"""A sweep on a real Slurm cluster: ``hydra/launcher=submitit_slurm`` submits each job with
``sbatch`` to a one-node cluster started for the module.

The cluster is Debian's Slurm (``slurmctld``, ``slurmd``) with its own MUNGE key and daemon,
installed with apt-get when missing and configured in pytest's tmp folder
(:mod:`tests.helpers.slurm`). The sweep logs into a SQLite store in that folder; every child
must carry the Slurm job it ran in (tags ``slurm.job_id``, ``slurm.array_task_id``,
``slurm.nodelist``), which is also what the cluster itself reports.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from tests.helpers.runs import (
    TINY,
    check_finished_sweep,
    failure,
    run_cli,
    sqlite_uri,
    sweep_family,
)
from tests.helpers.slurm import slurm_cluster

pytestmark = pytest.mark.slow

SEEDS = [0, 1, 2]


def slurm_launcher(cluster, runs_dir) -> list[str]:
    """Launcher settings for the test cluster: one CPU and 2 GB per job, jobs' files in the
    runs folder."""
    return ["hydra/launcher=submitit_slurm", f"hydra.launcher.partition={cluster.partition}",
            "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=2", "hydra.launcher.tasks_per_node=1",
            "hydra.launcher.nodes=1",
            f"hydra.launcher.submitit_folder={runs_dir}/submitit/%j"]


@pytest.fixture(scope="module")
def slurm_sweep(tmp_path_factory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("slurm")
    runs_dir = folder / "runs"
    started = time.monotonic()
    with slurm_cluster(folder / "cluster") as cluster:
        up = time.monotonic() - started
        done = run_cli(["-m", f"trainer.seed={','.join(map(str, SEEDS))}",
                        *slurm_launcher(cluster, runs_dir), *TINY],
                       runs_dir, extra_env={"SLURM_CONF": str(cluster.conf)}, timeout=900)
        print(f"cluster up in {up:.0f} s, sweep in {time.monotonic() - started - up:.0f} s")
        assert done.returncode == 0, (failure(done) + "\n--- slurmctld\n" +
                                      cluster.log("slurmctld"))
        parent, children = sweep_family(sqlite_uri(runs_dir))
        queue_after = cluster.settled_queue()  # the jobs' COMPLETING phase is over
        jobs = {job_id: cluster.job(job_id) for job_id in
                {c.data.tags.get("slurm.job_id") for c in children} - {None}}
        # An Optuna search on the same cluster: each trial's job reaches the study through
        # its storage (the SQLite file beside the store) to report its epochs to the pruner.
        search_dir = folder / "search"
        search = run_cli(["hparams_search=optuna", "hydra.sweeper.n_trials=2",
                          "hydra.sweeper.n_jobs=2", "hydra.sweeper.study_name=on_slurm",
                          "hydra/sweeper/pruner=median", "hydra.sweeper.params=null",
                          "optimizer.learning_rate=choice(0.01,0.001)",
                          *slurm_launcher(cluster, search_dir), *TINY, "trainer.epochs=2"],
                         search_dir, extra_env={"SLURM_CONF": str(cluster.conf)}, timeout=900)
        assert search.returncode == 0, failure(search) + "\n--- slurmctld\n" + cluster.log(
            "slurmctld")
        yield SimpleNamespace(cluster=cluster, runs_dir=runs_dir, parent=parent,
                              children=children, jobs=jobs, queue_after=queue_after,
                              output=done.stdout + done.stderr, search_dir=search_dir)


def test_one_parent_and_three_finished_children(slurm_sweep):
    parent, children = slurm_sweep.parent, slurm_sweep.children
    check_finished_sweep(parent, children, [f"trainer.seed={s}" for s in SEEDS], "SlurmLauncher")
    assert all("val_accuracy" in c.data.metrics for c in children)
    assert slurm_sweep.queue_after == []  # nothing left in the queue


def test_jobs_ran_through_sbatch(slurm_sweep):
    # submitit's own files: one array job, a log per task, written by the job on the node
    logs = sorted(slurm_sweep.runs_dir.glob("submitit/*/*_log.out"))
    assert len(logs) == 3, logs
    assert all("submitit INFO" in log.read_text() for log in logs)


def test_each_child_names_its_slurm_job(slurm_sweep):
    children = slurm_sweep.children
    tags = [{k: v for k, v in c.data.tags.items() if k.startswith("slurm.")} for c in children]
    assert all("slurm.job_id" in t for t in tags), tags
    assert len({t["slurm.job_id"] for t in tags}) == 3, tags
    assert sorted(t["slurm.array_task_id"] for t in tags) == ["0", "1", "2"], tags
    assert {t["slurm.nodelist"] for t in tags} == {slurm_sweep.cluster.node}, tags
    for t in tags:  # the cluster knows each job: the array task it was, and that it completed
        job = slurm_sweep.jobs[t["slurm.job_id"]]
        assert job["JobState"] == "COMPLETED", job
        assert job["ArrayTaskId"] == t["slurm.array_task_id"], job
        assert job["NodeList"] == slurm_sweep.cluster.node, job


def test_an_optuna_search_runs_its_trials_as_slurm_jobs(slurm_sweep):
    """Each trial is a Slurm job that found the study through the storage: its epochs are
    the trial's intermediate values, its run carries the trial's and the job's tags."""
    import optuna

    study = optuna.load_study(study_name="on_slurm",
                              storage=f"sqlite:///{slurm_sweep.search_dir}/optuna.db")
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == [0, 1]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials), trials
    assert all(sorted(t.intermediate_values) in ([1], [1, 2]) for t in trials), trials  # epochs
    parent, children = sweep_family(sqlite_uri(slurm_sweep.search_dir))
    assert parent.data.tags["hydra.launcher"].endswith("SlurmLauncher")
    tags = {c.data.tags["optuna.trial_number"]: c.data.tags for c in children}
    assert sorted(tags) == ["0", "1"]
    for number, tag in tags.items():
        assert tag["optuna.study_name"] == "on_slurm"
        assert tag["optuna.state"] == trials[int(number)].state.name
        assert tag.get("slurm.job_id"), tag
