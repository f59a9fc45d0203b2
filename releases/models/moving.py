"""What pages show of a thing that moves until it is finished (a release's
build, a deployment, a job, a webhook delivery): where it is, or, once it
has finished, how it ended. Its moves are ``releases.services.lifecycle``'s."""

from __future__ import annotations

from typing import TYPE_CHECKING

FINISHED = "finished"


class Finishing:
    state: str
    outcome: str

    if TYPE_CHECKING:

        def get_state_display(self) -> str: ...

        def get_outcome_display(self) -> str: ...

    @property
    def is_finished(self) -> bool:
        return self.state == FINISHED

    @property
    def label(self) -> str:
        """Where it is, or how it ended: the one word pages show."""
        return self.get_outcome_display() if self.is_finished else self.get_state_display()

    @property
    def label_key(self) -> str:
        """The value behind ``label``, for a badge's colour."""
        return self.outcome if self.is_finished else self.state
