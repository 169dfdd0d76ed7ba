"""Which SLURM job steps are a run's, and who gets the child signal itself: decided without SLURM.

The lines are ``scontrol -o show step JOB`` as Debian's SLURM 22.05 prints them (an array task's
batch step and an srun's step, the preemption relay's step of the agent's batch script). The I/O is
checked on a real cluster by tests/test_slurm.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from sweepd.agent.daemon import slurm_steps
from sweepd.agent.daemon.slurm_steps import Step, direct, ours, parse

SHOWN = """\
StepId=5_1.batch UserId=0 StartTime=2026-12-07T00:48:13 TimeLimit=UNLIMITED State=RUNNING Partition=low \
NodeList=vm Nodes=1 CPUs=0 Tasks=1 Name=batch Network=(null) TRES=(null) ResvPorts=(null) CPUFreqReq=Default \
SrunHost:Pid=(null):0
StepId=5_1.0 UserId=0 StartTime=2026-12-07T00:48:13 TimeLimit=UNLIMITED State=RUNNING Partition=low \
NodeList=vm Nodes=1 CPUs=0 Tasks=1 Name=sweepd-preempt-relay Network=(null) TRES=cpu=1,node=1 \
ResvPorts=(null) CPUFreqReq=Default Dist=Block SrunHost:Pid=vm:4000
StepId=5_1.1 UserId=0 StartTime=2026-12-07T00:48:14 TimeLimit=UNLIMITED State=RUNNING Partition=low \
NodeList=vm Nodes=1 CPUs=2 Tasks=2 Name=python3 Network=(null) TRES=cpu=2,mem=24105M,node=1 \
ResvPorts=(null) CPUFreqReq=Default Dist=Block SrunHost:Pid=vm.cluster.example:12569
StepId=5_1.extern UserId=0 State=RUNNING SrunHost:Pid=(null):0
"""


def test_the_steps_an_srun_started_are_read_with_their_srun() -> None:
    assert parse(SHOWN) == [Step("5_1.0", "vm", 4000), Step("5_1.1", "vm.cluster.example", 12569)]
    assert parse("") == [] and parse("slurm_get_job_steps error: Invalid job id specified") == []


def test_a_step_is_the_runs_when_its_srun_is_in_the_runs_tree_on_this_node() -> None:
    steps = parse(SHOWN)
    # The run's srun is 12569; 4000 is the batch script's relay, another process of the job.
    assert [s.id for s in ours(steps, "vm", {12569, 12570})] == ["5_1.1"]
    assert [s.id for s in ours(steps, "vm.cluster.example", {12569})] == ["5_1.1"]  # short names compared
    # The same pid on another node is another srun (a rank's own srun, elsewhere).
    assert ours(steps, "node7", {12569}) == []
    assert ours(steps, "vm", set()) == []


def test_the_sruns_of_the_steps_do_not_get_the_signal_the_rest_of_the_group_does() -> None:
    # srun answers SIGTERM by killing its tasks: it is left out; a wrapper beside it is not.
    assert direct([100, 101, 102], owners={101}) == [100, 102]
    assert direct([101], owners={101}) == []


def test_outside_an_allocation_nothing_is_looked_up_and_the_group_is_signalled_as_before() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        steps = slurm_steps.Steps(child.pid, environ={})
        assert steps.sruns() == set() and not steps.tell(signal.SIGUSR1)
        steps.end(set())  # nothing known, nothing run
        assert child.poll() is None  # it got nothing
        # Inside an allocation, a tree without an srun has no step either: no command is run.
        inside = slurm_steps.Steps(child.pid, environ={"SLURM_JOB_ID": "5"})
        assert inside.sruns() == set() and inside.find(set()) == [] and not inside.tell(signal.SIGUSR1)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
