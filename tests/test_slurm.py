"""The shipped SLURM profile, run against a real single-node SLURM cluster on localhost.

A session fixture starts the cluster with .ci/slurm/setup.sh (munge, MariaDB + slurmdbd for
`sacct`, slurmctld, slurmd; reused if already up) and stops what it started afterwards. The
workflow then runs through `snakemake --profile profiles/slurm --workflow-profile .ci/slurm/profile`
and the tests check, job by job, that every non-local job of the DAG went through sbatch and
finished, with the partition, account, GPUs, time limit and memory the profile asks for.

Which workflow: the project's own (IDC_SLURM_WORKFLOW_DIR, default the project root, with
IDC_SLURM_CONFIGFILE, default config/slurm-ci.yaml) when both exist; otherwise a small workflow
written here with the shape of the real one (a CPU rule, a GPU rule, three per-image GPU jobs in
group "condense", a CPU aggregate). IDC_SLURM_WORKFLOW_DIR=toy forces the small one.

Skipped (with the reason) where SLURM cannot be started: IDC_SLURM=0, not root, or neither SLURM
nor apt-get present. IDC_SLURM_KEEP=1 leaves a cluster this session started running.

The tests at the end (not marked `slurm`, no cluster needed) check what the profile submits for a
CPU job and a GPU job under separate CPU and GPU partitions and a GPU model: Snakemake evaluates
the profile in a dry run, and the plugin's own code turns each job's resources into its sbatch
arguments. The CI cluster has one partition, so the cluster tests see one partition only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

slurm = pytest.mark.slurm  # the tests that start or use the cluster

SETUP = PROJECT_ROOT / ".ci" / "slurm" / "setup.sh"
STOP = PROJECT_ROOT / ".ci" / "slurm" / "stop.sh"
SLURM_PROFILE = PROJECT_ROOT / "profiles" / "slurm"
CI_OVERLAY = PROJECT_ROOT / ".ci" / "slurm" / "profile"
PARTITION = "debug"  # what setup.sh creates
ACCOUNT = "ci"
# The node of the CI cluster is small: cap the profile's paper-scale memory requests.
MEM_CAP_MB = 2000
# What the one node of the CI cluster has (setup.sh): no job may ask for more, or it pends forever.
NODE_MEM_MB = 20000
TOY_RUN_TIMEOUT_S = 300
# Rules that may run inside the submitting snakemake instead of SLURM (targets, tiny summaries);
# IDC_SLURM_LOCAL_RULES (comma separated) adds to them.
def workflow_localrules() -> set[str]:
    """The rules the project declares `localrules` (downloads, test sets, tables, figures)."""
    rules: set[str] = set()
    for smk in sorted((PROJECT_ROOT / "workflow" / "rules").glob("*.smk")):
        # `localrules: a, b` or, as snakefmt writes it, one indented name per line
        for m in re.finditer(r"^localrules:((?:[ \t]*\S.*)?\n(?:[ \t]+\S.*\n)*)", smk.read_text(), re.M):
            rules |= {r.strip() for r in m.group(1).replace("\n", ",").split(",") if r.strip()}
    return rules


LOCAL_RULES = ({"all"} | workflow_localrules()
               | set(filter(None, os.environ.get("IDC_SLURM_LOCAL_RULES", "").split(","))))
PROJECT_RUN_TIMEOUT_S = 1200


def report(request: pytest.FixtureRequest, text: str) -> None:
    """Print past pytest's output capture: CI logs show the timings and job counts."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + text, flush=True)


def _skip_reason() -> str | None:
    if os.environ.get("IDC_SLURM", "1") == "0":
        return "IDC_SLURM=0"
    if not sys.platform.startswith("linux"):
        return "a local SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "starting SLURM daemons needs root (.ci/slurm/setup.sh)"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is unavailable to install it"
    return None


@pytest.fixture(scope="session")
def slurm_cluster(request):
    """A running single-node cluster; stopped at the end if this session started it."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    base = Path(os.environ.get("IDC_SLURM_BASE", "/tmp/idc-slurm"))
    running_before = (
        (base / "run" / "slurmctld.pid").exists()
        and shutil.which("sinfo") is not None
        and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0
    )
    env = dict(os.environ, IDC_SLURM_BASE=str(base), IDC_SLURM_PARTITION=PARTITION,
               IDC_SLURM_ACCOUNT=ACCOUNT, WITH_DBD="1")
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(SETUP)], env=env, capture_output=True, text=True,
                          timeout=900)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        pytest.fail(f"{SETUP} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    report(request, f"[slurm] setup.sh took {seconds:.1f} s "
                    f"({'cluster was already up' if running_before else 'started the cluster'})")
    yield {"base": base, "setup_seconds": seconds}
    if not running_before and os.environ.get("IDC_SLURM_KEEP") != "1":
        subprocess.run(["bash", str(STOP)], env=env, check=False, timeout=120)


# ------------------------------------------------------------------------------------------------
# What snakemake planned and what it submitted


@dataclass
class PlannedJob:
    rule: str
    wildcards: str
    resources: dict[str, str]
    threads: int = 1
    jobid: str = ""
    in_group: bool = False


@dataclass
class RunRecord:
    workdir: Path
    extra: list[str]
    is_project: bool
    returncode: int
    seconds: float
    log: str
    run_id: str
    planned: list[PlannedJob]
    submitted: dict[str, list[PlannedJob]] = field(default_factory=dict)  # SLURM job id -> jobs
    sacct: dict[str, dict[str, str]] = field(default_factory=dict)  # SLURM job id -> fields
    local: Counter = field(default_factory=Counter)  # rule -> jobs run by snakemake itself


_RULE = re.compile(r"^\s*(local)?rule (\w+):\s*$")
_SUBMITTED_WITH_ID = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+)")


def parse_job_blocks(text: str) -> list[tuple[bool, PlannedJob, int]]:
    """Job blocks printed by snakemake: (is_local, job, line number of the block's header)."""
    jobs: list[tuple[bool, PlannedJob, int]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _RULE.match(line)
        if not m:
            continue
        job = PlannedJob(rule=m.group(2), wildcards="", resources={})
        indent = len(line) - len(line.lstrip())
        for body in lines[i + 1:]:
            if not body.strip() or len(body) - len(body.lstrip()) <= indent:
                break
            key, _, value = body.strip().partition(": ")
            if key == "jobid":
                job.jobid = value
            elif key == "wildcards":
                job.wildcards = value
            elif key == "threads":
                job.threads = int(value)
            elif key == "resources":
                job.resources = dict(
                    kv.split("=", 1) for kv in value.split(", ") if "=" in kv
                )
        job.in_group = indent > 0  # members of a group job are printed indented under its header
        jobs.append((m.group(1) is not None, job, i))
    return jobs


def submitted_jobs(log: str) -> dict[str, list[PlannedJob]]:
    """Map each SLURM job id to the workflow jobs it ran.

    Snakemake logs `Job <id> has been submitted with SLURM jobid <n>`: a numeric id names the job
    block printed with `jobid: <id>`; a group job has a UUID, and its members are the blocks printed
    indented under the latest `Group job` header not yet submitted. A failed attempt's inner log,
    echoed by --show-failed-logs, repeats blocks; the latest block of an id wins.
    """
    by_id: dict[str, PlannedJob] = {}
    groups: list[list[PlannedJob]] = []
    lines = log.splitlines()
    blocks = {i: (local, job) for local, job, i in parse_job_blocks(log)}
    result: dict[str, list[PlannedJob]] = {}
    for i, line in enumerate(lines):
        if line.lstrip().startswith("[") and "Group job" in line:
            groups.append([])
        if i in blocks and not blocks[i][0]:
            job = blocks[i][1]
            if job.in_group and groups:
                if all((job.rule, job.wildcards) != (p.rule, p.wildcards) for p in groups[-1]):
                    groups[-1].append(job)
            elif job.jobid:
                by_id[job.jobid] = job
        m = _SUBMITTED_WITH_ID.search(line)
        if m:
            snakemake_id, slurm_id = m.group(1), m.group(2)
            if snakemake_id.isdigit():
                result[slurm_id] = [by_id[snakemake_id]] if snakemake_id in by_id else []
            else:
                result[slurm_id] = groups.pop(0) if groups else []
    return result


def sacct_jobs(run_id: str) -> dict[str, dict[str, str]]:
    fields = ["JobID", "JobName", "Comment", "State", "ExitCode", "Partition", "Account",
              "Timelimit", "ReqMem", "ReqCPUS", "AllocTRES", "Elapsed"]
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--name", run_id, "-S", "now-1days", "-o", ",".join(fields)],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]
    return {row["JobID"]: row for row in rows}


def wait_for_sacct(run_id: str, job_ids: set[str],
                   timeout_s: float = 30) -> dict[str, dict[str, str]]:
    """slurmdbd records a job's end a moment after the job ends; wait until all are final."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = sacct_jobs(run_id)
        final = all(
            jid in rows and rows[jid]["State"] not in ("PENDING", "RUNNING", "COMPLETING")
            for jid in job_ids
        )
        if final or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def minutes(timelimit: str) -> int:
    """sacct's [D-]HH:MM:SS as minutes."""
    days, _, hms = timelimit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (1 if s else 0)


def resource(job: PlannedJob, name: str) -> int | None:
    """An integer resource of a job, None where snakemake printed it as <TBD> or not at all."""
    value = job.resources.get(name, "")
    return int(value) if value.isdigit() else None


def gpus_of(tres: str) -> int:
    m = re.search(r"gres/gpu=(\d+)", tres)
    return int(m.group(1)) if m else 0


def slurm_env() -> dict[str, str]:
    """The environment a user would set, plus the memory cap for the small CI node."""
    return dict(os.environ, SLURM_PARTITION=PARTITION, SLURM_ACCOUNT=ACCOUNT,
                IDC_SLURM_MAX_MEM_MB=str(MEM_CAP_MB), PYTHONUNBUFFERED="1")


def snakemake_cmd(extra: list[str], workflow_profile: Path = CI_OVERLAY) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--profile", str(SLURM_PROFILE),
            "--workflow-profile", str(workflow_profile), "--nocolor", *extra]


# ------------------------------------------------------------------------------------------------
# The workflow under test


def _toy_snakefile() -> str:
    # Each job records the SLURM job it ran in and the GPUs SLURM gave it.
    stamp = ('echo "rule={rule} slurm_job=${{SLURM_JOB_ID:-none}} '
             'gpus=${{CUDA_VISIBLE_DEVICES:-none}}" > {output}')
    return f'''\
IMAGES = [f"img{{i}}" for i in range(3)]

rule all:
    input: "results/tables/table1.txt"

localrules: all

rule crop_patches:
    output: "results/patches.txt"
    threads: 1
    resources: gpu=0, mem_mb=500, runtime=5
    shell: '{stamp}'

rule train_teacher:
    input: rules.crop_patches.output
    output: "results/teacher.txt"
    threads: 2
    resources: gpu=1, mem_mb=500, runtime=10
    shell: '{stamp}'

rule condense_image:
    input: rules.train_teacher.output
    output: "results/condense/{{image}}.txt"
    group: "condense"
    threads: 1
    resources: gpu=1, mem_mb=500, runtime=10
    shell: '{stamp}'

rule make_tables:
    input: expand("results/condense/{{image}}.txt", image=IMAGES)
    output: "results/tables/table1.txt"
    threads: 1
    resources: gpu=0, mem_mb=500, runtime=5
    shell: 'cat {{input}} > {{output}}; {stamp.replace("> {output}", ">> {output}")}'
'''


def _profile_configfile(workdir: Path) -> None:
    """profiles/slurm names the paper's configfile; a stand-in workflow gets an empty one."""
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "config.yaml").write_text("{}\n")


def workflow_under_test(tmp_root: Path) -> tuple[Path, list[str], bool]:
    """(working directory, extra snakemake arguments, is the project's own workflow)."""
    wf_env = os.environ.get("IDC_SLURM_WORKFLOW_DIR", "")
    if wf_env != "toy":
        wf_dir = Path(wf_env) if wf_env else PROJECT_ROOT
        configfile = Path(os.environ.get("IDC_SLURM_CONFIGFILE", "config/slurm-ci.yaml"))
        if not configfile.is_absolute():
            configfile = wf_dir / configfile
        if (wf_dir / "Snakefile").exists() and configfile.exists():
            extra = ["--configfile", str(configfile)]
            if os.environ.get("IDC_SLURM_FORCEALL") == "1":
                extra.append("--forceall")
            return wf_dir, extra, True
        if wf_env:
            pytest.fail(f"IDC_SLURM_WORKFLOW_DIR={wf_env}: no Snakefile or no {configfile}")
    toy = tmp_root / "toy"
    toy.mkdir()
    (toy / "Snakefile").write_text(_toy_snakefile())
    _profile_configfile(toy)
    return toy, [], False


def run_workflow(workdir: Path, extra: list[str], is_project: bool) -> RunRecord:
    dry = subprocess.run(snakemake_cmd(["--dry-run", *extra]), cwd=workdir, env=slurm_env(),
                         capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, f"dry run failed:\n{dry.stdout}\n{dry.stderr}"
    planned = [job for _, job, _ in parse_job_blocks(dry.stdout + dry.stderr)]
    assert planned, (f"nothing to do in {workdir}: outputs exist already (remove them, or set "
                     "IDC_SLURM_FORCEALL=1)")
    t0 = time.monotonic()
    # A hung snakemake ignores SIGTERM; SIGINT makes it cancel its SLURM jobs and stop.
    timeout_s = PROJECT_RUN_TIMEOUT_S if is_project else TOY_RUN_TIMEOUT_S
    proc = subprocess.run(["timeout", "-s", "INT", "-k", "30", str(timeout_s),
                           *snakemake_cmd(extra)],
                          cwd=workdir, env=slurm_env(), capture_output=True, text=True)
    seconds = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    (workdir / ".snakemake").mkdir(exist_ok=True)
    (workdir / ".snakemake" / "slurm-ci-run.log").write_text(log)
    m = re.search(r"SLURM run ID: (\S+)", log)
    record = RunRecord(workdir=workdir, extra=extra, is_project=is_project,
                       returncode=proc.returncode, seconds=seconds, log=log,
                       run_id=m.group(1) if m else "", planned=planned)
    record.submitted = submitted_jobs(log)
    # A dry run cannot tell local rules; the real run prints them as `localrule`.
    record.local = Counter(job.rule for local, job, _ in parse_job_blocks(log) if local)
    record.planned = [job for job in planned if job.rule not in record.local]
    if record.run_id:
        record.sacct = wait_for_sacct(record.run_id, set(record.submitted))
    return record


@pytest.fixture(scope="module")
def workflow_run(slurm_cluster, tmp_path_factory, request) -> RunRecord:
    workdir, extra, is_project = workflow_under_test(tmp_path_factory.mktemp("slurm"))
    record = run_workflow(workdir, extra, is_project)
    per_rule = Counter(job.rule for jobs in record.submitted.values() for job in jobs)
    summary = [
        f"[slurm] workflow: {'project ' + ' '.join(extra) if is_project else 'toy'} in {workdir}",
        f"[slurm] snakemake exit {record.returncode}, wall time {record.seconds:.1f} s, "
        f"{len(record.submitted)} sbatch jobs for {sum(per_rule.values())} workflow jobs "
        f"(+ local: {dict(record.local)})",
        "[slurm] jobs per rule: " + ", ".join(f"{r} {n}" for r, n in per_rule.items()),
    ]
    for jid, jobs in sorted(record.submitted.items(), key=lambda kv: int(kv[0])):
        row = record.sacct.get(jid, {})
        rules = Counter(job.rule for job in jobs)
        summary.append(f"[slurm]   job {jid:>5} {row.get('State', '?'):<10} "
                       f"{row.get('Elapsed', '?')} {row.get('AllocTRES', '?')}  "
                       + ", ".join(f"{r} x{n}" for r, n in rules.items()))
    report(request, "\n".join(summary))
    if record.returncode != 0:
        tail = "\n".join(record.log.splitlines()[-60:])
        pytest.fail(f"snakemake through SLURM failed (exit {record.returncode}):\n{tail}")
    return record


# ------------------------------------------------------------------------------------------------
# The checks


@slurm
def test_every_job_went_through_sbatch_and_completed(workflow_run: RunRecord) -> None:
    assert set(workflow_run.local) <= LOCAL_RULES, f"ran outside SLURM: {workflow_run.local}"
    planned = Counter(job.rule for job in workflow_run.planned)
    submitted = Counter(job.rule for jobs in workflow_run.submitted.values() for job in jobs)
    assert submitted == planned, "jobs per rule: submitted through sbatch vs planned by the DAG"
    assert workflow_run.run_id, "no 'SLURM run ID' in snakemake's log"
    # sacct lists exactly the jobs of this run (the job name is the run id) and all completed.
    assert set(workflow_run.sacct) == set(workflow_run.submitted)
    states = {jid: row["State"] for jid, row in workflow_run.sacct.items()}
    assert set(states.values()) == {"COMPLETED"}, states
    # The executor's comment names the rule (a packed group: the group).
    for jid, jobs in workflow_run.submitted.items():
        comment = workflow_run.sacct[jid]["Comment"]
        expected = f"rule_{jobs[0].rule}" if len(jobs) == 1 else "rule_"
        assert comment.startswith(expected), (jid, comment)


@slurm
def test_jobs_get_partition_account_gpus_time_and_memory(workflow_run: RunRecord) -> None:
    for jid, jobs in workflow_run.submitted.items():
        row = workflow_run.sacct[jid]
        assert row["Partition"] == PARTITION and row["Account"] == ACCOUNT, row
        # Resources as evaluated at submission (snakemake's log of the real run).
        gpus = [resource(job, "gpu") or 0 for job in jobs]
        runtimes = [resource(job, "runtime") for job in jobs]
        mems = [resource(job, "mem_mb") for job in jobs]
        assert None not in runtimes and None not in mems, [job.resources for job in jobs]
        for job, mem_mb in zip(jobs, mems):
            assert mem_mb <= NODE_MEM_MB, (job.rule, mem_mb, "max_mem_mb / IDC_SLURM_MAX_MEM_MB")
        limit, mem = minutes(row["Timelimit"]), int(row["ReqMem"].rstrip("M"))
        if len(jobs) == 1:
            assert gpus_of(row["AllocTRES"]) == gpus[0], (jobs[0].rule, row["AllocTRES"])
            assert limit == runtimes[0], (jobs[0].rule, row["Timelimit"])
            assert mem == mems[0], (jobs[0].rule, row["ReqMem"])
            # The executor asks for `cpus_per_task` where a rule sets it, else for its threads.
            cpus = resource(jobs[0], "cpus_per_task") or jobs[0].threads
            assert int(row["ReqCPUS"]) == cpus, (jobs[0].rule, row["ReqCPUS"])
        else:
            # A packed group shares one GPU; its members then run one after another, so the
            # time limit is the sum of their runtimes and the memory that of the largest.
            assert gpus_of(row["AllocTRES"]) == max(gpus), (jid, row["AllocTRES"])
            if min(gpus) >= 1:
                assert limit == sum(runtimes), (jid, row["Timelimit"], runtimes)
                assert mem == max(mems), (jid, row["ReqMem"], mems)
            else:  # CPU members may run side by side on the node's cores
                assert max(runtimes) <= limit <= sum(runtimes), (jid, row["Timelimit"])
                assert max(mems) <= mem <= sum(mems), (jid, row["ReqMem"])


@slurm
def test_outputs_were_written_inside_their_slurm_jobs(workflow_run: RunRecord) -> None:
    if workflow_run.is_project:
        pytest.skip("only the small workflow stamps its outputs with the SLURM job id")
    stamped = sorted((workflow_run.workdir / "results").rglob("*.txt"))
    assert len(stamped) == 6  # crop, teacher, 3 condensed images, table
    by_rule = {job.rule: jid for jid, jobs in workflow_run.submitted.items() for job in jobs}
    for path in stamped:
        line = path.read_text().splitlines()[-1]
        fields = dict(kv.split("=", 1) for kv in line.split())
        assert fields["slurm_job"] == by_rule[fields["rule"]], (path, line)
        gpu_rule = fields["rule"] in ("train_teacher", "condense_image")
        assert (fields["gpus"] != "none") == gpu_rule, (path, line)


@slurm
def test_a_training_job_ran_data_parallel_ranks(workflow_run: RunRecord) -> None:
    """config/slurm-ci.yaml gives one teacher two GPUs: one SLURM job, two torchrun ranks."""
    if not workflow_run.is_project:
        pytest.skip("only the project's workflow trains networks")
    multi = [(jid, job) for jid, jobs in workflow_run.submitted.items() for job in jobs
             if (resource(job, "ranks") or 1) > 1]
    assert multi, "no training job with more than one rank was submitted"
    results = workflow_run.workdir / "results" / "slurm-ci"
    for jid, job in multi:
        ranks = resource(job, "ranks")
        assert gpus_of(workflow_run.sacct[jid]["AllocTRES"]) == ranks, workflow_run.sacct[jid]
        teacher = dict(kv.split("=", 1) for kv in job.wildcards.split(", "))["teacher"]
        log = (results / "logs" / job.rule / f"{teacher}.log").read_text()
        assert f"launching {ranks} ranks" in log
        for rank in range(ranks):
            assert f"rank {rank} of {ranks} joined the gloo process group" in log, log[-2000:]
        train_log = json.loads((results / "teachers" / teacher / "train_log.json").read_text())
        assert train_log["settings"]["ranks"] == ranks


@slurm
def test_second_run_has_nothing_to_do(workflow_run: RunRecord) -> None:
    """Nothing was left incomplete: a second run finds every output up to date."""
    extra = [a for a in workflow_run.extra if a != "--forceall"]
    dry = subprocess.run(snakemake_cmd(["--dry-run", *extra]), cwd=workflow_run.workdir,
                         env=slurm_env(), capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]


# ------------------------------------------------------------------------------------------------
# The pre-timeout signal: checkpoint, fail, retry, resume

# A stand-in for a training loop that checkpoints on SIGTERM/SIGUSR1 and resumes from `.resume`.
_CHECKPOINTING_TRAINER = '''\
import json, os, signal, sys, time
from pathlib import Path

out = Path(sys.argv[1])
resume = out.with_name(out.name + ".resume")
started = out.with_name(out.name + ".started")


def write_atomic(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if resume.exists():
    state = json.loads(resume.read_text())
    write_atomic(out, json.dumps({**state, "resumed_in_job": os.environ.get("SLURM_JOB_ID")}))
    sys.exit(0)
received = []
for sig in (signal.SIGTERM, signal.SIGUSR1):
    signal.signal(sig, lambda num, frame: received.append(signal.Signals(num).name))
write_atomic(started, os.environ.get("SLURM_JOB_ID", ""))
step, t0 = 0, time.monotonic()
while not received and time.monotonic() - t0 < 120:
    step += 1
    time.sleep(0.05)
write_atomic(resume, json.dumps({"step": step, "signal": received[0] if received else None,
                                 "checkpointed_in_job": os.environ.get("SLURM_JOB_ID")}))
sys.exit(1)
'''


@slurm
def test_pre_timeout_signal_checkpoints_and_the_retry_resumes(slurm_cluster, tmp_path,
                                                               request) -> None:
    """What `--signal=B:USR1@300` of the profile does 300 s before a long job's time limit, done
    now with `scancel --batch --signal=USR1`: the job ends, the training process gets SIGTERM and
    writes its checkpoint, snakemake retries the job, and the retry resumes from the checkpoint."""
    (tmp_path / "trainer.py").write_text(_CHECKPOINTING_TRAINER)
    _profile_configfile(tmp_path)
    # Named like the real long rule, so it gets the profile's pre-timeout signal. Its time limit
    # (10 min) must exceed the signal's lead time (300 s): at runtime=5 SLURM itself signals every
    # attempt at its first periodic check, the retry dies too and a third job runs.
    (tmp_path / "Snakefile").write_text(f'''\
rule all:
    input: "results/model.txt"

localrules: all

rule train_sr:
    output: "results/model.txt"
    resources: gpu=1, mem_mb=500, runtime=10
    shell: "{sys.executable} trainer.py {{output}}"
''')
    profile = evaluated_profile({})
    assert profile["retries"] >= 1 and profile["rerun-incomplete"] is True
    assert "slurm_extra" in profile["set-resources"]["train_sr"]
    started = tmp_path / "results" / "model.txt.started"
    t0 = time.monotonic()
    proc = subprocess.Popen(["timeout", "-s", "INT", "-k", "30", "240", *snakemake_cmd([])],
                            cwd=tmp_path, env=slurm_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        while not started.exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() - t0 < 120, "the training job never started"
            time.sleep(0.5)
        first_job = started.read_text().strip()
        subprocess.run(["scancel", "--batch", "--signal=USR1", first_job], check=True)
        log, _ = proc.communicate(timeout=260)
    finally:
        if proc.poll() is None:
            proc.send_signal(2)
            proc.wait(60)
    seconds = time.monotonic() - t0
    (tmp_path / "snakemake.log").write_text(log)
    assert proc.returncode == 0, log[-4000:]
    state = json.loads((tmp_path / "results" / "model.txt").read_text())
    # The process saw SIGTERM (the batch shell exited on SIGUSR1, so SLURM ended the job) and
    # checkpointed inside the first job; a second SLURM job resumed from that checkpoint.
    assert state["signal"] == "SIGTERM" and state["step"] > 0, state
    assert state["checkpointed_in_job"] == first_job != state["resumed_in_job"], state
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    jobs = submitted_jobs(log)
    rows = wait_for_sacct(run_id, set(jobs))
    assert [job.rule for jid in sorted(jobs, key=int) for job in jobs[jid]] == ["train_sr"] * 2
    assert rows[first_job]["State"] != "COMPLETED" and rows[state["resumed_in_job"]]["State"] == (
        "COMPLETED"), rows
    report(request, f"[slurm] pre-timeout signal: job {first_job} checkpointed at step "
                    f"{state['step']} on {state['signal']} "
                    f"({rows[first_job]['State']}), job {state['resumed_in_job']} resumed; "
                    f"{seconds:.1f} s")


# ------------------------------------------------------------------------------------------------
# What the profile submits, without a cluster: partitions, GPU requests, gres, local rules

# Environment variables the profile reads; each test sets the ones it needs and clears the others.
_PROFILE_ENV = ("SLURM_PARTITION", "SLURM_CPU_PARTITION", "SLURM_GPU_PARTITION", "SLURM_GPU_MODEL",
                "SLURM_ACCOUNT", "IDC_SLURM_MAX_MEM_MB")


def _profile_env(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in _PROFILE_ENV}
    return {**base, **env}


def evaluated_profile(env: dict[str, str]) -> dict:
    """profiles/slurm/config.yaml as Snakemake reads it (YTE evaluated under ``env``)."""
    yte = pytest.importorskip("yte")
    code = ("import json, sys, yte; print(json.dumps(yte.process_yaml(open(sys.argv[1]).read())))")
    proc = subprocess.run([sys.executable, "-c", code, str(SLURM_PROFILE / "config.yaml")], env=_profile_env(env),
                          capture_output=True, text=True, check=True)
    assert yte  # imported here too, so a missing yte skips instead of failing in the subprocess
    return json.loads(proc.stdout)


# The shape of the project's rules: CPU rules, GPU rules, and select_baseline, which asks for a GPU
# only for teacher features (its jobs then have the teacher as input).
_PROFILE_TOY = '''\
rule all:
    input: "r/table.txt", "r/sel/random.npy", "r/sel/herding.npy", "r/sr.txt"

rule crop_patches:
    output: "r/crop.txt"
    resources: gpu=0, mem_mb=500, runtime=5
    shell: "touch {output}"

rule train_teacher:
    input: "r/crop.txt"
    output: "r/teacher.txt"
    threads: 2
    resources: gpu=2, mem_mb=500, runtime=10
    shell: "touch {output}"

rule select_baseline:
    input: unpack(lambda wc: {"teacher": "r/teacher.txt"} if wc.dataset == "herding" else {"store": "r/crop.txt"})
    output: "r/sel/{dataset}.npy"
    resources: gpu=lambda wc: int(wc.dataset == "herding"), mem_mb=500, runtime=5, cpus_per_task=4
    shell: "touch {output}"

rule train_sr:
    input: "r/crop.txt"
    output: "r/sr.txt"
    resources: gpu=1, mem_mb=500, runtime=10
    shell: "touch {output}"

rule make_table:
    input: "r/sr.txt"
    output: "r/table.txt"
    resources: gpu=0, mem_mb=500, runtime=5
    shell: "touch {output}"
'''


class _Resources(dict):
    """Job resources as the plugin reads them: ``get`` and attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err


def _value(text: str):
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def submitted_args(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """'rule[ wildcards]' -> the sbatch arguments snakemake-executor-plugin-slurm builds for it,
    from the resources a dry run with the profile gives (the plugin's own functions)."""
    plugin = pytest.importorskip("snakemake_executor_plugin_slurm")
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "Snakefile").write_text(_PROFILE_TOY)
    _profile_configfile(tmp_path)
    dry = subprocess.run([sys.executable, "-m", "snakemake", "--dry-run", "--profile", str(SLURM_PROFILE),
                          "--nocolor"], cwd=tmp_path, env=_profile_env(env), capture_output=True, text=True,
                         timeout=300)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    calls = {}
    for _, job, _ in parse_job_blocks(dry.stdout + dry.stderr):
        if job.rule == "all":
            continue
        resources = _Resources({k: _value(v) for k, v in job.resources.items()})
        fake = type("Job", (), {"resources": resources, "threads": job.threads, "name": job.rule})()
        executor = type("Executor", (), {"_partitions": None, "_fallback_partition": "CLUSTER-DEFAULT",
                                         "logger": None})()
        partition = plugin.Executor.get_partition_arg(executor, fake)
        params = {"run_uuid": "run", "slurm_logfile": "log", "comment_str": f"rule_{job.rule}",
                  "account": "", "partition": partition, "workdir": ""}
        call = get_submit_command(fake, params) + set_gres_string(fake)
        key = job.rule + (f" {job.wildcards}" if job.wildcards else "")
        calls[key] = call
    return calls


def _partition(call: str) -> str:
    m = re.search(r" -p (\S+)", call)
    return m.group(1).strip("'") if m else ""


def _gpus(call: str) -> str:
    m = re.search(r"--gpus=(\S+)", call)
    return m.group(1) if m else ""


def test_cpu_jobs_go_to_the_cpu_partition_and_gpu_jobs_ask_for_their_model(tmp_path):
    calls = submitted_args(tmp_path, {"SLURM_CPU_PARTITION": "cpu", "SLURM_GPU_PARTITION": "gpu",
                                      "SLURM_GPU_MODEL": "a100"})
    expected = {  # job -> (partition, --gpus)
        "crop_patches": ("cpu", ""),
        "make_table": ("cpu", ""),
        "select_baseline dataset=random": ("cpu", ""),
        "select_baseline dataset=herding": ("gpu", "a100:1"),
        "train_teacher": ("gpu", "a100:2"),
        "train_sr": ("gpu", "a100:1"),
    }
    assert {job: (_partition(call), _gpus(call)) for job, call in calls.items()} == expected, calls
    # multi-GPU jobs get no --ntasks-per-gpu (plugin >= 2.8): one task runs torchrun's ranks
    assert all("--ntasks-per-gpu" not in call for call in calls.values())
    assert "--ntasks=1" in calls["crop_patches"] and "--signal=B:USR1@300" in calls["train_sr"]


def test_one_partition_for_all_and_the_cluster_default(tmp_path):
    calls = submitted_args(tmp_path / "one", {"SLURM_PARTITION": "batch"})
    assert {_partition(c) for c in calls.values()} == {"batch"}
    assert _gpus(calls["train_teacher"]) == "2" and _gpus(calls["select_baseline dataset=random"]) == ""
    calls = submitted_args(tmp_path / "none", {})
    assert {_partition(c) for c in calls.values()} == {"CLUSTER-DEFAULT"}
    assert not any("a100" in c for c in calls.values())


def test_every_rule_of_the_workflow_is_a_cpu_rule_or_gets_the_gpu_settings():
    """Rules with `gpu=0` are CPU rules (CPU partition); every other rule must get the GPU
    partition and model in the profile (select_baseline per job)."""
    profile = evaluated_profile({"SLURM_GPU_PARTITION": "gpu", "SLURM_GPU_MODEL": "a100"})
    settings = profile["set-resources"]
    for smk in sorted((PROJECT_ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, re.M):
            rule, body = m.group(1), m.group(2)
            # a literal `gpu=0` makes a CPU rule; any other rule may ask for GPUs (a count from
            # the configuration: `gpu=lambda ...`, `**job_resources(...)`)
            if re.search(r"^\s+gpu=0,?$", body, re.M):
                assert rule not in settings or "gpu_model" not in settings[rule], rule
            else:
                assert "gpu_model" in settings.get(rule, {}) and "slurm_partition" in settings[rule], rule


def test_the_gres_shim_rewrites_gpu_requests(tmp_path):
    real = tmp_path / "bin" / "sbatch"
    real.parent.mkdir()
    real.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\ncat\n')
    real.chmod(0o755)
    shim = SLURM_PROFILE / "gres" / "sbatch"
    env = dict(os.environ, PATH=f"{shim.parent}{os.pathsep}{real.parent}{os.pathsep}{os.environ['PATH']}")
    cases = {
        ("--gpus=2", "-p", "gpu"): ["--gres=gpu:2", "-p", "gpu"],
        ("--gpus=a100:1", "--parsable"): ["--gres=gpu:a100:1", "--parsable"],
        ("--gpus=a100:0", "--mem", "10"): ["--mem", "10"],
        ("--gpus", "3", "-t", "5"): ["--gres=gpu:3", "-t", "5"],
        ("--ntasks=1",): ["--ntasks=1"],
    }
    for args, expected in cases.items():
        proc = subprocess.run(["sbatch", *args], env=env, input="#!/bin/sh\necho job\n", capture_output=True,
                              text=True, check=True)
        *argv, script1, script2 = proc.stdout.splitlines()
        assert argv == expected and [script1, script2] == ["#!/bin/sh", "echo job"], proc.stdout
    proc = subprocess.run(["sbatch", "--gpus=x:y"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "cannot translate --gpus=x:y" in proc.stderr


def test_downloads_test_sets_tables_and_figures_are_local_rules():
    rules = workflow_localrules()
    assert {"download_div2k", "prepare_testset", "build_demo_images", "make_table", "make_verdict",
            "plot_figures"} <= rules
    defined = set()
    for smk in (PROJECT_ROOT / "workflow" / "rules").glob("*.smk"):
        defined |= set(re.findall(r"^rule (\w+):", smk.read_text(), re.M))
    assert rules <= defined, rules - defined


def test_plugin_floor_is_what_the_profile_needs():
    """pyproject asks for the plugin version the profile header names (>= 2.8: no implicit
    --ntasks-per-gpu, plugin issue #316), and the installed plugin meets it."""
    import tomllib
    from importlib.metadata import version

    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    spec = next(d for d in pyproject["project"]["optional-dependencies"]["workflow"]
                if d.startswith("snakemake-executor-plugin-slurm"))
    floor = re.search(r">=\s*([\d.]+)", spec).group(1)
    header = (SLURM_PROFILE / "config.yaml").read_text().split("\n", 3)[0]
    assert f"snakemake-executor-plugin-slurm >= {floor}" in header, (spec, header)
    installed = tuple(int(x) for x in version("snakemake-executor-plugin-slurm").split(".")[:2])
    assert installed >= tuple(int(x) for x in floor.split(".")[:2])
