"""The ECS calls the ecspresso stand-in makes, and its log format (ecspresso's)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from bot.sandbox.ecspresso.render import Config

# CreateService / UpdateService parameters a service definition file may set.
UPDATE_KEYS = (
    "capacityProviderStrategy",
    "deploymentConfiguration",
    "enableECSManagedTags",
    "enableExecuteCommand",
    "healthCheckGracePeriodSeconds",
    "loadBalancers",
    "networkConfiguration",
    "placementConstraints",
    "placementStrategy",
    "platformVersion",
    "propagateTags",
    "serviceConnectConfiguration",
    "serviceRegistries",
    "volumeConfigurations",
)
CREATE_KEYS = (
    *UPDATE_KEYS,
    "deploymentController",
    "desiredCount",
    "launchType",
    "role",
    "schedulingStrategy",
    "tags",
)


class Failed(Exception):
    """Ends the run as ecspresso does: ``[ERROR] FAILED. <message>`` and exit 1."""


def log(message: str, name: str = "") -> None:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    print(f"{stamp} {name + ' ' if name else ''}{message}", file=sys.stderr, flush=True)


class Ecs:
    """The ECS calls one run makes, for one config."""

    def __init__(self, config: Config) -> None:
        import boto3  # here: a run that only parses its arguments starts faster
        from botocore.config import Config as BotoConfig

        endpoint = os.environ.get("AWS_ENDPOINT_URL_ECS") or os.environ.get("AWS_ENDPOINT_URL")
        retries = {"max_attempts": 3, "mode": "standard"}
        boto = BotoConfig(connect_timeout=5, read_timeout=30, retries=retries)
        self.client = boto3.client(
            "ecs", region_name=config.region, endpoint_url=endpoint, config=boto
        )
        self.config = config

    def find_service(self) -> dict[str, Any] | None:
        """The configured service, or None when ECS has no active one by that name."""
        found = self.client.describe_services(
            cluster=self.config.cluster, services=[self.config.service]
        )
        services = [s for s in found["services"] if s.get("status") != "INACTIVE"]
        return dict(services[0]) if services else None

    def service(self) -> dict[str, Any]:
        found = self.find_service()
        if found is None:
            raise Failed(
                f"service {self.config.service} is not found in cluster {self.config.cluster}"
            )
        return found

    def create(self, arn: str, definition: dict[str, Any], count: int | None) -> None:
        """CreateService from the service definition file (what deploy does when it is missing)."""
        args = {k: v for k, v in definition.items() if k in CREATE_KEYS}
        if count is not None:
            args["desiredCount"] = count
        args.update(cluster=self.config.cluster, serviceName=self.config.service)
        self.client.create_service(taskDefinition=arn, **args)

    def tasks_in_use(self) -> dict[str, str]:
        """``family:rev`` -> ``<lastStatus> task`` for the service's tasks that are not STOPPED."""
        arns = self.client.list_tasks(
            cluster=self.config.cluster, serviceName=self.config.service
        ).get("taskArns", [])
        if not arns:
            return {}
        tasks = self.client.describe_tasks(cluster=self.config.cluster, tasks=arns)["tasks"]
        return {
            name_of(t["taskDefinitionArn"]): f"{t.get('lastStatus')} task"
            for t in tasks
            if t.get("lastStatus") != "STOPPED"
        }

    def task_definition(self, name: str) -> dict[str, Any]:
        return dict(self.client.describe_task_definition(taskDefinition=name)["taskDefinition"])

    def family_arns(self, family: str) -> list[str]:
        """ACTIVE revisions, newest first (moto neither sorts nor pages)."""
        arns = self.client.list_task_definitions(familyPrefix=family, status="ACTIVE")[
            "taskDefinitionArns"
        ]
        return sorted(arns, key=lambda a: int(a.rsplit(":", 1)[1]), reverse=True)

    def update(
        self,
        arn: str,
        count: int | None,
        force: bool = False,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        args: dict[str, Any] = {"cluster": self.config.cluster, "service": self.config.service}
        args.update(attributes or {})
        args.update(taskDefinition=arn, forceNewDeployment=force)
        if count is not None:
            args["desiredCount"] = count
        log("Updating service tasks...", self.config.name)
        self.client.update_service(**args)

    def wait_stable(self, arn: str) -> None:
        """Polls until one COMPLETED deployment runs ``arn`` with running == desired; the
        command's deadline (``--timeout`` or the config's) interrupts it."""
        seen = ""
        log("Waiting for service stable...(it will take a few minutes)", self.config.name)
        while True:
            sv = self.service()
            deployments = sv.get("deployments", [])
            lines = [_deployment_line(d, sv) for d in deployments]
            if "\n".join(lines) != seen:
                seen = "\n".join(lines)
                for line in lines:
                    log(line, self.config.name)
            primary: dict[str, Any] = next(
                (d for d in deployments if d.get("status") == "PRIMARY"), {}
            )
            if primary.get("rolloutState") == "FAILED":
                raise Failed(f"failed to wait service stable: {primary.get('rolloutStateReason')}")
            if sv["taskDefinition"] == arn and len(deployments) == 1 and _stable(primary):
                return
            time.sleep(float(os.environ.get("MLOPS_ECSPRESSO_STANDIN_POLL", "1")))


def _stable(primary: dict[str, Any]) -> bool:
    counts = primary.get("runningCount") == primary.get("desiredCount")
    return counts and primary.get("rolloutState", "COMPLETED") == "COMPLETED"


def _deployment_line(d: dict[str, Any], sv: dict[str, Any]) -> str:
    # moto freezes a deployment's taskDefinition at creation; ECS keeps PRIMARY's = the service's
    arn = sv["taskDefinition"] if d.get("status") == "PRIMARY" else d["taskDefinition"]
    counts = " ".join(
        f"{word}:{d.get(key)}"
        for word, key in (
            ("desired", "desiredCount"),
            ("pending", "pendingCount"),
            ("running", "runningCount"),
        )
    )
    return f" {d.get('status')} {name_of(arn)} {counts} {d.get('rolloutState', '')}".rstrip()


def name_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
