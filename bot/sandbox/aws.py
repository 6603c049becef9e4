"""A real moto server (HTTP on 127.0.0.1, a free port) standing in for AWS in the sandbox and
the tests.

MOTO_ECS_SERVICE_RUNNING is read by moto when a service is created: set to the fixtures'
desired count (1), new services list one PRIMARY deployment with rolloutState COMPLETED.
moto never starts a new deployment on update_service: the deployment entry (its
taskDefinition, counts and rolloutState) stays as it was at creation; the service's own
taskDefinition follows update_service.
"""

from __future__ import annotations

import http.client
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.config import Config
from moto.server import ThreadedMotoServer

from integrations.aws.sessions import new_session

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class MotoServer:
    endpoint_url: str
    region: str = "us-east-1"

    def client(self, service: str) -> Any:
        """A boto3 client with dummy credentials (never ~/.aws), short timeouts, few retries."""
        return new_session().client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}),
        )

    def env(self) -> dict[str, str]:
        """What a subprocess (ecspresso or its stand-in) needs to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **CREDENTIALS,
        }

    def reset(self) -> None:
        """Clears every backend (``POST /moto-api/reset``)."""
        url = urlsplit(self.endpoint_url)
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        try:
            connection.request("POST", "/moto-api/reset")
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
        finally:
            connection.close()
        forget_reset_backends()


def forget_reset_backends() -> None:
    """Let go of what ``/moto-api/reset`` dropped. moto keeps two per-object caches for the
    whole process, unbounded or past any reset: ``Subnet._base_avail_ip_iterator`` and
    ``AccountSpecificBackend._generate_regions``; each entry holds its object, and through it
    a whole backend (an EC2 one carries 1,301 default AMIs with their snapshots and volumes).
    A process that starts sandbox after sandbox (the tests) kept every one: 6-14 MB and about
    11,000 objects a sandbox, which every full pass of the collector then walks. Called after
    a reset, when nothing the caches name is in use. The moto server may run in another
    process; these caches are then empty here."""
    from moto.core.base_backend import AccountSpecificBackend
    from moto.ec2.models.subnets import Subnet

    for cached in (Subnet._base_avail_ip_iterator, AccountSpecificBackend._generate_regions):
        clear = getattr(cached, "cache_clear", None)  # gone if a moto release drops the cache
        if clear is not None:
            clear()


@contextmanager
def running_moto(*, ecs_running: int = 1) -> Iterator[MotoServer]:
    previous = os.environ.get("MOTO_ECS_SERVICE_RUNNING")
    os.environ["MOTO_ECS_SERVICE_RUNNING"] = str(ecs_running)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield MotoServer(endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("MOTO_ECS_SERVICE_RUNNING", None)
        else:
            os.environ["MOTO_ECS_SERVICE_RUNNING"] = previous
