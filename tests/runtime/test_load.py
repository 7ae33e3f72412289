"""What a host reports of each agent's load: the pure policy (worker_load), and the reporter that is the one
writer of every worker's status."""


from host.runtime.load import OPEN_CEILING, SERVER_TARGET_LOAD, LoadPolicy, LoadReporter, WorkerLoad, worker_load


def load(**kw):
    return worker_load(**{"cpu": 0.0, "jobs": 0, "max_jobs": 0, "threshold": 0.9, **kw})


def test_an_open_worker_always_reports_less_than_the_servers_target_load():
    # livekit-server offers nothing at or above its target (0.7): every free slot must stay below it
    for max_jobs in (1, 2, 4, 10, 100):
        for jobs in range(max_jobs):
            state = load(jobs=jobs, max_jobs=max_jobs)
            assert not state.full and state.load < SERVER_TARGET_LOAD and state.closed_because is None
    assert load(jobs=3, max_jobs=4).load == 0.525  # the case the server used to drop: 0.75 >= 0.7
    for cpu in (0.0, 0.5, 0.8, 0.89):
        assert load(cpu=cpu).load < SERVER_TARGET_LOAD and not load(cpu=cpu).full


def test_the_larger_of_cpu_and_slots_counts():
    assert load(cpu=0.45, jobs=1, max_jobs=4).load == 0.35  # cpu 0.45 / 0.9 = 0.5 of the target
    assert load(cpu=0.09, jobs=2, max_jobs=4).load == 0.35  # slots 2 / 4
    assert load(cpu=0.45, threshold=0.9, target=0.5).load == 0.25


def test_full_names_why():
    assert load(jobs=4, max_jobs=4) == WorkerLoad(1.0, True, "at max_jobs (4)", "max_jobs")
    assert load(cpu=0.95) == WorkerLoad(1.0, True, "its CPU use 95% reached --load-threshold 90%", "cpu")
    assert load(process_error="ImportError: x") == WorkerLoad(1.0, True, "cannot start job processes: ImportError: x",
                                                              "no_process")


def test_at_the_threshold_only_the_agents_taking_their_share_close():
    # one agent's jobs take the CPU: that agent closes, an agent whose jobs use next to nothing stays open
    hog = load(cpu=0.95, agent_cpu=0.93, busy_agents=1)
    assert hog == WorkerLoad(1.0, True, "its CPU use 95% reached --load-threshold 90%; this agent's jobs use 93%",
                             "cpu_share")
    quiet = load(cpu=0.95, agent_cpu=0.0, busy_agents=1, jobs=1, max_jobs=4)
    assert quiet == WorkerLoad(round(SERVER_TARGET_LOAD * OPEN_CEILING, 3), False, None)  # open, the last choice
    # two agents sharing the CPU alike both take their share: both close
    assert load(cpu=0.95, agent_cpu=0.46, busy_agents=2).full
    assert load(cpu=0.95, agent_cpu=0.44, busy_agents=2).full
    assert not load(cpu=0.95, agent_cpu=0.2, busy_agents=2).full
    # the CPU goes elsewhere (templates starting, the host): the agent using the most still closes, so the
    # host sheds something
    assert load(cpu=0.95, agent_cpu=0.2, busy_agents=2, top_agent=True).full
    assert load(cpu=0.95).full  # no figure for the agent: the host's use decides
    assert load(cpu=0.95, agent_cpu=0.0, process_error="x").closed == "no_process"


def test_threshold_zero_leaves_cpu_out():
    assert load(cpu=0.99, threshold=0.0) == WorkerLoad(0.0, False, None)
    assert load(cpu=0.99, threshold=0.0, jobs=1, max_jobs=2).load == 0.35


def test_a_machine_busy_with_other_work_leaves_the_host_open_as_the_last_choice():
    # a dispatch that only this host can take must still be offered to it: never full, always under the target
    for machine in (0.9, 0.95, 1.0):
        state = load(cpu=0.1, machine_cpu=machine)
        assert not state.full and state.closed_because is None
        assert state.load == round(SERVER_TARGET_LOAD * OPEN_CEILING, 3) < SERVER_TARGET_LOAD
    # below the threshold the machine's use counts like the host's own: a host with room is preferred
    assert load(cpu=0.09, machine_cpu=0.45).load == 0.35
    assert load(cpu=0.99, machine_cpu=0.99, threshold=0.0) == WorkerLoad(0.0, False, None)


def test_a_host_running_no_job_is_not_closed_by_its_own_start_up():
    starting = load(cpu=0.95, host_jobs=0)  # templates importing, processes prewarming: nothing to shed
    assert not starting.full and starting.load == round(SERVER_TARGET_LOAD * OPEN_CEILING, 3)
    assert load(cpu=0.95, host_jobs=1).full


class Worker:
    def __init__(self) -> None:
        self.updates: list[tuple[bool, float, int]] = []

    async def update_worker(self, *, full: bool, load: float, job_count: int) -> None:
        self.updates.append((full, load, job_count))


class Pool:
    last_error = None
    idle_count = 1


def agent(tmp_path, max_jobs: int):
    from host.config.loader import load as load_files
    from host.runtime.agents import Agent, Version

    (tmp_path / "a.yaml").write_text(f"name: a\nentrypoint: m:f\nlimits: {{max_jobs: {max_jobs}}}\n")
    d = load_files([str(tmp_path)], check_imports=False).require_ok().agents[0]
    return Agent((Version(d, None, Pool()),), Worker())  # type: ignore[arg-type]


async def test_the_reporter_is_the_one_writer_and_says_each_change_of_reason_once(tmp_path, caplog):
    from host.ops.resources import CpuLoad

    a = agent(tmp_path, max_jobs=2)
    reporter = LoadReporter(CpuLoad(sampler=lambda: 0.0, machine_sampler=lambda: 0.0), LoadPolicy(0.9))
    with caplog.at_level("INFO", "agenthost.host"):
        await reporter.report(a, jobs=1, host_jobs=1, bounded=(1, 2))
        await reporter.report(a, jobs=2, host_jobs=2, bounded=(2, 2))
        await reporter.report(a, jobs=2, host_jobs=2, bounded=(2, 2))
        await reporter.report(a, jobs=1, host_jobs=1, bounded=(1, 2))
        await reporter.draining(a.worker, 1)
    assert a.worker.updates == [(False, round(SERVER_TARGET_LOAD * 0.5, 3), 1), (True, 1.0, 2), (True, 1.0, 2),
                                (False, round(SERVER_TARGET_LOAD * 0.5, 3), 1), (True, 1.0, 1)]
    assert caplog.text.count("agent a takes no new jobs: at max_jobs (2)") == 1
    assert caplog.text.count("agent a takes jobs again") == 1

