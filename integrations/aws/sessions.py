"""boto3 sessions that share one loader of botocore's service models.

A new ``boto3.session.Session`` parses the JSON models of every service it makes a client of
(about 0.06 s a client); a process that builds bot after bot, or a sandbox after a sandbox (the
tests, the sandbox's scripted runs), paid that on every one. The loader only reads the model
files shipped with botocore and caches what it read, so sharing it shares nothing else: each
session keeps its own credentials, config and clients.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _models() -> Any:
    """The first session's loader (so it honours ``AWS_DATA_PATH`` as any session would)."""
    import botocore.session  # deferred: botocore is slow to import

    return botocore.session.get_session().get_component("data_loader")


def new_session() -> Any:
    """A ``boto3.session.Session`` of its own that reads service models through the shared
    loader (safe from any thread: the loader only adds to its cache)."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.register_component("data_loader", _models())
    return boto3.session.Session(botocore_session=core)
