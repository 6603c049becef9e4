"""The sandbox's GitLab projects: a three-stage CI plan whose evaluate job leaves metrics.json
and reference.json (the traffic generator's training distribution, fixtures/samples.py)."""

from __future__ import annotations

import json

from bot.sandbox.fixtures.samples import SAMPLE_MODELS, reference_json
from bot.sandbox.gitlab.server import GitLabStandIn
from bot.sandbox.gitlab.state import JobPlan, StandInProject

GITLAB_TOKEN = "glpat-sandbox-token"  # noqa: S105 - the stand-in's own, not a real credential
METRICS = {
    "ml/fraud": {"metrics": {"accuracy": 0.9312, "f1": 0.8875}, "test_set": "fraud-test-v3"},
    "ml/churn": {"metrics": {"auc": 0.861, "recall": 0.702}, "test_set": "churn-test-v1"},
}


def plan(path: str) -> list[JobPlan]:
    report = json.dumps(METRICS[path]).encode()
    model = path.rpartition("/")[2]
    reference = {"reference.json": reference_json(model)} if model in SAMPLE_MODELS else {}
    return [
        JobPlan("prepare", "prepare", duration_s=0.5, trace="fetching dataset\nok\n"),
        JobPlan("train", "train", duration_s=1.0, trace="epoch 1/3\nepoch 2/3\nepoch 3/3\n"),
        JobPlan(
            "evaluate",
            "evaluate",
            duration_s=0.5,
            trace="scoring the fixed test set\n",
            artifacts={"metrics.json": report, **reference},
        ),
    ]


def gitlab_stand_in() -> GitLabStandIn:
    projects = [StandInProject(path=path, jobs=plan(path)) for path in METRICS]
    return GitLabStandIn(token=GITLAB_TOKEN, projects=projects)
