"""Private memory (USS) of a job process when the host runs as a script, as the `agenthost` command does:
multiprocessing runs the main script again in every process it starts, so whatever the script imports is
imported again after the fork unless the fork server preloaded it. Prints the figure with the preload the
host uses and without it. Usage: python bench/main_script_bench.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = '''\
import sys
from host.cli import main  # what the agenthost console script imports
if __name__ == "__main__":
    import host.process.mp as mp
    if sys.argv[1] == "without":
        mp.mp_context.set_forkserver_preload([m for m in mp.PRELOAD if m != "host.cli"] + mp.FREEZE)
    from uss_child import uss
    queue = mp.mp_context.Queue()
    sizes = []
    for _ in range(3):
        p = mp.mp_context.Process(target=uss, args=(queue,))
        p.start()
        sizes.append(queue.get())
        p.join()
    print(sorted(sizes)[1])
'''

CHILD = '''\
def uss(queue):
    import psutil
    queue.put(psutil.Process().memory_full_info().uss / 2**20)
'''


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="agenthost-main-script-"))
    (folder / "agenthost_like.py").write_text(SCRIPT)
    (folder / "uss_child.py").write_text(CHILD)
    figures = {}
    for mode in ("with", "without"):
        done = subprocess.run([sys.executable, str(folder / "agenthost_like.py"), mode], capture_output=True,
                              text=True, cwd=folder, check=True, timeout=120)
        figures[mode] = float(done.stdout.strip().splitlines()[-1])
    print(f"job process USS, host run as a script: {figures['with']:.1f} MB with the fork server preloading "
          f"the script's imports, {figures['without']:.1f} MB without")


if __name__ == "__main__":
    main()
