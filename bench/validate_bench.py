"""How fast `agenthost validate` checks N agent files, next to check-jsonschema on the same files.

Both validate the same generated files (each with an inline metadata schema) against the same
schema (schemas/agent.schema.json) in this run; `agenthost validate --no-imports` does the same work
(plus durations, templates, duplicate names and metadata schemas), and the run with imports adds the
entrypoint check. Prints seconds and the ratio. Usage: python bench/validate_bench.py [N] [REPEATS]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_files(folder: Path, n: int) -> None:
    (folder / "agent_mod.py").write_text("async def entrypoint(ctx):\n    pass\n")
    for i in range(n):
        (folder / f"agent-{i:05d}.yaml").write_text(
            f"name: agent-{i}\nentrypoint: agent_mod.py:entrypoint\ndispatch: explicit\n"
            f"participant:\n  identity: 'agent-{{job_id}}'\n  name: Agent {i}\n"
            "shutdown:\n  when: participants_left\n  timeout: 10s\n"
            "limits:\n  max_jobs: 4\nprocesses:\n  idle: 1\n  init_timeout: 5s\n"
            f"log_fields:\n  index: {i}\n"
            "metadata:\n  required: true\n  schema:\n    type: object\n    required: [user_id]\n"
            "    properties:\n      user_id: {type: string, minLength: 1}\n      language: {enum: [en, fr, de]}\n")


def timed(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{cmd[:3]} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return statistics.median(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    folder = Path(tempfile.mkdtemp(prefix="agenthost-bench-"))
    try:
        make_files(folder, n)
        files = sorted(str(p) for p in folder.glob("*.yaml"))
        check_jsonschema = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
        if check_jsonschema is None:
            raise SystemExit("check-jsonschema is not installed (pip install -e '.[test]')")
        schema = str(ROOT / "schemas" / "agent.schema.json")
        ours = timed([sys.executable, "-m", "host", "validate", "--no-imports", str(folder)], repeats)
        ours_imports = timed([sys.executable, "-m", "host", "validate", str(folder)], repeats)
        peer = timed([check_jsonschema, "--schemafile", schema, *files], repeats)
        print(f"files: {n}, median of {repeats} runs (wall seconds, whole process)")
        print(f"agenthost validate --no-imports : {ours:.3f}s")
        print(f"agenthost validate (imports)    : {ours_imports:.3f}s")
        print(f"check-jsonschema                : {peer:.3f}s")
        print(f"ratio check-jsonschema / agenthost --no-imports: {peer / ours:.2f}x")
        print(f"ratio check-jsonschema / agenthost (imports)   : {peer / ours_imports:.2f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
