"""Commit statuses in the forge: Gitea, Forgejo and GitHub share one API for them.

``POST {api}/repos/{owner}/{name}/statuses/{sha}`` with ``{"state", "description",
"context", "target_url"}`` and ``Authorization: token TOKEN`` (Gitea and Forgejo
document this scheme; GitHub accepts it for its tokens too). ``state`` is
``pending``, ``success``, ``failure`` or ``error``; GitHub cuts ``description`` at
140 characters, so it is cut here first.
"""

from __future__ import annotations

import json

from reconciler import __version__
from reconciler.controller.config import CommitStatusConfig
from reconciler.controller.notices import CommitStatus
from reconciler.controller.notifications import http
from reconciler.controller.notifications.outbox import Delivery
from reconciler.controller.notifications.payload import link_for

MAX_DESCRIPTION = 140


class ForgeStatuses:
    def __init__(self, config: CommitStatusConfig, token: str) -> None:
        self.config = config
        self._token = token

    def url(self, revision: str) -> str:
        return f"{self.config.api}/repos/{self.config.repository}/statuses/{revision}"

    def delivery(self, status: CommitStatus) -> Delivery:
        description = " ".join(status.description.split())
        if len(description) > MAX_DESCRIPTION:
            description = description[:MAX_DESCRIPTION - 3] + "..."
        data = {"state": status.state.value, "description": description, "context": self.config.context}
        target_url = link_for(self.config.target_url, status.revision)
        if target_url:
            data["target_url"] = target_url
        body = json.dumps(data).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": f"reconciler/{__version__}", "Authorization": f"token {self._token}"}
        url = self.url(status.revision)

        def send(deadline: float) -> None:
            http.post(url, body, headers, deadline)

        return Delivery(f"commit status {status.state.value} {status.revision[:12]}", send)
