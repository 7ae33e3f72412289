"""`agenthost console`: talk to an agent from the terminal, through the real dispatch path.

The console is a `Caller` (the same client as `agenthost call`) that joins a new room, has the agent
dispatched there by the server, and then reads lines: each is sent as typed chat (`lk.chat`, which
livekit-agents' RoomIO reads as the user's turn), or, with `--audio`, spoken by the local synthesiser as a
voice turn whose answer is saved as a WAV. Whatever the agent sends is printed as it streams: its transcript
(`lk.transcription`), any other text stream under its topic, data packets, its state (`lk.agent.state`:
listening, thinking, speaking) and other attribute changes. `/quit` or Ctrl-D ends the call (the room is
deleted: the job ends by its policy). Ctrl-C once asks the agent to stop speaking (an RPC to its participant,
`agenthost.interrupt`, which an `api: livekit-agents` job answers for its AgentSession) and says how to quit;
twice quits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from livekit import rtc

from host.config.credentials import Credentials
from host.context import INTERRUPT_METHOD
from host.errors import AgentHostError, ServerError
from host.runtime.dispatching import delete_room
from host.voice.caller import Caller
from host.voice.hostlogs import HostLogs, JobLogSource
from host.voice.keyboard import read_lines
from host.voice.printer import Printer
from host.voice.turns import CallError, CallOptions, Turn

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SERVER = 0, 1, 2, 3
SECOND_INTERRUPT_S = 2.0  # a second Ctrl-C within this quits
INTERRUPT_WAIT = 3.0  # seconds the agent may take to answer an interruption
AGENT_WAIT = 5.0  # seconds an interruption waits for the agent to be in the room
LISTENING_GRACE = 3.0  # how long an agent that joined may take to say it listens, if it says so at all
END_LINE_WAIT = 3.0  # with --logs, how long the console waits for the host's line about a job that ended


@dataclass(frozen=True)
class ConsoleOptions:
    room: str | None = None  # None: a new room, deleted at the end
    audio: bool = False  # speak each line (local synthesiser) and save the agent's audio answers
    record: Path = Path("console-audio")  # where the answers' WAVs go with `audio`
    timeout: float = 20.0  # for the agent to join (and, with `audio`, each answer to start)
    logs: JobLogSource | None = None  # a host whose /logs has the job's lines, shown inline


class Console:
    def __init__(self, credentials: Credentials, agent_name: str, metadata: str, options: ConsoleOptions,
                 out: TextIO = sys.stdout, lines: asyncio.Queue[str | None] | None = None) -> None:
        self.credentials, self.agent_name, self.metadata, self.options = credentials, agent_name, metadata, options
        self.identity = f"console-{uuid.uuid4().hex[:6]}"
        self.printer = Printer(out, self.identity)
        self.lines: asyncio.Queue[str | None] = lines if lines is not None else asyncio.Queue()
        self.agent_gone = asyncio.Event()
        self.host_logs: HostLogs | None = None  # with --logs
        self._interrupted_at = 0.0
        self._caller: Caller | None = None  # while the call is on
        self._asking: set[asyncio.Task[None]] = set()
        self.ending = False  # the call is being ended (left, its room deleted)

    async def run(self) -> int:
        options = self.options
        room = options.room or f"console-{uuid.uuid4().hex[:8]}"
        record = options.record if options.audio else None  # a `record_folder`
        caller = Caller(self.credentials, CallOptions(timeout=options.timeout, record=record, recognize=False,
                                                      identity=self.identity), on_text=self.printer.on_text)
        self.printer.microphone = lambda: caller.microphone_sid
        self._caller = caller
        caller.room.on("data_received", self.printer.on_data)
        caller.room.on("participant_attributes_changed", self.printer.on_attributes)
        caller.room.on("participant_disconnected", self._on_left)
        synthesizer = None
        if options.audio:
            from host.voice.speech import Synthesizer

            synthesizer = Synthesizer()
        logs = None
        if options.logs is not None:  # from before the dispatch: its offer is shown too
            self.host_logs = HostLogs(options.logs, room, self.printer.line)
            await asyncio.to_thread(self.host_logs.skip_earlier)
            logs = asyncio.get_running_loop().create_task(self.host_logs.follow())
        try:
            await caller.start(self.agent_name, room, self.metadata, audio=options.audio)
            if not options.audio:  # a start with audio waited for it
                await caller.wait_listening(LISTENING_GRACE)
            agent = caller.agent()
            self.printer.line(f"agent {self.agent_name!r} joined room {room} as {agent.identity if agent else '?'}; "
                              "type to talk, /quit or Ctrl-D to end")
            code = await self._talk(caller, synthesizer)
        finally:
            self.ending = True  # what follows ends the call (the room deleted): a Ctrl-C does not cut it short
            if logs is not None:  # the job's lines end here: what it logs as it shuts down would follow the end
                logs.cancel()
            await caller.hang_up()
            if options.room is None and caller.joined:
                await delete_room(self.credentials, room)
            for task in list(self._asking):
                task.cancel()
        if code == EXIT_OK:
            self.printer.line("call ended")
        return code

    async def _talk(self, caller: Caller, synthesizer: object | None) -> int:
        turns = 0
        while True:
            line_task = asyncio.ensure_future(self.lines.get())
            gone = asyncio.ensure_future(self.agent_gone.wait())
            await asyncio.wait({line_task, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone.done() and not line_task.done():
                line_task.cancel()
                why = "its host's log says why"
                if self.host_logs is not None:  # its host's word on why, which comes right after
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.host_logs.job_end_seen.wait(), END_LINE_WAIT)
                    why = self.host_logs.job_end or why
                self.printer.line(f"agent {self.agent_name!r} left the room: its job ended ({why})")
                return EXIT_FAILED
            gone.cancel()
            line = line_task.result()
            if line is None or line.strip() == "/quit":
                return EXIT_OK  # said once the call is over
            if not line.strip():
                continue
            if synthesizer is not None:
                turns += 1
                pcm = synthesizer.synthesize(line)  # type: ignore[attr-defined]
                if not pcm:
                    self.printer.line("  (the synthesiser made no audio of that (it speaks English words): nothing "
                                      "was said)")
                    turns -= 1
                    continue
                await caller.speak([Turn(line, pcm)], lambda i, r: self.printer.on_turn(i, r, caller.last_saved),
                                   first=turns)
            else:
                await caller.send_text(line)

    def _on_left(self, participant: rtc.RemoteParticipant) -> None:
        if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            self.agent_gone.set()

    def interrupt(self) -> bool:
        """Ctrl-C: True when it is the second within SECOND_INTERRUPT_S (quit). The first asks the agent to stop
        speaking (INTERRUPT_METHOD, an RPC to its participant), and says how that went and how to quit."""
        now = time.monotonic()
        if self.ending:  # the call is being ended: nothing to stop, nothing to cut short
            self.printer.line("  (ending the call)")
            return False
        if now - self._interrupted_at < SECOND_INTERRUPT_S:
            return True
        self._interrupted_at = now
        if self._caller is None:
            self.printer.line("  (Ctrl-C again to quit, or /quit)")
        else:
            self.printer.line("  (asking the agent to stop; Ctrl-C again to quit, or /quit)")
            task = asyncio.get_running_loop().create_task(self._ask_to_stop(self._caller))
            self._asking.add(task)
            task.add_done_callback(self._asking.discard)
        return False

    async def _ask_to_stop(self, caller: Caller) -> None:
        for _ in range(int(AGENT_WAIT / 0.1)):  # the server may tell of the agent seconds after its first words
            agent = caller.agent()
            if agent is not None:
                break
            await asyncio.sleep(0.1)
        else:
            self.printer.line("  (no agent in the room to interrupt)")
            return
        try:
            await caller.room.local_participant.perform_rpc(destination_identity=agent.identity,
                                                            method=INTERRUPT_METHOD, payload="",
                                                            response_timeout=INTERRUPT_WAIT)
            said = "interrupted"
        except rtc.RpcError as exc:
            said = ("this agent takes no interruption" if exc.code == rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD
                    else f"not interrupted: {exc.message}")
        except Exception as exc:  # the call ended meanwhile, say
            said = f"not interrupted: {exc}"
        self.printer.line(f"  ({said})")


def run_console(credentials: Credentials, agent_name: str, metadata: str, options: ConsoleOptions) -> int:
    """The console in this terminal; the exit code."""

    async def main() -> int:
        console = Console(credentials, agent_name, metadata, options)
        stop_reading = read_lines(console.lines)
        loop = asyncio.get_running_loop()
        session = asyncio.ensure_future(console.run())

        quitting = False

        def on_interrupt() -> None:
            nonlocal quitting
            if console.interrupt() and not quitting:  # (while the call is ending, `interrupt` is never a quit)
                # quit now, whatever the console waits for (the agent to join, an answer): the call is ended,
                # its room deleted, on the way out (bounded: the server's answers are)
                quitting = True
                session.cancel()

        loop.add_signal_handler(signal.SIGINT, on_interrupt)
        try:
            return await session
        except asyncio.CancelledError:
            if not quitting:
                raise
            console.printer.line("call ended")
            return EXIT_OK
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            stop_reading()

    try:
        return asyncio.run(main())
    except ServerError as exc:
        print(f"agenthost: {exc}", file=sys.stderr)
        return EXIT_SERVER
    except CallError as exc:
        print(f"agenthost: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except AgentHostError as exc:
        print(f"agenthost: {exc}", file=sys.stderr)
        return EXIT_USAGE
