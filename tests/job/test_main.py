"""A job process's main, in its parts: what it started is ended with it, and the files its imports loaded."""

from __future__ import annotations

import subprocess
import sys

from host.config.loader import load
from host.config.sources import ImportRecorder
from host.job.main import imported_sources

ENDS = """
import subprocess, sys, time
from host.job.main import end_what_the_job_started
from host.tree import become_subreaper
become_subreaper()
left = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True),
        subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                                "time.sleep(60)"])]
end_what_the_job_started()
deadline = time.monotonic() + 20  # a SIGKILL lands a moment after it is sent
while any(p.poll() is None for p in left) and time.monotonic() < deadline:
    time.sleep(0.02)
print([p.poll() is None for p in left])
"""


def test_what_a_job_left_running_is_ended_with_it_even_in_a_session_of_its_own():
    out = subprocess.run([sys.executable, "-c", ENDS], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[False, False]", out
    assert "ended 2 process(es) the job left running" in out.stderr


def test_the_files_an_agents_imports_loaded_are_its_projects(tmp_path, monkeypatch):
    (tmp_path / "helpers_for_main.py").write_text("X = 1\n")
    (tmp_path / "agent_for_main.py").write_text("import json\nimport helpers_for_main\n\nasync def entrypoint(ctx):\n"
                                                "    pass\n")
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: agent_for_main.py:entrypoint\n")
    d = load([str(tmp_path)], check_imports=False).require_ok().agents[0]
    monkeypatch.syspath_prepend(str(tmp_path))
    from host.config.entrypoints import load_function

    with ImportRecorder() as imported:
        load_function(d.entrypoint)
    try:
        files = sorted(p.rsplit("/", 1)[1] for p in imported_sources(d, imported))
        assert files == ["agent_for_main.py", "helpers_for_main.py"]  # not json: it comes with the installation
    finally:
        for name in list(sys.modules):
            if name.endswith("agent_for_main") or name == "helpers_for_main":
                del sys.modules[name]
