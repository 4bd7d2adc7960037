"""What a replica's parts share: settings, the two stores and the repositories over them.

Built once at start (``Services.open``) and passed explicitly to the actors and the web
app; nothing is a module-level global.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import SecretStr

from datagems.settings import Settings
from datagems.store import R1FS, CStore, open_cstore, open_r1fs
from datagems.store.repos import (
    CancelsRepo,
    CommandsRepo,
    DetailsRepo,
    InboxRepo,
    JobsRepo,
    MetricsRepo,
    PeersRepo,
    ReplicasRepo,
    UserJobsRepo,
    UserSettingsRepo,
    UsersRepo,
)


def with_local_secrets(settings: Settings) -> Settings:
    """Fill an unset session secret / auth pepper from ``<data dir>/secrets.json``.

    The file is created (mode 0600) with random values the first time, so a laptop needs
    no set-up and its sessions survive a restart. A fleet on several hosts must set
    ``DATAGEN_SESSION_SECRET`` and ``R1EN_CSTORE_AUTH_SECRET`` to the same values.
    """
    if settings.session_secret and settings.auth_secret:
        return settings
    path = Path(settings.data_dir) / "secrets.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as out:
            out.write(
                orjson.dumps(
                    {
                        "sessionSecret": secrets.token_urlsafe(48),
                        "authPepper": secrets.token_urlsafe(32),
                    }
                )
            )
    stored = orjson.loads(path.read_bytes())
    return settings.replace(
        session_secret=settings.session_secret or SecretStr(stored["sessionSecret"]),
        auth_secret=settings.auth_secret or SecretStr(stored["authPepper"]),
    )


@dataclass
class Services:
    settings: Settings
    cstore: CStore
    r1fs: R1FS
    gateway_url: str  # the inference gateway this replica calls (the mock's when built in)
    jobs: JobsRepo = field(init=False)
    peers: PeersRepo = field(init=False)
    details: DetailsRepo = field(init=False)
    user_jobs: UserJobsRepo = field(init=False)
    users: UsersRepo = field(init=False)
    user_settings: UserSettingsRepo = field(init=False)
    cancels: CancelsRepo = field(init=False)
    commands: CommandsRepo = field(init=False)
    inbox: InboxRepo = field(init=False)
    replicas: ReplicasRepo = field(init=False)
    # held while this replica decides job commands (its web handlers and its poller)
    command_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    metrics: MetricsRepo = field(init=False)

    def __post_init__(self) -> None:
        secret = self.settings.r1fs_secret.get_secret_value() if self.settings.r1fs_secret else None
        self.jobs = JobsRepo(self.cstore)
        self.peers = PeersRepo(self.cstore)
        self.details = DetailsRepo(self.r1fs, secret)
        self.user_jobs = UserJobsRepo(self.cstore)
        self.users = UsersRepo(self.cstore)
        self.user_settings = UserSettingsRepo(self.cstore)
        self.cancels = CancelsRepo(self.cstore)
        self.commands = CommandsRepo(self.cstore)
        self.inbox = InboxRepo(self.cstore)
        self.replicas = ReplicasRepo(self.cstore)
        self.metrics = MetricsRepo(self.cstore)

    @property
    def r1fs_secret(self) -> str | None:
        secret = self.settings.r1fs_secret
        return secret.get_secret_value() if secret else None

    @classmethod
    def open(cls, settings: Settings, gateway_url: str) -> Services:
        return cls(settings, open_cstore(settings), open_r1fs(settings), gateway_url)

    def close(self) -> None:
        self.cstore.close()
        self.r1fs.close()
