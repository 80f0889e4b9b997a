"""The restart policy of `manage.py serve`, with fake processes and a fake clock: no waiting."""

import json
import logging
import signal
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from cvsa_ml.supervisor import (
    RestartBackoff,
    ServeStatus,
    Supervisor,
    WebServerExited,
    exit_description,
    read_serve_status,
)


class FakeProcess:
    _next_pid = 1000

    def __init__(self, name: str):
        FakeProcess._next_pid += 1
        self.name = name
        self.pid = FakeProcess._next_pid
        self.returncode = None
        self.signals = []
        self.ignores_sigterm = False
        self.killed = False

    def exit(self, code: int) -> None:
        self.returncode = code

    def poll(self):
        return self.returncode

    def send_signal(self, sig):
        self.signals.append(sig)
        if sig == signal.SIGTERM and not self.ignores_sigterm:
            self.returncode = 0

    def wait(self, timeout=None):
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.name, timeout)
        return self.returncode

    def kill(self):
        self.killed = True
        self.returncode = -9


class FakeClock:
    """Monotonic seconds; `sleep` advances it and runs what was scheduled for that time."""

    def __init__(self):
        self.now = 0.0
        self.events = []  # (time, action)

    def at(self, when: float, action) -> None:
        self.events.append((when, action))
        self.events.sort(key=lambda event: event[0])

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        while self.events and self.events[0][0] <= self.now:
            _, action = self.events.pop(0)
            action()

    def wall(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.now)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def processes():
    return {"web": [], "worker": []}


@pytest.fixture
def make_supervisor(clock, processes, tmp_path):
    def make(**options):
        def start(kind):
            def starter():
                process = FakeProcess(kind)
                process.started_at = clock.now
                processes[kind].append(process)
                return process
            return starter

        return Supervisor(
            start_web=start("web"), start_worker=start("worker"), status_file=tmp_path / "status.json",
            clock=lambda: clock.now, now=clock.wall, sleep=clock.sleep, poll_interval=0.5, **options,
        )

    return make


def _status(tmp_path) -> dict:
    return json.loads((tmp_path / "status.json").read_text())


def _run_until_web_exits(supervisor, clock, processes, at: float):
    clock.at(at, lambda: processes["web"][0].exit(3))
    with pytest.raises(WebServerExited) as exited:
        supervisor.run()
    return exited.value


def test_dead_worker_is_restarted_after_a_doubling_back_off_while_the_web_keeps_running(
        make_supervisor, clock, processes, tmp_path):
    supervisor = make_supervisor(backoff=RestartBackoff(first_delay=1, max_delay=60, stable_after=120))
    supervisor.start()

    def kill_current_worker():
        processes["worker"][-1].exit(-9)

    # Each new worker is killed 0.5 s after its start: the delays grow 1, 2, 4, 8 s.
    for when in (10, 11.5, 14, 18.5):
        clock.at(when, kill_current_worker)
    _run_until_web_exits(supervisor, clock, processes, at=40)

    assert [worker.started_at for worker in processes["worker"]] == [0, 11, 13.5, 18, 26.5]
    # The web server was started once and never touched.
    assert len(processes["web"]) == 1 and processes["web"][0].signals == []
    assert supervisor.restarts == 4


def test_back_off_is_capped_and_resets_after_the_worker_stayed_up(make_supervisor, clock, processes):
    backoff = RestartBackoff(first_delay=1, max_delay=8, stable_after=100)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]

    supervisor = make_supervisor(backoff=backoff)
    supervisor.start()
    died_at = []

    def die():
        died_at.append(clock.now)
        processes["worker"][-1].exit(1)

    # Four quick deaths (delays 1, 2, 4, 8), then the fifth worker stays up 200 s: its death is "the first" again.
    clock.at(5, die)
    clock.at(6.5, die)     # worker 2 started at 6, died at once
    clock.at(9, die)       # worker 3 started at 8.5
    clock.at(13.5, die)    # worker 4 started at 13
    clock.at(222, die)     # worker 5 started at 21.5, up 200 s
    _run_until_web_exits(supervisor, clock, processes, at=230)

    # Delays 1, 2, 4, 8; then 1 s again (not the capped 8) after the worker that stayed up.
    assert [worker.started_at for worker in processes["worker"]] == [0, 6, 8.5, 13, 21.5, 223]
    assert supervisor.restarts == 5


def test_exit_code_and_restarts_are_written_for_health(make_supervisor, clock, processes, tmp_path, caplog):
    supervisor = make_supervisor()
    supervisor.start()
    first_worker = processes["worker"][0]
    assert _status(tmp_path)["state"] == "running"
    assert _status(tmp_path)["worker_pid"] == first_worker.pid

    first_worker.exit(-signal.SIGKILL)
    with caplog.at_level(logging.ERROR, logger="cvsa_ml.supervisor"):
        supervisor.check()

    status = _status(tmp_path)
    assert status["state"] == "restarting"
    assert status["worker_pid"] is None
    assert status["last_exit_code"] == -9
    assert status["last_exit_at"] == "2026-01-01T00:00:00+00:00"
    assert status["next_restart_at"] == "2026-01-01T00:00:01+00:00"
    assert "exited with code -9 (SIGKILL)" in caplog.text

    clock.sleep(1)
    supervisor.check()

    status = _status(tmp_path)
    assert status["state"] == "running" and status["restarts"] == 1
    assert status["worker_pid"] == processes["worker"][1].pid
    assert status["last_exit_code"] == -9  # kept: health shows the last crash


def test_dead_web_server_stops_the_run_with_its_exit_code(make_supervisor, clock, processes, tmp_path):
    supervisor = make_supervisor()
    supervisor.start()

    exited = _run_until_web_exits(supervisor, clock, processes, at=3)
    supervisor.stop()

    assert exited.returncode == 3
    assert "web server exited with code 3" in str(exited)
    worker = processes["worker"][0]
    assert worker.signals == [signal.SIGTERM] and worker.returncode == 0
    assert _status(tmp_path)["state"] == "stopped"


def test_stop_terminates_both_and_kills_a_child_that_ignores_sigterm(make_supervisor, processes, tmp_path):
    supervisor = make_supervisor(stop_timeout=5)
    supervisor.start()
    stubborn_worker = processes["worker"][0]
    stubborn_worker.ignores_sigterm = True

    supervisor.stop()

    web = processes["web"][0]
    assert web.signals == [signal.SIGTERM] and not web.killed
    assert stubborn_worker.signals == [signal.SIGTERM] and stubborn_worker.killed
    assert _status(tmp_path)["state"] == "stopped"


def test_ctrl_c_while_waiting_to_restart_starts_no_new_worker(make_supervisor, clock, processes, tmp_path):
    supervisor = make_supervisor()
    supervisor.start()
    clock.at(2, lambda: processes["worker"][0].exit(1))

    def interrupt():
        raise KeyboardInterrupt

    clock.at(2.5, interrupt)  # before the 1 s back-off is over
    with pytest.raises(KeyboardInterrupt):
        supervisor.run()
    supervisor.stop()
    clock.sleep(10)

    assert len(processes["worker"]) == 1
    assert _status(tmp_path) | {"supervisor_pid": None} == {
        "supervisor_pid": None, "state": "stopped", "web_pid": processes["web"][0].pid, "worker_pid": None,
        "restarts": 0, "last_exit_code": 1, "last_exit_at": "2026-01-01T00:00:02+00:00", "next_restart_at": None,
    }


def test_status_of_a_serve_that_was_killed_is_ignored(tmp_path):
    path = tmp_path / "status.json"
    process = subprocess.Popen(["true"])
    process.wait()
    dead_pid = process.pid
    path.write_text(json.dumps({
        "supervisor_pid": dead_pid, "state": "running", "web_pid": 1, "worker_pid": 2, "restarts": 3,
        "last_exit_code": 1, "last_exit_at": None, "next_restart_at": None,
    }))

    assert read_serve_status(path) is None


def test_unreadable_status_is_no_status(tmp_path):
    assert read_serve_status(tmp_path / "missing.json") is None
    (tmp_path / "garbage.json").write_text("{not json")
    assert read_serve_status(tmp_path / "garbage.json") is None
    (tmp_path / "other.json").write_text(json.dumps({"unexpected": 1}))
    assert read_serve_status(tmp_path / "other.json") is None


def test_status_of_a_live_serve_is_read(tmp_path):
    import os

    path = tmp_path / "status.json"
    status = ServeStatus(os.getpid(), "running", 1, 2, 0, None, None, None)
    path.write_text(json.dumps(status.__dict__))

    assert read_serve_status(path) == status


@pytest.mark.parametrize(("code", "text"), [(1, "1"), (0, "0"), (-9, "-9 (SIGKILL)"), (-15, "-15 (SIGTERM)"), (None, "None")])
def test_exit_description_names_the_signal(code, text):
    assert exit_description(code) == text
