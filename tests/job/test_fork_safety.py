"""What makes a template's image unsafe to fork from: a thread, a socket opened by the agent's imports. Run in a
fresh interpreter, as a template is: this test process has threads of its own."""

import json
import subprocess
import sys

CHECK = """
import json, socket, threading
from host.job.fork_safety import open_sockets, why_not_fork_safe
said = [why_not_fork_safe(open_sockets())]
before = open_sockets()
opened = socket.socket()
said.append(why_not_fork_safe(before))
opened.close()
stop = threading.Event()
thread = threading.Thread(target=stop.wait, name="agent-poller")
thread.start()
said.append(why_not_fork_safe(open_sockets()))
stop.set()
thread.join()
said.append(why_not_fork_safe(before))
print(json.dumps(said))
"""


def test_a_thread_or_a_new_socket_makes_forking_unsafe_and_neither_is_safe():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == [None, "importing the agent's code opened a network connection",
                                      "importing the agent's code started threads: agent-poller", None]
