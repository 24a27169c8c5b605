"""Where the supervisor and the workers reach the recorder process (no heavy imports: the
serving processes load this)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class RecorderControl:
    """Where the recorder process listens: Unix sockets in a private (0700) directory the
    supervisor made, so only this user's processes can send credentials or read metrics.
    (Not under STORE: a socket path is limited to 107 bytes.)"""

    directory: str

    @property
    def channel_address(self) -> str:
        return os.path.join(self.directory, "channel.sock")

    @property
    def metrics_address(self) -> str:
        return os.path.join(self.directory, "metrics.sock")

    @classmethod
    def create(cls) -> "RecorderControl":
        return cls(tempfile.mkdtemp(prefix="assistants-audit-"))

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
