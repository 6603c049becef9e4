"""Deploy targets on moto (or any ECS/ECR endpoint) for the sandbox and the tests: an ECR
repository with images, a cluster, a task definition and a service per environment, and the
ecspresso config directory that deploys the model there.

The task definition file pins the image by digest, ``<repo>@{{ must_env `IMAGE_DIGEST` }}``
(or by tag, ``<repo>:{{ must_env `IMAGE_TAG` }}``), so each deploy passes the image in env.
On moto, start the server with MOTO_ECS_SERVICE_RUNNING >= the desired count (1 here) so the
services' rollouts read COMPLETED.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
PINS = {"digest": ("@", "IMAGE_DIGEST"), "tag": (":", "IMAGE_TAG")}


@dataclass(frozen=True)
class DeployTarget:
    """One model in one environment, as created; ``digests`` maps pushed tags to digests."""

    model: str
    env: str
    region: str
    cluster: str
    service: str
    family: str
    repository: str
    repository_uri: str
    config: Path
    digests: Mapping[str, str]
    pin: str = "digest"

    def image(self, tag: str) -> str:
        """The image reference the rendered task definition holds for ``tag``."""
        sep, _ = PINS[self.pin]
        return f"{self.repository_uri}{sep}{self.digests[tag] if sep == '@' else tag}"

    def variables(self, tag: str) -> dict[str, str]:
        """The env a deploy of ``tag`` passes to ecspresso (what the template reads)."""
        sep, name = PINS[self.pin]
        return {name: self.digests[tag] if sep == "@" else tag}


def push_image(ecr: Any, repository: str, tag: str) -> str:
    """Puts a (content-free) image under ``tag`` and returns its digest; one digest per tag."""
    layer = "sha256:" + hashlib.sha256(f"{repository}:{tag}".encode()).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 2,
            "digest": layer,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 2,
                "digest": layer,
            }
        ],
    }
    try:
        image = ecr.put_image(
            repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag
        )
    except ecr.exceptions.ImageAlreadyExistsException:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
        return str(found["imageDetails"][0]["imageDigest"])
    return str(image["image"]["imageId"]["imageDigest"])


def ensure_repository(ecr: Any, repository: str) -> str:
    """The repository's URI, creating it when needed."""
    try:
        return str(ecr.create_repository(repositoryName=repository)["repository"]["repositoryUri"])
    except ecr.exceptions.RepositoryAlreadyExistsException:
        found = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
        return str(found["repositoryUri"])


def task_definition(family: str, image: str, *, model: str, env: str) -> dict[str, Any]:
    return {
        "family": family,
        "networkMode": "bridge",
        "requiresCompatibilities": ["EC2"],
        "containerDefinitions": [
            {
                "name": "api",
                "image": image,
                "essential": True,
                "memory": 512,
                "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}],
                "environment": [{"name": "MODEL", "value": model}, {"name": "ENV", "value": env}],
            }
        ],
    }


def write_config(directory: Path, target: DeployTarget, *, timeout: str = "2m") -> Path:
    """Writes ecspresso.yml, ecs-task-def.json and ecs-service-def.json; returns the yml path."""
    directory.mkdir(parents=True, exist_ok=True)
    sep, variable = PINS[target.pin]
    image = f"{target.repository_uri}{sep}{{{{ must_env `{variable}` }}}}"
    td = task_definition(target.family, image, model=target.model, env=target.env)
    (directory / "ecs-task-def.json").write_text(json.dumps(td, indent=2) + "\n")
    service = {"desiredCount": 1, "launchType": "EC2", "schedulingStrategy": "REPLICA"}
    (directory / "ecs-service-def.json").write_text(json.dumps(service, indent=2) + "\n")
    config = directory / "ecspresso.yml"
    config.write_text(
        f"region: {target.region}\ncluster: {target.cluster}\nservice: {target.service}\n"
        "service_definition: ecs-service-def.json\ntask_definition: ecs-task-def.json\n"
        f"timeout: {timeout}\n"
    )
    return config


def create_target(
    ecr: Any,
    ecs: Any,
    root: Path,
    *,
    model: str,
    env: str,
    tags: tuple[str, ...] = ("v1", "v2"),
    running: str = "v1",
    pin: str = "digest",
) -> DeployTarget:
    """Creates everything for ``model`` in ``env`` with the service running ``running``;
    the config goes to ``root/<model>/<env>/ecspresso.yml``."""
    uri = ensure_repository(ecr, model)
    digests = {tag: push_image(ecr, model, tag) for tag in tags}
    cluster, service = f"ml-{env}", f"{model}-api"
    ecs.create_cluster(clusterName=cluster)
    target = DeployTarget(
        model=model,
        env=env,
        region=str(ecs.meta.region_name),
        cluster=cluster,
        service=service,
        family=f"{model}-api-{env}",
        repository=model,
        repository_uri=uri,
        config=root / model / env / "ecspresso.yml",
        digests=digests,
        pin=pin,
    )
    write_config(target.config.parent, target)
    td = task_definition(target.family, target.image(running), model=model, env=env)
    arn = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster=cluster, serviceName=service, taskDefinition=arn, desiredCount=1, launchType="EC2"
    )
    return target
