"""When the scripted caller speaks: after the agent has gone quiet, or over it (barge-in)."""

from __future__ import annotations

from collections.abc import Callable

from local.call_simulator.caller_script import CallerLine
from local.call_simulator.report import AgentReply, TurnReport
from local.mulaw import FRAME_BYTES, SILENCE_BYTE, ms

SILENCE_FRAME = bytes([SILENCE_BYTE]) * FRAME_BYTES


class CallerTurnTaking:
    """The caller's side of the conversation, advanced one 20 ms frame at a time.

    The agent counts as speaking from the first frame of its audio until the speaker has been
    silent for `quiet_ms`, so short gaps between deltas do not end a reply. The greeting is the
    first reply; each caller line then waits for the reply before it to finish, unless the line
    has `interrupt_after_ms`, in which case it starts that long after that reply started. After
    the last reply the caller hangs up, unless the agent is the one to hang up. When the caller
    speaks first (someone answering an outbound call), the first line starts at once and the
    greeting is its reply.
    """

    def __init__(self, lines: list[CallerLine], on_line: Callable[[str], None], quiet_ms: int = 600,
                 agent_hangs_up: bool = False, caller_speaks_first: bool = False) -> None:
        self._lines = lines
        self._on_line = on_line
        self._quiet_ms = quiet_ms
        self._agent_hangs_up = agent_hangs_up
        self._caller_speaks_first = caller_speaks_first
        self.greeting = AgentReply()
        self.turns: list[TurnReport] = []
        self.finished = False  # the last reply has finished and the caller hangs up
        self._awaited = self.greeting  # the reply to the caller's latest line (or the greeting)
        self._playing: AgentReply | None = None  # the reply the speaker is playing, if it is one
        self._agent_speaking = False
        self._agent_audio_end_ms = 0
        self._clip = b""
        self._clip_offset = 0

    @property
    def greeting_finished(self) -> bool:
        return self.greeting.finished_ms is not None

    @property
    def caller_speaking(self) -> bool:
        return self._clip_offset < len(self._clip)

    def hear(self, now_ms: int, agent_bytes: int) -> None:
        """The speaker started agent_bytes of agent audio at now_ms (0 when it is silent)."""
        if agent_bytes:
            if not self._agent_speaking:
                self._agent_speaking = True
                self._playing = self._awaited if self._awaited.started_ms is None else None
                if self._playing is not None:
                    self._playing.started_ms = now_ms
                self._on_line("agent: ▶ speaking")
            self._agent_audio_end_ms = now_ms + ms(agent_bytes)
        elif self._agent_speaking and now_ms - self._agent_audio_end_ms >= self._quiet_ms:
            self._agent_stopped(self._agent_audio_end_ms, cut_off=False)
            self._on_line("agent: ■ finished")
        self._advance(now_ms)

    def cleared(self, now_ms: int, dropped_bytes: int) -> None:
        """A `clear` arrived and dropped dropped_bytes of unplayed agent audio."""
        if not dropped_bytes:
            return
        if self._agent_speaking:
            self._agent_stopped(now_ms, cut_off=True)
        self._on_line("agent: ⟂ cut off (clear)")

    def next_frame(self, now_ms: int) -> bytes:
        """The caller's 20 ms of audio starting at now_ms: the current line, or silence."""
        if not self.caller_speaking:
            return SILENCE_FRAME
        frame = self._clip[self._clip_offset : self._clip_offset + FRAME_BYTES]
        self._clip_offset += len(frame)
        if not self.caller_speaking:
            self.turns[-1].caller_finished_ms = now_ms + ms(len(frame))
        return frame.ljust(FRAME_BYTES, bytes([SILENCE_BYTE]))

    def _agent_stopped(self, end_ms: int, *, cut_off: bool) -> None:
        self._agent_speaking = False
        if self._playing is not None:
            self._playing.finished_ms, self._playing.cut_off = end_ms, cut_off
            self._playing = None

    def _advance(self, now_ms: int) -> None:
        if self.finished or self.caller_speaking:
            return
        upcoming = self._lines[len(self.turns)] if len(self.turns) < len(self._lines) else None
        if self._caller_speaks_first and not self.turns and upcoming is not None:
            self._start_line(upcoming, now_ms, reply=self.greeting)  # "Hello?": the greeting answers it
            return
        reply = self._awaited
        if reply.finished_ms is not None:
            if upcoming is None:
                self.finished = not self._agent_hangs_up
            else:
                self._start_line(upcoming, now_ms)
        elif (
            upcoming is not None
            and upcoming.interrupt_after_ms is not None
            and reply.started_ms is not None
            and now_ms >= reply.started_ms + upcoming.interrupt_after_ms
        ):
            self._start_line(upcoming, now_ms)

    def _start_line(self, line: CallerLine, now_ms: int, reply: AgentReply | None = None) -> None:
        turn = TurnReport(line.text, now_ms, barged_in=self._agent_speaking, reply=reply or AgentReply())
        self.turns.append(turn)
        self._awaited = turn.reply
        self._clip, self._clip_offset = line.audio, 0
        self._on_line(f"caller: {line.text}")
