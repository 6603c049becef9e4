"""ECR and ECS through boto3, made async once here: what an image tag points at, and what a
service really runs (the truth a deploy is checked against, not ecspresso's exit code): the
PRIMARY deployment's RUNNING tasks and the image digest each of their containers runs
(ListTasks + DescribeTasks ``containers[].imageDigest``). Reading them needs no ECR call, so a
sidecar whose repository the bot may not read never fails a check.

Clients come from ``integrations.aws.aws_client`` (timeouts and bounded standard retries).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.errors import ExternalError, NotFound
from bot.ports import Registration, RunningContainer, ServiceState

ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^:@/]+))?$"
)
ECR_MISSING = ("RepositoryNotFoundException", "ImageNotFoundException")
DESCRIBE_TASKS_MAX = 100  # DescribeTasks takes at most 100 tasks a call


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


class EcrRegistry:
    """bot.ports.Registry: resolves tags to the immutable digests ECR stores."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def digest(self, repository: str, tag: str, *, registry_id: str | None = None) -> str:
        """The ``sha256:...`` digest ``repository:tag`` points at; NotFound when it does not."""
        return await asyncio.to_thread(self.digest_sync, repository, tag, registry_id)

    def digest_sync(self, repository: str, tag: str, registry_id: str | None = None) -> str:
        args: dict[str, Any] = {"repositoryName": repository, "imageIds": [{"imageTag": tag}]}
        if registry_id:
            args["registryId"] = registry_id
        try:
            details = self.client.describe_images(**args)["imageDetails"]
        except ClientError as exc:
            if _code(exc) in ECR_MISSING:
                raise NotFound(f"no image {repository}:{tag} in ECR ({_code(exc)})") from None
            raise ExternalError(
                f"ECR refused to describe {repository}:{tag}: {_code(exc)}"
            ) from None
        except BotoCoreError as exc:
            raise ExternalError(
                f"ECR did not answer for {repository}:{tag}: {type(exc).__name__}"
            ) from None
        if not details:
            raise NotFound(f"no image {repository}:{tag} in ECR")
        return str(details[0]["imageDigest"])

    async def image_tags(self, repository: str, digest: str) -> tuple[str, ...]:
        """The tags of ``repository@digest``; NotFound when ECR holds no such image there."""
        return await asyncio.to_thread(self.image_tags_sync, repository, digest)

    def image_tags_sync(self, repository: str, digest: str) -> tuple[str, ...]:
        ident = {"imageDigest": digest}
        try:
            found = self.client.describe_images(repositoryName=repository, imageIds=[ident])
        except ClientError as exc:
            if _code(exc) in ECR_MISSING:
                raise NotFound(
                    f"no image {repository}@{digest} in ECR ({_code(exc)}): the digest must be "
                    f"one the model's repository `{repository}` holds"
                ) from None
            raise ExternalError(
                f"ECR refused to describe {repository}@{digest}: {_code(exc)}"
            ) from None
        except BotoCoreError as exc:
            raise ExternalError(
                f"ECR did not answer for {repository}@{digest}: {type(exc).__name__}"
            ) from None
        details = found.get("imageDetails") or []
        if not details:
            raise NotFound(f"no image {repository}@{digest} in ECR")
        return tuple(str(t) for t in details[0].get("imageTags") or ())


class EcsServices:
    """bot.ports.Services: describes ECS services and the images their task definitions run."""

    def __init__(self, ecs_client: Any, ecr_client: Any) -> None:
        self.ecs = ecs_client
        self.registry = EcrRegistry(ecr_client)
        self.ecr_region = str(getattr(getattr(ecr_client, "meta", None), "region_name", "") or "")

    async def state(self, cluster: str, service: str) -> ServiceState:
        return await asyncio.to_thread(self.state_sync, cluster, service)

    async def image_digests(self, images: tuple[str, ...]) -> tuple[str, ...]:
        return await asyncio.to_thread(lambda: tuple(self.image_digest(i) for i in images))

    async def newest_registration(self, task_definition: str) -> Registration:
        return await asyncio.to_thread(self.newest_registration_sync, task_definition)

    def newest_registration_sync(self, task_definition: str) -> Registration:
        """DescribeTaskDefinition of the bare family: ECS answers with its newest ACTIVE one."""
        family = task_definition.rsplit("/", 1)[-1].rsplit(":", 1)[0]
        found = self._call(
            f"newest revision of {family}", self.ecs.describe_task_definition, taskDefinition=family
        )["taskDefinition"]
        images = tuple(str(c.get("image", "")) for c in found.get("containerDefinitions", []))
        return Registration(revision=int(found["revision"]), images=images)

    def state_sync(self, cluster: str, service: str) -> ServiceState:
        described = self._describe_service(cluster, service)
        task_def = self._call(
            f"task definition of {service}",
            self.ecs.describe_task_definition,
            taskDefinition=described["taskDefinition"],
        )["taskDefinition"]
        state = service_state(cluster, service, described, task_def)
        tasks = primary_tasks(described, state.task_definition, self._running_tasks(state))
        containers = tuple(c for t in tasks for c in running_containers(t))
        return replace(state, tasks=len(tasks), containers=containers)

    def _running_tasks(self, state: ServiceState) -> list[dict[str, Any]]:
        """The service's tasks that ECS wants running, described (ListTasks + DescribeTasks)."""
        what = f"tasks of {state.service}"
        arns: list[str] = []
        token: str | None = None
        while True:
            page = self._call(
                what,
                self.ecs.list_tasks,
                cluster=state.cluster,
                serviceName=state.service,
                desiredStatus="RUNNING",
                **({"nextToken": token} if token else {}),
            )
            arns += [str(a) for a in page.get("taskArns", [])]
            token = page.get("nextToken")
            if not token:
                break
        tasks: list[dict[str, Any]] = []
        for i in range(0, len(arns), DESCRIBE_TASKS_MAX):
            chunk = arns[i : i + DESCRIBE_TASKS_MAX]
            answer = self._call(what, self.ecs.describe_tasks, cluster=state.cluster, tasks=chunk)
            tasks += [dict(t) for t in answer.get("tasks", [])]
        return tasks

    def image_digest(self, image: str) -> str:
        """The digest an image reference runs: pinned, resolved from an ECR tag, or ""."""
        if "@" in image:
            digest = image.rsplit("@", 1)[1]
            return digest if digest.startswith("sha256:") else ""
        match = ECR_IMAGE.match(image)
        if not match or (self.ecr_region and match["region"] != self.ecr_region):
            return ""
        try:
            return self.registry.digest_sync(
                match["repository"], match["tag"] or "latest", match["account"]
            )
        except NotFound:
            return ""

    def _describe_service(self, cluster: str, service: str) -> dict[str, Any]:
        try:
            answer = self.ecs.describe_services(cluster=cluster, services=[service])
        except ClientError as exc:
            if _code(exc) == "ClusterNotFoundException":
                raise NotFound(f"ECS cluster {cluster} does not exist") from None
            raise ExternalError(
                f"ECS refused to describe {service} in {cluster}: {_code(exc)}"
            ) from None
        except BotoCoreError as exc:
            raise ExternalError(f"ECS did not answer for {service}: {type(exc).__name__}") from None
        services = [s for s in answer.get("services", []) if s.get("status") != "INACTIVE"]
        if not services:
            raise NotFound(f"ECS service {service} does not exist in cluster {cluster}")
        return dict(services[0])

    @staticmethod
    def _call(what: str, method: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return dict(method(**kwargs))
        except ClientError as exc:
            raise ExternalError(f"ECS refused to describe the {what}: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise ExternalError(
                f"ECS did not answer for the {what}: {type(exc).__name__}"
            ) from None


def service_state(
    cluster: str, service: str, described: dict[str, Any], task_def: dict[str, Any]
) -> ServiceState:
    """Builds ServiceState from describe_services and describe_task_definition answers.

    The task definition is the service's own (for the ECS deployment controller it is the
    PRIMARY deployment's; moto freezes the deployment entry at creation, the service field
    follows update_service). Without a rolloutState it is derived from the counts.
    """
    deployments = list(described.get("deployments", []))
    primary = primary_deployment(described)
    running = int(primary.get("runningCount", 0))
    desired = int(primary.get("desiredCount", 0))
    rollout = str(primary.get("rolloutState") or "")
    if not rollout:
        stable = running == desired and len(deployments) <= 1
        rollout = "COMPLETED" if stable else "IN_PROGRESS"
    return ServiceState(
        cluster=cluster,
        service=service,
        task_definition=str(task_def["taskDefinitionArn"]),
        revision=int(task_def["revision"]),
        images=tuple(str(c.get("image", "")) for c in task_def.get("containerDefinitions", [])),
        rollout_state=rollout,
        running=running,
        desired=desired,
        deployments=len(deployments),
        deployment_ids=tuple(sorted(str(d.get("id", "")) for d in deployments)),
    )


def primary_deployment(described: dict[str, Any]) -> dict[str, Any]:
    """The PRIMARY deployment (the service itself when it lists none)."""
    deployments = list(described.get("deployments", []))
    return dict(next((d for d in deployments if d.get("status") == "PRIMARY"), described))


def primary_tasks(
    described: dict[str, Any], task_definition: str, tasks: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The RUNNING tasks of the PRIMARY deployment: ECS starts a service's tasks with
    ``startedBy`` set to the deployment's id, on the deployment's task definition."""
    deployment = str(primary_deployment(described).get("id") or "")
    return [
        t
        for t in tasks
        if t.get("lastStatus") == "RUNNING"
        and t.get("taskDefinitionArn") == task_definition
        and (not deployment or t.get("startedBy") == deployment)
    ]


def running_containers(task: dict[str, Any]) -> tuple[RunningContainer, ...]:
    """The task's containers with the digest each runs: ``imageDigest`` as ECS reports it once
    the image is pulled; else the digest the image reference pins (``repo@sha256:...`` can run
    nothing else); else "" (unknown, which never passes a check)."""
    found = []
    for c in task.get("containers", []):
        image = str(c.get("image", ""))
        digest = str(c.get("imageDigest") or "")
        if not digest and "@" in image:
            pinned = image.rsplit("@", 1)[1]
            digest = pinned if pinned.startswith("sha256:") else ""
        found.append(
            RunningContainer(
                task=str(task.get("taskArn", "")),
                name=str(c.get("name", "")),
                image=image,
                digest=digest,
            )
        )
    return tuple(found)
