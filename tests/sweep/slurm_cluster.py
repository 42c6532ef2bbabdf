"""A real one-node SLURM cluster on localhost, in a temporary folder (Debian's slurm-wlm 22.05 and munge).

Used by tests/sweep/test_slurm.py. Facts this relies on (checked here, see issue 5): without cgroups jobs launch only
with proctrack/linuxproc; array tasks run in parallel with select/cons_tres + CR_Core; munged can live in a
temporary folder (socket folder mode 755); every client command needs SLURM_CONF; slurmd stops first.
`.ci/run` installs the packages; where they are missing the cluster cannot start and says why.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")
# Job credential lifetime (AuthInfo cred_expire; SLURM's default 120 s, minimum 5). SLURM holds a requeued job back
# this long + 1 s (its BeginTime) because slurmd refuses to launch a job whose credential is not newer, to the
# second, than the revocation of the job's previous run ("Job credential revoked"); 5 s (the minimum) keeps that safeguard and
# the requeue test short. The main scheduling loop (sched_interval, default 60 s, here 1 s) then starts it: the
# backfill pass alone left the requeued task pending ~45 s after its BeginTime, most of the test's 57 s.
CRED_EXPIRE = 5


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]


def _bin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class Cluster:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _pid(self, name: str) -> int | None:
        f = self.root / f"{name}.pid"
        try:
            return int(f.read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, timeout: float = 60.0) -> None:
        r = self.root
        for d in ("munge", "state", "spool"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r, 0o755)
        os.chmod(r / "munge", 0o755)
        key = r / "munge" / "munge.key"
        subprocess.run([_bin("mungekey"), "--create", "--force", f"--keyfile={key}"], check=True,
                       capture_output=True)
        os.chmod(key, 0o600)
        sock = r / "munge" / "munge.sock"
        subprocess.run([_bin("munged"), "--force", f"--socket={sock}", f"--key-file={key}",
                        f"--pid-file={r / 'munged.pid'}", f"--log-file={r / 'munged.log'}",
                        f"--seed-file={r / 'munge' / 'munged.seed'}"], check=True, capture_output=True)
        cpus = re.search(r"CPUs=(\d+)", subprocess.run([_bin("slurmd"), "-C"], capture_output=True,
                                                       text=True).stdout).group(1)
        self.conf.write_text(f"""ClusterName=ibjaxtest
SlurmctldHost=localhost
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock},cred_expire={CRED_EXPIRE}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=bf_interval=1,sched_interval=1
MpiDefault=none
ReturnToService=2
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmdSpoolDir={r / 'spool'}
StateSaveLocation={r / 'state'}
SlurmctldLogFile={r / 'slurmctld.log'}
SlurmdLogFile={r / 'slurmd.log'}
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        subprocess.run([_bin("slurmctld")], env=self.env, check=True, capture_output=True)
        subprocess.run([_bin("slurmd"), "-N", "localhost"], env=self.env, check=True, capture_output=True)
        t = time.monotonic()
        while True:
            out = subprocess.run([_bin("scontrol"), "-o", "show", "node", "localhost"], env=self.env,
                                 capture_output=True, text=True)
            state = re.search(r"State=(\S+)", out.stdout)
            if state and state.group(1).split("+")[0] in ("IDLE", "MIXED", "ALLOCATED"):
                return
            if time.monotonic() - t > timeout:
                raise RuntimeError(f"the SLURM node did not come up: {out.stdout or out.stderr}\n"
                                   f"{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            f = self.root / name
            if f.is_file():
                parts.append(f"--- {name}\n" + "\n".join(f.read_text().splitlines()[-15:]))
        return "\n".join(parts)

    def job_states(self, job: str) -> list[str]:
        out = subprocess.run([_bin("scontrol"), "-o", "show", "job", job], env=self.env, capture_output=True,
                             text=True).stdout
        return re.findall(r"JobState=(\S+)", out)

    def wait(self, job: str, timeout: float = 900.0) -> list[str]:
        """Poll until no task of the job is pending or running; the tasks' final states."""
        t = time.monotonic()
        while True:
            states = self.job_states(job)
            if states and not any(s in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED")
                                  for s in states):
                return states
            if time.monotonic() - t > timeout:
                raise RuntimeError(f"job {job} still {states} after {timeout} s\n{self.log_tail()}")
            time.sleep(1.0)

    def stop(self) -> None:
        # slurmd first and wait for it (stopping both at once makes slurmd retry for ~30 s), then slurmctld.
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self._pid(name)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            t = time.monotonic()
            while time.monotonic() - t < 30:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
