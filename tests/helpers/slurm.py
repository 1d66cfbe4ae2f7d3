"""A one-node Slurm cluster for a test, from Debian's packages, in a folder of the test.

``slurm_cluster(folder)`` writes ``slurm.conf`` there (cluster ``kerascnn-test``, controller
and the single node ``localhost`` on 127.0.0.1, free ports, no accounting, state, spool, pid
and log files in the folder), generates a MUNGE key there and starts ``munged`` with that key
on its own socket, then ``slurmctld`` and ``slurmd`` in the foreground, each in its own process
group; it yields once ``sinfo`` shows the node idle. Commands reach this cluster through the
``SLURM_CONF`` variable in :attr:`SlurmCluster.env` (the daemons and every job carry it too).

At the end every job is cancelled, the daemons are stopped, and any process still carrying
this cluster's ``SLURM_CONF`` in its environment (a ``slurmstepd``, a job's own processes) is
killed: those are this cluster's and no one else's.

Packages (installed with apt-get when a program is missing): ``slurmctld``, ``slurmd``,
``slurm-client``, ``munge``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.system import (
    HOST,
    apt_install,
    find_program,
    free_ports,
    stop_group,
    tail,
    wait_for,
)

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
PROGRAMS = ["slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun",
            "munged"]
NODE = "localhost"
CLUSTER = "kerascnn-test"
# Unix socket paths are limited to 107 bytes: slurmd's step sockets are
# <SlurmdSpoolDir>/localhost_<job id>.<step id> (up to 32 more bytes), and munged's socket.
SOCKET_DIR_MAX = 70


def ensure_slurm(timeout: float = 900) -> float:
    """Install Debian's Slurm and MUNGE when one of their programs is missing; return the
    seconds it took (0 when nothing was missing)."""
    if all(find_program(p) for p in PROGRAMS):
        return 0.0
    seconds = apt_install(PACKAGES, timeout=timeout)
    missing = [p for p in PROGRAMS if not find_program(p)]
    if missing:
        raise RuntimeError(f"`apt-get install {' '.join(PACKAGES)}` left {missing} missing")
    return seconds


def _program(name: str) -> str:
    found = find_program(name)
    if found is None:
        raise RuntimeError(f"{name} is missing (apt-get install {' '.join(PACKAGES)})")
    return str(found)


def machine_resources() -> tuple[int, int]:
    """CPUs this process may use, and 90% of the memory in MB (slurmd drains a node that
    has less memory than configured)."""
    cpus = len(os.sched_getaffinity(0))
    with open("/proc/meminfo") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    return cpus, int(total_kb / 1024 * 0.9)


@dataclass
class SlurmCluster:
    folder: Path
    conf: Path
    env: dict[str, str]
    partition: str
    cpus: int
    memory_mb: int
    node: str = NODE

    def run(self, *args: str, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """A Slurm command (``sinfo``, ``scontrol``, ...) against this cluster."""
        done = subprocess.run([_program(args[0]), *args[1:]], env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise RuntimeError(f"`{' '.join(args)}` exited with {done.returncode}:\n"
                               f"{done.stdout}\n{done.stderr}")
        return done

    def node_state(self) -> str:
        """The node's state as ``sinfo`` prints it (``idle``, ``mixed``, ``down*``, ...)."""
        done = self.run("sinfo", "-h", "-N", "-o", "%T", check=False)
        return done.stdout.strip() if done.returncode == 0 else f"sinfo failed: {done.stderr}"

    def queue(self) -> list[dict[str, str]]:
        """The jobs ``squeue`` knows: id, array task, state, restarts, reason."""
        out = self.run("squeue", "-h", "-o", "%i|%A|%K|%T|%r").stdout
        keys = ("id", "job_id", "array_task", "state", "reason")
        return [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines()
                if line.strip()]

    def settled_queue(self, timeout: float = 120) -> list[dict[str, str]]:
        """The queue once no job is left in it, or as it stands after ``timeout`` seconds.

        A job whose program has ended stays COMPLETING until slurmd has cleaned up after it
        (epilog, cgroups), which on a loaded machine takes a few seconds."""
        deadline = time.monotonic() + timeout
        queue = self.queue()
        while queue and time.monotonic() < deadline:
            time.sleep(1)
            queue = self.queue()
        return queue

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -o JOB`` as a mapping (``JobState``, ``Restarts``, ...)."""
        out = self.run("scontrol", "show", "job", "-o", str(job_id)).stdout
        fields: dict[str, str] = {}
        for item in out.split():
            key, sep, value = item.partition("=")
            if sep:
                fields.setdefault(key, value)
        return fields

    def log(self, daemon: str) -> str:
        return tail(self.folder / f"{daemon}.log", 4000)


def _write_config(folder: Path, sockets: Path, ports: list[int], partition: str, cpus: int,
                  memory_mb: int, munge_socket: Path) -> Path:
    (folder / "state").mkdir(exist_ok=True)
    (sockets / "spool").mkdir(exist_ok=True)
    conf = folder / "slurm.conf"
    conf.write_text("\n".join([
        f"ClusterName={CLUSTER}",
        f"SlurmctldHost={NODE}({HOST})",
        f"SlurmctldPort={ports[0]}",
        f"SlurmdPort={ports[1]}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={sockets / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU_Memory",
        "DefMemPerCPU=1024",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "ReturnToService=2",
        "KillWait=10",
        "MinJobAge=600",
        "SchedulerType=sched/backfill",
        f"NodeName={NODE} NodeAddr={HOST} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName={partition} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    return conf


def _start(cmd: list[str], log: Path, env: dict[str, str], folder: Path) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=folder, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _processes_with(env_entry: str) -> list[int]:
    """Processes whose environment holds ``env_entry`` (``SLURM_CONF=<this cluster>``)."""
    wanted = env_entry.encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes() + b"\0":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _cancel_everything(cluster: SlurmCluster, timeout: float = 60) -> None:
    """scancel every job of the cluster and wait until the queue is empty."""
    try:
        ids = {job["job_id"] for job in cluster.queue()}
        if ids:
            cluster.run("scancel", *sorted(ids), check=False)
            wait_for(lambda: not cluster.queue(), timeout, "scancel")
    except (RuntimeError, subprocess.SubprocessError):
        pass


@contextmanager
def slurm_cluster(folder: Path, partition: str = "debug",
                  timeout: float = 120) -> Iterator[SlurmCluster]:
    """Start MUNGE, slurmctld and slurmd for a one-node cluster in ``folder``; yield it when
    the node is idle; cancel every job and stop everything afterwards."""
    ensure_slurm()
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    cpus, memory_mb = machine_resources()
    munge_dir = folder / "munge"
    munge_dir.mkdir(mode=0o700, exist_ok=True)
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    # The sockets live in the folder unless its path is too long for one.
    short = None
    if len(str(folder)) > SOCKET_DIR_MAX:
        short = Path(tempfile.mkdtemp(prefix="kcslurm-", dir="/tmp"))
    sockets = short or folder
    socket = sockets / "munge.socket"
    conf = _write_config(folder, sockets, free_ports(2), partition, cpus, memory_mb, socket)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    for name in [k for k in env if k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))]:
        if name != "SLURM_CONF":  # a test run inside a Slurm job must not leak its job here
            env.pop(name)
    cluster = SlurmCluster(folder=folder, conf=conf, env=env, partition=partition, cpus=cpus,
                           memory_mb=memory_mb)
    with ExitStack() as stack:
        if short is not None:
            stack.callback(shutil.rmtree, short, ignore_errors=True)
        stack.callback(_kill_leftovers, f"SLURM_CONF={conf}")
        munged = _start([_program("munged"), "--foreground", "--force",
                         f"--key-file={key}", f"--socket={socket}",
                         f"--pid-file={munge_dir / 'munged.pid'}",
                         f"--seed-file={munge_dir / 'munged.seed'}",
                         f"--log-file={folder / 'munged.log'}"],
                        folder / "munged.out", env, folder)
        stack.callback(stop_group, munged)
        wait_for(socket.exists, timeout, "munged", proc=munged, log=folder / "munged.log")
        slurmctld = _start([_program("slurmctld"), "-D", "-i", "-f", str(conf)],
                           folder / "slurmctld.out", env, folder)
        stack.callback(stop_group, slurmctld)
        slurmd = _start([_program("slurmd"), "-D", "-N", NODE, "-f", str(conf)],
                        folder / "slurmd.out", env, folder)
        stack.callback(stop_group, slurmd)
        stack.callback(_cancel_everything, cluster)  # runs first: jobs end before the daemons

        def idle() -> bool:
            for proc, name in ((slurmctld, "slurmctld"), (slurmd, "slurmd")):
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n"
                                       f"{tail(folder / f'{name}.out')}\n{cluster.log(name)}")
            return cluster.node_state() == "idle"

        try:
            wait_for(idle, timeout, "the Slurm node", interval=1)
        except RuntimeError as err:
            raise RuntimeError(f"{err}\nnode state: {cluster.node_state()}\n--- slurmctld\n"
                               f"{cluster.log('slurmctld')}\n--- slurmd\n"
                               f"{cluster.log('slurmd')}") from None
        yield cluster


def _kill_leftovers(env_entry: str) -> None:
    """SIGKILL what is left of this cluster: processes whose environment names its config."""
    for _ in range(3):
        pids = _processes_with(env_entry)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
