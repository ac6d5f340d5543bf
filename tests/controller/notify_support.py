"""Helpers for the notification tests (no tests here): notices and configurations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.controller.config import ControllerConfig
from reconciler.controller.notices import Notice, NoticeKind
from reconciler.controller.notifications import Notifications, Outcome
from reconciler.controller.records import CommitInfo, Stage, Trigger

A, B = "a" * 40, "b" * 40
INFO = CommitInfo("bump the app", "Ops <ops@example.com>", "2027-01-15T07:59:00+00:00")


def rolled_back() -> Notice:
    return Notice(NoticeKind.ROLLED_BACK, "2027-01-15T08:00:00Z", B, f"commit {B[:12]} rolled back to "
                  f"{A[:12]}: health failed", ("web",), INFO, "web: http: curl exited 7", Stage.HEALTH,
                  Trigger.WEBHOOK, A, ("web: files:/srv/app.conf",))


def drift_corrected(host: str = "web") -> Notice:
    return Notice(NoticeKind.DRIFT_CORRECTED, "2027-01-15T08:00:00Z", A,
                  f"drift corrected on {host}: files:/srv/app.conf", (host,),
                  resources=(f"{host}: files:/srv/app.conf",))


def config(tmp_path: Path, **settings: Any) -> ControllerConfig:
    return ControllerConfig.model_validate({"repo": str(tmp_path / "repo"),
                                            "state_dir": str(tmp_path / "state"), **settings})


class Outcomes:
    """Records how deliveries ended (the ``on_outcome`` callback)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Outcome]] = []

    def __call__(self, target: str, outcome: Outcome) -> None:
        self.seen.append((target, outcome))

    def count(self, outcome: Outcome) -> int:
        return sum(1 for _t, o in self.seen if o is outcome)


def notifications(cfg: ControllerConfig, outcomes: Outcomes | None = None,
                  environ: dict[str, str] | None = None) -> Notifications:
    hub = Notifications.from_config(cfg, environ or {}, on_outcome=outcomes or Outcomes())
    hub.start()
    return hub
