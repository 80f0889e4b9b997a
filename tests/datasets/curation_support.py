"""A progress double for curation runners: records steps and advances, writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RecordingProgress:
    """Stands in for the job's progress writer (``step``/``advance``/``heartbeat``)."""

    steps: list[tuple[str, int]] = field(default_factory=list)
    advances: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def step(self, name: str, *, total: int = 0, message: str = "", write: bool = True) -> None:
        self.steps.append((name, total))
        if message:
            self.messages.append(message)

    def advance(self, done: int, *, message: str | None = None) -> None:
        self.advances.append(done)
        if message:
            self.messages.append(message)

    def heartbeat(self) -> None:
        pass

    def flush(self) -> None:
        pass
