"""Every Redis key sweepd writes, its type, and what it holds: the one place that names them.

IDs are checked (``check_id``, from ids.py) before they reach a key name, so a key can never be
steered into another sweep's or another program's keys. tests/test_keys.py holds this table to the
functions below and to docs/design.md's summary of it.

sweepd's own keys (prefix ``sweepd:``)

==========================================  ======  ==============================================
key                                         type    holds
==========================================  ======  ==============================================
``sweepd:sweeps``                           ZSET    sweep id -> creation time (unix seconds)
``sweepd:sweep:<sid>``                      HASH    the sweep: ``id``, ``name``, ``config`` (the
                                                    user's config as JSON), ``seed``, ``state``
                                                    (running, paused, stopped, cancelled),
                                                    ``next_index`` (next search point),
                                                    ``created_at``, ``target_reached`` (``1`` once
                                                    an accepted log reached ``metric.target``);
                                                    in a pool (pools.py): ``pool``, ``priority``,
                                                    ``weight``, ``points`` (a grid's size, else
                                                    empty), ``run_cap`` (0: none)
``sweepd:sweep:<sid>:runs``                 ZSET    run id -> creation order (the sweep's runs)
``sweepd:sweep:<sid>:held``                 ZSET    run id -> lease deadline (ms, Redis clock):
                                                    the runs an agent holds (running, preempting)
``sweepd:sweep:<sid>:wake``                 LIST    tokens that wake idle agents: one pushed per
                                                    event while fewer than 64 wait, one per agent
                                                    seen (``wake_all``) when every idle agent must
                                                    look (the sweep may be complete, or running
                                                    again); see the prelude
``sweepd:sweep:<sid>:agents``               ZSET    agent id -> last heartbeat (ms, the agent's
                                                    clock): refreshed every heartbeat, idle or not
``sweepd:sweep:<sid>:seq``                  STRING  counter for the order of ``:runs``
``sweepd:sweep:<sid>:up``                   STRING  ``<from>:<back>`` (ms, Redis clock): the
                                                    store's last return to the sweep's agents
                                                    (its silence began after ``from``, ended at
                                                    ``back``); expires 1.5 heartbeats after the
                                                    last heartbeat or renewal of any of them, so
                                                    it is missing after an outage (see reap.lua)
``sweepd:sweep:<sid>:seen``                 STRING  ms, Redis clock: the last renewal or reap
                                                    (where the next silence begins)
``sweepd:sweep:<sid>:events``               LIST    recent events as JSON, newest first (capped at
                                                    100): ``requeued`` (preemptions, retries, lost
                                                    leases: run, attempt, reason) and ``resumed``
                                                    (run, attempt, agent, reason, ``after_ms``:
                                                    the recovery)
``sweepd:pools``                            SET     every pool name a sweep was put in
                                                    (``sweep create --pool``, ``sweep set --pool``)
                                                    or a pool agent started on
``sweepd:pool:<pool>``                      SET     the ids of the pool's sweeps (a sweep is in at
                                                    most one pool: its hash's ``pool``)
``sweepd:pool:<pool>:wake``                 LIST    tokens that wake the pool's idle agents: the
                                                    prelude's ``wake``/``wake_all`` push here too
                                                    when the sweep's hash names a pool
``sweepd:pool:<pool>:agents``               ZSET    pool agent id -> last heartbeat (ms, the
                                                    agent's clock), as a sweep's ``:agents``
``sweepd:sweep:<sid>:pbt``                  HASH    PBT's record (written by pbt_standing.lua and
                                                    pbt_decide.lua): ``s:<step>:<member>`` -> its
                                                    {value, run} (JSON) at that step, once;
                                                    ``d:<member>:<step>`` -> the decision (JSON,
                                                    written once); ``last:<member>`` -> the
                                                    highest step decided for it
``sweepd:sweep:<sid>:pins``                 HASH    run -> ``<run> <snapshot>``: another run's
                                                    snapshot it started from by reference (a PBT
                                                    exploit, object-store root); written by
                                                    pbt_decide.lua, deleted by the run's first own
                                                    commit (checkpoint.lua), whose trims keep every
                                                    pinned snapshot
``sweepd:pool:<pool>:held``                 ZSET    sweep id -> its earliest lease deadline (ms,
                                                    Redis clock), for the pool's sweeps holding
                                                    runs: kept by every script that writes a
                                                    sweep's ``:held`` (the prelude's
                                                    ``index_held``), read by pool_leases.lua
``sweepd:pool:<pool>:gen``                  STRING  Redis's clock (``sec.usec``) at the pool's last
                                                    change (a token pushed, a run claimed, created
                                                    or resumed, a target reached): a pool
                                                    agent's look that found no work is not
                                                    repeated until it changes
``sweepd:agent:<aid>``                      HASH    ``host``, ``pid``, ``sweep_id``, ``run_id``,
                                                    ``version``, ``started_at``, ``heartbeat_at``
                                                    (when the record was last written: readers
                                                    take the ``:agents`` score);
                                                    a GPU agent's ``slots`` (JSON: a list of
                                                    ``{slot, gpus, run_id}``) and ``run_id`` its runs,
                                                    comma-joined; a pool agent's ``pool`` (its
                                                    ``sweep_id`` empty); written when a field changes,
                                                    its TTL (a lease) pushed on every heartbeat:
                                                    expires when the agent goes silent
``sweepd:run:<rid>``                        HASH    the run: ``id``, ``sweep_id``, ``state``,
                                                    ``params`` (JSON), ``attempt``, ``token``,
                                                    ``agent_id`` (the holder: an agent, or a
                                                    script run by hand), ``exit_code``, ``index``
                                                    (search point), ``origin`` (``search``,
                                                    ``enqueue``, ``manual``), ``created_at``,
                                                    ``started_at``, ``ended_at``, ``reason``,
                                                    ``requeues``, ``preempted_at``,
                                                    ``renewed_at`` (the holder's last renewal),
                                                    ``lease_ms`` (its lease: reap.lua's grace),
                                                    ``interrupted_at`` (set while a requeued run
                                                    waits: when it was preempted or its holder
                                                    last renewed; a claim turns it into a
                                                    ``resumed`` event and clears it),
                                                    ``stop_requested``, ``requeue_requested``,
                                                    ``cut`` (what the bounds cut of its data:
                                                    bounds.py), ``history_bytes`` (its history's
                                                    size, log.lua), ``quick_marks`` (attempts in a
                                                    row that marked themselves preempting and
                                                    exited at once);
                                                    ASHA: ``rung`` (the rung it was last paused
                                                    at), ``paused_at``; PBT: ``pbt`` (JSON:
                                                    member, generation, parent)
``sweepd:run:<rid>:summary``                HASH    metric name -> its last value (JSON); its
                                                    ``_step`` is the last step the run logged,
                                                    where a resumed attempt continues from
``sweepd:run:<rid>:curve``                  LIST    the sweep metric's numeric values, one per
                                                    logged row that has one, oldest first (capped
                                                    at 10,000): what hyperband judges
``sweepd:run:<rid>:history``                LIST    metric rows as JSON (with ``_step``), oldest
                                                    first, one series across attempts (capped at
                                                    10,000 rows and 32 MiB)
``sweepd:run:<rid>:log:<attempt>``          LIST    output lines of one attempt (capped at 10,000
                                                    lines, 4 MiB); only the newest 3 attempts'
                                                    are kept (claim.lua, resume.lua)
``sweepd:run:<rid>:checkpoints``            LIST    the run's committed checkpoint snapshots as
                                                    JSON (``snapshot``, ``attempt``, ``files``,
                                                    ``bytes``, ``committed_at`` ms), newest first:
                                                    the head is the latest, the one a resuming
                                                    attempt downloads; only ``checkpoint.lua``
                                                    (fenced by the holder's token) pushes, and
                                                    trims it to the snapshots kept (and pinned);
                                                    ``pbt_decide.lua`` pushes an exploit's first:
                                                    a reference, ``run`` naming whose objects
==========================================  ======  ==============================================

One sweep ID is reserved: ``manual`` (``sweepd:sweep:manual`` and its keys) holds the runs scripts
start by hand with no sweep named; ``resume.lua`` creates it, stopped, on first use (runs.py).

rq's keys (written in rq's own layout so that ``rq info`` and rq dashboards see the queue)

==========================================  ======  ==============================================
key                                         type    holds
==========================================  ======  ==============================================
``rq:queues``                               SET     every rq queue key (``rq:queue:sweepd-<sid>``)
``rq:queue:sweepd-<sid>``                   LIST    ids of the sweep's queued runs, head first
``rq:job:<rid>``                            HASH    rq's job for the run (JSON serializer; its
                                                    function only refuses to run: see jobs.py)
==========================================  ======  ==============================================
"""

from __future__ import annotations

# The ID rules live in ids.py; keys.ID_RE and keys.check_id stay importable from here.
from .ids import ID_RE as ID_RE
from .ids import check_id as check_id

PREFIX = "sweepd:"
RQ_QUEUE_PREFIX = "rq:queue:"
RQ_JOB_PREFIX = "rq:job:"
RQ_QUEUES = "rq:queues"

SWEEPS = PREFIX + "sweeps"
POOLS = PREFIX + "pools"


def sweep(sid: str) -> str:
    return f"{PREFIX}sweep:{sid}"


def sweep_runs(sid: str) -> str:
    return f"{PREFIX}sweep:{sid}:runs"


def sweep_held(sid: str) -> str:
    return f"{PREFIX}sweep:{sid}:held"


def sweep_wake(sid: str) -> str:
    return f"{PREFIX}sweep:{sid}:wake"


def sweep_agents(sid: str) -> str:
    return f"{PREFIX}sweep:{sid}:agents"


def sweep_up(sid: str) -> str:
    return f"{PREFIX}sweep:{sid}:up"


def sweep_seen(sid: str) -> str:
    return f"{PREFIX}sweep:{sid}:seen"


def sweep_seq(sid: str) -> str:
    return f"{PREFIX}sweep:{sid}:seq"


def sweep_events(sid: str) -> str:
    return f"{PREFIX}sweep:{sid}:events"


def pool(name: str) -> str:
    return f"{PREFIX}pool:{name}"


def pool_wake(name: str) -> str:
    return f"{PREFIX}pool:{name}:wake"


def pool_agents(name: str) -> str:
    return f"{PREFIX}pool:{name}:agents"


def sweep_pbt(sid: str) -> str:
    return f"{PREFIX}sweep:{sid}:pbt"


def sweep_pins(sid: str) -> str:
    """HASH run -> "<run> <snapshot>": the snapshot an exploit's new run starts from by reference
    (another run's objects hold it), until the new run commits its own; trimming keeps it."""
    return f"{PREFIX}sweep:{sid}:pins"


def pool_held(name: str) -> str:
    return f"{PREFIX}pool:{name}:held"


def pool_gen(name: str) -> str:
    return f"{PREFIX}pool:{name}:gen"


def agent(aid: str) -> str:
    return f"{PREFIX}agent:{aid}"


def run(rid: str) -> str:
    return f"{PREFIX}run:{rid}"


def run_summary(rid: str) -> str:
    return f"{PREFIX}run:{rid}:summary"


def run_curve(rid: str) -> str:
    return f"{PREFIX}run:{rid}:curve"


def run_history(rid: str) -> str:
    return f"{PREFIX}run:{rid}:history"


def run_log(rid: str, attempt: int) -> str:
    return f"{PREFIX}run:{rid}:log:{attempt}"


def run_checkpoints(rid: str) -> str:
    return f"{PREFIX}run:{rid}:checkpoints"


def rq_queue_name(sid: str) -> str:
    """The rq queue name of a sweep (what ``rq info`` prints)."""
    return f"sweepd-{sid}"


def rq_queue(sid: str) -> str:
    return RQ_QUEUE_PREFIX + rq_queue_name(sid)


def rq_job(rid: str) -> str:
    return RQ_JOB_PREFIX + rid
