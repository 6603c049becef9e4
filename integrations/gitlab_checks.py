"""What `mlops-bot check-config` asks GitLab: would each model's project take /train's variables?

GitLab.com refuses pipeline variables by default in projects of new namespaces
(``ci_pipeline_variables_minimum_override_role: no_one_allowed``), and /train always sends
``MLOPS_*`` and ``HP_*`` variables, so a team would meet the refusal on its first run.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.config.checks import VARIABLES_SETTING, pipeline_variables_issue, role_name
from bot.config.settings import Settings
from bot.errors import BotError, ExternalError
from integrations.gitlab import GitLabPipelines


async def variables_issues(settings: Settings, note: Callable[[str], None] = print) -> list[str]:
    """One problem per GitLab model whose project would refuse the bot's pipeline variables;
    what cannot be checked (no API token, a token below Maintainer, GitLab unreachable) is a
    ``note``, not a problem."""
    gitlab = settings.gitlab
    models = sorted(
        (name, m.gitlab_project)
        for name, m in settings.models.items()
        if m.training.backend == "gitlab" and m.gitlab_project
    )
    if not models:
        return []
    if gitlab.token is None:
        note(f"note: gitlab.token is not set: the projects' {VARIABLES_SETTING} was not checked")
        return []
    pipelines = GitLabPipelines.from_settings(
        url=gitlab.url, token=gitlab.token.get_secret_value(), timeout=gitlab.timeout_seconds
    )
    problems: list[str] = []
    for name, project in models:
        where = f"models.{name}.gitlab_project"
        try:
            policy = await pipelines.variables_policy(project)
        except ExternalError as exc:
            note(f"note: {where}: {project}'s pipeline-variable setting not checked ({exc})")
            continue
        except BotError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if policy.restricted is None:
            note(
                f"note: {where}: the bot's token is {role_name(policy.access_level)} in "
                f"{project}, and reading its {VARIABLES_SETTING} takes Maintainer: not checked"
            )
            continue
        trigger = project in gitlab.trigger_tokens
        issue = pipeline_variables_issue(project, policy, trigger=trigger)
        if issue is not None:
            problems.append(f"{where}: {issue}")
    return problems
