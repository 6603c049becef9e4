"""What a deploy card says about ecspresso's diff: the summary and the scrubbing."""

from __future__ import annotations

from bot.logs import SecretScrubber
from bot.services.deploys.diffs import local_names, scrub, summary
from bot.views.deploys import deploy_card, diff_line

DIFF = """\
--- arn:aws:ecs:us-east-1:123456789012:service/ml-stg/fraud-api
+++ deploy/stg/ecs-service-def.json
@@ -1,3 +1,3 @@
 {
-  "desiredCount": 1,
+  "desiredCount": 2,
 }
--- arn:aws:ecs:us-east-1:123456789012:task-definition/fraud-api-stg:3
+++ deploy/stg/ecs-task-def.json
@@ -4,8 +4,9 @@
-      "image": "1234.dkr.ecr.us-east-1.amazonaws.com/fraud@sha256:aaaa",
+      "image": "1234.dkr.ecr.us-east-1.amazonaws.com/fraud@sha256:bbbb",
       "environment": [
         {
+          "name": "DB_PASSWORD",
+          "value": "hunter2-from-ssm"
+        },
+        {
           "name": "MODEL",
           "value": "fraud"
         }
+      "apiToken": "glpat-known-secret",
+      "note": "AKIAEXAMPLEKEY"
"""


def test_the_summary_names_each_part_with_its_line_counts() -> None:
    assert summary(DIFF) == ("service definition: +1 -1 lines; task definition: +7 -1 lines")
    assert summary("") == "no change"
    assert summary("something odd\n") == "1 lines of output (not a unified diff)"


def test_scrubbing_hides_known_secrets_and_secret_looking_values() -> None:
    scrubbed = scrub(DIFF, SecretScrubber(["glpat-known-secret"]), ["AKIAEXAMPLEKEY"])
    for secret in ("hunter2-from-ssm", "glpat-known-secret", "AKIAEXAMPLEKEY"):
        assert secret not in scrubbed
    assert '"value": "fraud"' in scrubbed  # an innocent entry stays
    assert '"name": "DB_PASSWORD"' in scrubbed and "[redacted]" in scrubbed


def test_the_card_line_is_escaped_plain_text() -> None:
    assert diff_line("diff unavailable: <!channel> & co") == (
        "*diff*: diff unavailable: &lt;!channel&gt; &amp; co"
    )


def test_the_card_shows_the_diff_line_not_the_rendered_diff() -> None:
    from datetime import UTC, datetime

    from bot.domain.deploys import Deployment, DeployState

    d = Deployment(
        1, "fraud", "stg", "deploy", DeployState.QUEUED, "U0A", datetime.now(UTC), "v1", ""
    )
    card = str(deploy_card(d, None, diff="computing diff…").blocks)
    assert "*diff*: computing diff…" in card


def test_local_paths_in_headers_become_file_names() -> None:
    diff = (
        "--- arn:aws:ecs:us-east-1:123456789012:task-definition/fraud:1\n"
        "+++ /tmp/mlops-bot-ecspresso-x1/deploy/ecs-task-def.json\n"
        "@@ -1 +1 @@\n-a\n+b\n"
    )
    shown = local_names(diff)
    assert "+++ ecs-task-def.json\n" in shown and "/tmp/" not in shown  # noqa: S108
    assert shown.startswith("--- arn:aws:ecs:")
