"""What a deploy is verified against, from answers shaped like real ECS's (moto reports one
container per task and no imageDigest, so these shapes are checked here as pure functions):
the PRIMARY deployment's RUNNING tasks, the digest each container runs, and which containers
are the model's."""

from __future__ import annotations

from typing import Any

from bot.services.deploys.runner import in_repository, last_error
from integrations.aws.ecs import primary_tasks, running_containers

REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
D1, D2, SIDE = ("sha256:" + c * 64 for c in "12f")
TD2 = "arn:aws:ecs:eu-west-1:123456789012:task-definition/fraud-api-prod:2"
TD1 = TD2[:-1] + "1"
SERVICE = {
    "taskDefinition": TD2,
    "deployments": [
        {"id": "ecs-svc/2", "status": "PRIMARY", "taskDefinition": TD2},
        {"id": "ecs-svc/1", "status": "ACTIVE", "taskDefinition": TD1},
    ],
}


def task(started_by: str, td: str, *, status: str = "RUNNING", digest: str = D2) -> dict[str, Any]:
    return {
        "taskArn": f"arn:aws:ecs:eu-west-1:123456789012:task/ml-prod/{started_by[-1]}{status}",
        "taskDefinitionArn": td,
        "startedBy": started_by,
        "lastStatus": status,
        "containers": [
            {"name": "api", "image": f"{REGISTRY}/fraud:abc123", "imageDigest": digest},
            # a sidecar from another account's repository: never looked up anywhere
            {"name": "agent", "image": "999999999999.dkr.ecr.eu-west-1.amazonaws.com/dd:7",
             "imageDigest": SIDE},
        ],
    }  # fmt: skip


def test_only_running_tasks_of_the_primary_deployment_count() -> None:
    tasks = [
        task("ecs-svc/2", TD2),
        task("ecs-svc/1", TD1, digest=D1),  # the old deployment, still draining
        task("ecs-svc/2", TD2, status="PENDING"),
        task("ecs-svc/9", TD2),  # started by someone else (a one-off RunTask)
    ]

    kept = primary_tasks(SERVICE, TD2, tasks)

    assert [t["taskArn"].rsplit("/", 1)[1] for t in kept] == ["2RUNNING"]


def test_image_digest_wins_then_the_pinned_digest_then_unknown() -> None:
    reported = task("ecs-svc/2", TD2)
    pinned = {
        "taskArn": "t",
        "containers": [{"name": "api", "image": f"{REGISTRY}/fraud@{D1}"}],
    }
    tagged = {"taskArn": "t", "containers": [{"name": "api", "image": f"{REGISTRY}/fraud:v1"}]}

    assert [c.digest for c in running_containers(reported)] == [D2, SIDE]
    assert [c.digest for c in running_containers(pinned)] == [D1]
    assert [c.digest for c in running_containers(tagged)] == [""]


def test_which_images_are_the_models() -> None:
    assert in_repository(f"{REGISTRY}/fraud:abc123", "fraud")
    assert in_repository(f"{REGISTRY}/fraud@{D1}", "fraud")
    assert in_repository(f"{REGISTRY}/fraud", f"{REGISTRY}/fraud")
    assert in_repository(f"{REGISTRY}/ml/fraud:v1", "ml/fraud")
    assert in_repository("localhost:5000/fraud:v1", "fraud")
    assert not in_repository(f"{REGISTRY}/fraud-sidecar:v1", "fraud")
    assert not in_repository("999999999999.dkr.ecr.eu-west-1.amazonaws.com/dd:7", "fraud")
    assert not in_repository(f"{REGISTRY}/ml/fraud:v1", "fraud")


def test_the_last_error_line_of_ecspresso_is_quoted() -> None:
    output = "2024/01/01 [INFO] start\n2024/01/01 [ERROR] FAILED. boom\n"

    assert last_error(output) == ": 2024/01/01 [ERROR] FAILED. boom"
    assert last_error("all good") == ""
