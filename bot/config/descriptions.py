"""What each setting means, with an example value: the text of docs/configuration.md.

Kept apart from bot/config/reference.py (which walks the settings model) because it is data;
its keys must match the model's key paths exactly (a test checks both ways).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Doc:
    """One line on what a setting is for, and an example value written as YAML."""

    text: str
    example: str = ""


D = Doc
DESCRIPTIONS: dict[str, Doc] = {
    # ---- the process ------------------------------------------------------------------------
    "data_dir": D(
        "Directory for the bot's own files: the SQLite store when `store.url` is unset.", "/data"
    ),
    "log_level": D("Least severe log level written (JSON lines on stderr).", "info"),
    "slack": D("The Slack workspace: tokens (from the environment) and Web API timeouts."),
    "slack.bot_token": D(
        "Bot User OAuth token; set `SLACK_BOT_TOKEN` rather than writing it here.", "xoxb-..."
    ),
    "slack.signing_secret": D(
        "Signing secret that checks HTTP requests from Slack (HTTP mode); `SLACK_SIGNING_SECRET`.",
        "8f14e45f...",
    ),
    "slack.app_token": D(
        "App-level token with `connections:write`; when set the bot uses Socket Mode; "
        "`SLACK_APP_TOKEN`.",
        "xapp-...",
    ),
    "slack.api_url": D(
        "Base URL of the Slack Web API, for stand-ins and proxies (keep the trailing slash).",
        "http://127.0.0.1:8090/api/",
    ),
    "slack.timeout_seconds": D("Timeout of one Slack Web API call.", "10"),
    "gitlab": D("The GitLab instance that runs training pipelines and serves ecspresso configs."),
    "gitlab.url": D("Base URL of the GitLab instance.", "https://gitlab.example.com"),
    "gitlab.token": D(
        "Access token with the `api` scope (pipelines, artifacts, job logs, repository files); "
        "`GITLAB_TOKEN`.",
        "glpat-...",
    ),
    "gitlab.trigger_tokens": D(
        "Pipeline trigger token per project path, used to start pipelines instead of the token.",
        "{ml/fraud: glptt-...}",
    ),
    "gitlab.timeout_seconds": D("Timeout of one GitLab API call.", "10"),
    "aws": D("AWS: ECR, ECS, ELBv2, CloudWatch and S3 (credentials from the usual AWS chain)."),
    "aws.region": D("AWS region of the ECS clusters and ECR repositories.", "eu-west-1"),
    "aws.endpoint_url": D(
        "Endpoint for every AWS service, for stand-ins such as moto; unset for AWS itself.",
        "http://127.0.0.1:5000",
    ),
    "aws.timeout_seconds": D("Connect and read timeout of one AWS call.", "10"),
    "kubernetes": D("How the bot reaches Kubernetes: a kubeconfig file, or in-cluster when unset."),
    "kubernetes.kubeconfig": D(
        "Kubeconfig file; unset inside a cluster (the pod's service account is used).",
        "~/.kube/config",
    ),
    "kubernetes.timeout_seconds": D("Timeout of one Kubernetes API call.", "10"),
    "store": D("Where the bot keeps runs, deploys, approvals, locks and the audit log."),
    "store.url": D(
        "SQLAlchemy URL of the store; unset: SQLite under `data_dir`. PostgreSQL for HA.",
        "postgresql+asyncpg://bot:...@db:5432/mlops_bot",
    ),
    "store.timeout_seconds": D("Timeout of one store query.", "10"),
    "store.leader_lease_seconds": D(
        "How long the leader's lease lasts unrenewed: a replica takes the background loops "
        "over this long after the leader died (see docs/replicas.md).",
        "10",
    ),
    "store.leader_renew_seconds": D(
        "How often the leader renews its lease (at most half of `leader_lease_seconds`).", "2"
    ),
    "store.claim_lease_seconds": D(
        "How long a replica's claim on a recorded request lasts unrenewed; a request claimed "
        "by a replica that died runs elsewhere after this (renewed every third of it).",
        "10",
    ),
    "server": D("The HTTP listener: /slack/events, /gitlab/webhook, /healthz, /readyz, /metrics."),
    "server.host": D("Address to listen on (`0.0.0.0` in a container).", '"0.0.0.0"'),
    "server.port": D("Port to listen on (0: any free port).", "3000"),
    "notifier": D("How cards are edited in Slack."),
    "notifier.edit_interval_seconds": D(
        "Edits of one card within this interval are merged into one `chat.update`.", "1"
    ),
    "policy": D("Role checks."),
    "policy.group_cache_seconds": D(
        "How long the members of a Slack user group are cached for role checks.", "300"
    ),
    # ---- training -----------------------------------------------------------------------------
    "training": D("Bot-wide training settings."),
    "training.max_gpus_per_user": D(
        "GPUs one user's active runs may hold together, across models; unset: no cap.", "8"
    ),
    "training.poll_seconds": D(
        "First interval of the GitLab pipeline poller (it backs off while nothing changes).", "10"
    ),
    "training.poll_max_seconds": D("Longest interval of the poller's back-off.", "120"),
    "training.webhook_poll_seconds": D(
        "Poller interval when webhooks are configured (a fallback for lost deliveries).", "300"
    ),
    # ---- webhooks -----------------------------------------------------------------------------
    "webhooks": D("GitLab webhook intake at /gitlab/webhook: secrets, retention, routing."),
    "webhooks.secret": D(
        "Secret token every GitLab webhook must send (X-Gitlab-Token); "
        "`GITLAB_WEBHOOK_SECRET`. Unset: every delivery is refused.",
        "...",
    ),
    "webhooks.project_secrets": D(
        "Per-project secret tokens; a project listed here must use its own.",
        "{ml/fraud: ...}",
    ),
    "webhooks.signing_token": D(
        "The webhook's signing token (GitLab 19+): deliveries must then carry a valid "
        "`webhook-signature` (Standard Webhooks, HMAC-SHA256 over id.timestamp.body); "
        "a `whsec_` token is base64 after the prefix. Env: GITLAB_WEBHOOK_SIGNING_TOKEN.",
        "whsec_...",
    ),
    "webhooks.signature_tolerance_seconds": D(
        "How far a signed delivery's `webhook-timestamp` may be from now (replay window).",
        "300",
    ),
    "webhooks.retention_hours": D(
        "How long processed deliveries are kept (and redeliveries recognised).", "72"
    ),
    "webhooks.state_retention_days": D(
        "How long a CI card's state is kept after its last event.", "30"
    ),
    "webhooks.routes": D("Rules that send CI events to channels; every matching rule adds one."),
    "webhooks.routes[].project": D("Project path or glob.", "ml/*"),
    "webhooks.routes[].ref": D(
        "Branch or tag glob; `$default` is the project's default branch.", "$default"
    ),
    "webhooks.routes[].kinds": D("Event kinds the rule matches.", "[pipeline, job]"),
    "webhooks.routes[].statuses": D(
        "Statuses the rule matches (pipeline/job status, MR state); empty: any.", "[failed]"
    ),
    "webhooks.routes[].sources": D(
        "What started the pipeline (push, schedule, merge_request_event, ...); empty: any.",
        "[merge_request_event]",
    ),
    "webhooks.routes[].channel": D("Channel id or name to post to.", '"#ml-alerts"'),
    "webhooks.concurrency": D("Deliveries processed at the same time.", "8"),
    # ---- ecspresso ----------------------------------------------------------------------------
    "ecspresso": D(
        "The ecspresso CLI the bot runs to deploy (checked by `mlops-bot check-config`)."
    ),
    "ecspresso.path": D(
        "The ecspresso executable (name on PATH or a path).", "/usr/local/bin/ecspresso"
    ),
    "ecspresso.min_version": D(
        "Lowest ecspresso version accepted (older ones exit 0 after a rollback).", '"2.4.0"'
    ),
    "ecspresso.timeout_seconds": D("Longest one `ecspresso deploy` may run.", "900"),
    "ecspresso.verify_seconds": D(
        "How long to wait for ECS to finish the rollout after ecspresso exits.", "300"
    ),
    "ecspresso.allow_external_plugin": D(
        "Accept deploy configs that enable ecspresso's `external` plugin (v2.5+: it runs a "
        "command named in the config under the bot's AWS identity); `check-config` refuses "
        "them otherwise.",
        "false",
    ),
    # ---- roles --------------------------------------------------------------------------------
    "roles": D(
        "Global role bindings: role -> Slack user ids (U...) and user group ids (S...).",
        "{admin: [U012ABCDEF], viewer: [S0ALLML]}",
    ),
    # ---- models -------------------------------------------------------------------------------
    "models": D("One entry per model, keyed by the name used in `/train` and `/deploy`."),
    "models.<model>.channel": D("The model's channel: its cards go there.", '"#ml-fraud"'),
    "models.<model>.gitlab_project": D("GitLab project path of the model's code.", "ml/fraud"),
    "models.<model>.owners": D(
        "Who owns the model's production accuracy: Slack user ids (U...) and user group ids "
        "(S...), mentioned once when a monitoring incident opens; one id alone also works.",
        "[S0FRAUDTEAM, U012ABCDEF]",
    ),
    "models.<model>.training": D("How the model trains and how its results are judged."),
    "models.<model>.training.backend": D(
        "Where runs go: a GitLab pipeline or a Kubernetes Job.", "kubernetes"
    ),
    "models.<model>.training.default_ref": D(
        "Branch, tag or commit trained when `/train` names no `ref=`.", "main"
    ),
    "models.<model>.training.default_gpus": D("GPUs of a run when `/train` names no `gpus=`.", "1"),
    "models.<model>.training.max_gpus": D("Most GPUs one run may ask for.", "4"),
    "models.<model>.training.max_concurrent_gpus": D(
        "GPUs the model's active runs may hold together; unset: no cap.", "8"
    ),
    "models.<model>.training.parameters": D(
        "Hyperparameters `/train` accepts (passed as HP_<NAME>); unset: any.",
        "[lr, epochs, batch_size]",
    ),
    "models.<model>.training.gitlab": D(
        "Where a pipeline's metrics artifact is: the job that writes it and the file's path."
    ),
    "models.<model>.training.gitlab.metrics_job": D(
        "The pipeline job whose artifact holds the metrics.", "evaluate"
    ),
    "models.<model>.training.gitlab.metrics_path": D(
        'Path of the metrics file in that artifact: `{"metrics": {...}, "test_set": "..."}`.',
        "metrics.json",
    ),
    "models.<model>.training.kubernetes": D(
        "The Job template: everything but the GPU count, run id, dataset and parameters."
    ),
    "models.<model>.training.kubernetes.namespace": D(
        "Namespace of the training Jobs (the chart's Role must cover it).", "ml-training"
    ),
    "models.<model>.training.kubernetes.template": D(
        "The team's Job manifest (a YAML file, like examples/kubernetes/train-job.yaml): "
        "the bot fills in name, labels, the `train` container's image, env and GPU limit, "
        "and the deadline, and keeps the rest (requests, tolerations, volumes, /dev/shm) as "
        "written; check-config validates it against the Job schema.",
        "/etc/mlops-bot/jobs/fraud.yaml",
    ),
    "models.<model>.training.kubernetes.image": D(
        "Image of the training container.",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fraud-train:latest",
    ),
    "models.<model>.training.kubernetes.command": D(
        "Container command (the image's entrypoint when empty).", "[python, -m, fraud.train]"
    ),
    "models.<model>.training.kubernetes.args": D("Container arguments.", "[--evaluate]"),
    "models.<model>.training.kubernetes.env": D(
        "Extra environment variables (MLOPS_* and HP_* are added per run).",
        "{DATA_BUCKET: ml-data}",
    ),
    "models.<model>.training.kubernetes.node_selector": D(
        "Node labels the pod must match.", '{nvidia.com/gpu.present: "true"}'
    ),
    "models.<model>.training.kubernetes.tolerations": D(
        "Pod tolerations, as in a pod spec.",
        "[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]",
    ),
    "models.<model>.training.kubernetes.service_account": D(
        "Service account of the training pod (e.g. for S3 access).", "fraud-train"
    ),
    "models.<model>.training.kubernetes.backoff_limit": D(
        "Retries of a failed pod before the Job fails.", "0"
    ),
    "models.<model>.training.kubernetes.active_deadline_seconds": D(
        "Longest a Job may run before Kubernetes stops it; unset: no limit.", "86400"
    ),
    "models.<model>.training.kubernetes.pending_timeout_seconds": D(
        "Longest a run may wait to start (unschedulable, over quota, image or config errors) "
        "before it is failed with the reason and its Job deleted; unset: wait for the deadline.",
        "1800",
    ),
    "models.<model>.training.kubernetes.ttl_seconds_after_finished": D(
        "When Kubernetes deletes a finished Job; unset: never.", "604800"
    ),
    "models.<model>.training.kubernetes.metrics_bucket": D(
        "S3 bucket where the training Job writes its metrics file.", "ml-artifacts"
    ),
    "models.<model>.training.kubernetes.metrics_key": D(
        "Key of the metrics file in that bucket; may use {run_id} and {model}.",
        "runs/{model}/{run_id}/metrics.json",
    ),
    "models.<model>.training.gate": D(
        "The accuracy gate: minimum values, and the largest drop allowed against the champion."
    ),
    "models.<model>.training.gate.min": D("Lowest value each metric may have.", "{accuracy: 0.90}"),
    "models.<model>.training.gate.max_drop": D(
        "Largest drop of each metric against the model in production (same test set only).",
        "{accuracy: 0.01}",
    ),
    "models.<model>.training.baseline": D(
        "The champion's figures when no run is deployed to prod yet."
    ),
    "models.<model>.training.baseline.metrics": D(
        "The champion's metrics.", "{accuracy: 0.921, f1: 0.879}"
    ),
    "models.<model>.training.baseline.test_set": D(
        "The test set those metrics were measured on.", "fraud-test-v3"
    ),
    # ---- monitoring (docs/monitoring.md) ---------------------------------------------------
    "models.<model>.monitoring": D(
        "Watching the model after release: SLOs from CloudWatch, drift of prediction logs "
        "against the deployed run's reference.json, production accuracy from delayed labels."
    ),
    "models.<model>.monitoring.interval_minutes": D("How often each environment is checked.", "15"),
    "models.<model>.monitoring.window_minutes": D(
        "Minutes of predictions (and of CloudWatch) one check reads; unset: the interval.", "60"
    ),
    "models.<model>.monitoring.labels_hours": D(
        "Hours of labels (by when they arrived) joined with the window's predictions.", "24"
    ),
    "models.<model>.monitoring.digest": D(
        "Time of day (UTC, HH:MM) of the daily digest; unset: none.", '"09:00"'
    ),
    "models.<model>.monitoring.thresholds": D(
        "How sure a check must be before it opens an incident."
    ),
    "models.<model>.monitoring.thresholds.false_alarm_rate": D(
        "Chance that a check with no drift flags any feature (Holm-corrected across all "
        "features and the prediction); thresholds follow from it and the window's size.",
        "0.01",
    ),
    "models.<model>.monitoring.thresholds.accuracy_tolerance": D(
        "How far below the deployed run's test-set accuracy production may be.", "0.02"
    ),
    "models.<model>.monitoring.thresholds.accuracy_confidence": D(
        "One-sided confidence that production accuracy is below that before an incident.", "0.99"
    ),
    "models.<model>.monitoring.thresholds.min_labels": D(
        "Fewest labelled predictions production accuracy is judged on.", "100"
    ),
    "models.<model>.monitoring.environments": D(
        "What is watched per environment (names from `environments`)."
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch": D(
        "The ALB target group in front of the service, and its SLOs."
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.target_group": D(
        "ARN of the service's target group.",
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/fraud-prod/0123456789abcdef",
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.load_balancer": D(
        "CloudWatch's LoadBalancer dimension of the ALB.", "app/ml-prod/50dc6c495c0c9188"
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.latency_seconds": D(
        "Highest TargetResponseTime (of `latency_stat`, per minute) in the window; unset: "
        "not checked.",
        "0.5",
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.latency_stat": D(
        "Statistic of TargetResponseTime held against `latency_seconds`: p99 (or p95, "
        "Maximum, Average, ...).",
        "p99",
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.max_5xx_rate": D(
        "Highest share of requests answered 5xx by the targets; unset: not checked.", "0.01"
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.min_requests": D(
        "Fewest requests in the window the 5xx rate is judged on.", "100"
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.custom": D(
        "Metrics the model service publishes itself, each with limits."
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.custom[].name": D(
        "Short name shown on incidents.", "online_auc"
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.custom[].namespace": D(
        "CloudWatch namespace.", "ml/fraud"
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.custom[].metric": D(
        "CloudWatch metric name.", "OnlineAUC"
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.custom[].stat": D(
        "Statistic: Average, Sum, Minimum, Maximum, SampleCount or pNN.", "p99"
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.custom[].dimensions": D(
        "Dimensions of the metric.", "{Env: prod}"
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.custom[].min": D(
        "Lowest allowed value.", "0.8"
    ),
    "models.<model>.monitoring.environments.<env>.cloudwatch.custom[].max": D(
        "Highest allowed value.", "1000"
    ),
    "models.<model>.monitoring.environments.<env>.predictions": D(
        "S3 prefix of the service's prediction logs (JSON Lines, gzip allowed).",
        "s3://ml-logs/fraud/prod/predictions/",
    ),
    "models.<model>.monitoring.environments.<env>.labels": D(
        "S3 prefix of delayed ground truth, joined with predictions by id.",
        "s3://ml-logs/fraud/prod/labels/",
    ),
    # ---- environments -------------------------------------------------------------------------
    "models.<model>.environments": D(
        "Deploy targets of the model, keyed by the name used in `/deploy` (stg, prod, ...)."
    ),
    "models.<model>.environments.<env>.cluster": D("ECS cluster of the service.", "ml-prod"),
    "models.<model>.environments.<env>.service": D(
        "ECS service the bot verifies after a deploy.", "fraud-api"
    ),
    "models.<model>.environments.<env>.refs": D(
        "Git refs whose images may deploy here (globs); empty: any.", '[main, "v*"]'
    ),
    "models.<model>.environments.<env>.variables": D(
        "Extra environment variables for ecspresso (read with `must_env`).",
        "{DEPLOY_ENV: prod, ECS_CLUSTER: ml-prod}",
    ),
    "models.<model>.environments.<env>.approval_minutes": D(
        "How long an approval prompt stays open.", "60"
    ),
    "models.<model>.environments.<env>.rejections": D(
        "Rejections that turn a deploy request down.", "1"
    ),
    "models.<model>.environments.<env>.approve_emoji": D(
        "Reaction that approves a deploy card.", "white_check_mark"
    ),
    "models.<model>.environments.<env>.reject_emoji": D(
        "Reaction that rejects a deploy card.", "x"
    ),
    "models.<model>.environments.<env>.rollback_approvals": D("Approvals a rollback needs.", "1"),
    "models.<model>.environments.<env>.lock_minutes": D(
        "How long a deploy lock lasts unless released.", "60"
    ),
    "models.<model>.environments.<env>.diff": D(
        "What the deploy card shows of `ecspresso diff` (run only after the role, ref and "
        "`requires` gates pass): `summary` (which parts differ, lines added and removed), "
        "`full` (also the rendered diff, secrets scrubbed, in the card's thread), or `off` "
        "(no diff is run).",
        "summary",
    ),
    "models.<model>.environments.<env>.approvals": D(
        "Distinct approvers (never the requester) a deploy needs.", "2"
    ),
    "models.<model>.environments.<env>.approvers": D(
        "Who may approve: Slack user ids and user group ids.", "[S0APPROVERS]"
    ),
    "models.<model>.environments.<env>.requires": D(
        "Environment an image must have succeeded on first.", "stg"
    ),
    "models.<model>.environments.<env>.roles": D(
        "Role bindings for this environment only.", "{deployer: [U012ABCDEF]}"
    ),
    # ---- A/B ----------------------------------------------------------------------------------
    "models.<model>.environments.<env>.ab": D(
        "A/B split: A is this environment's service, B the service of `b_env`, weighted on an ALB."
    ),
    "models.<model>.environments.<env>.ab.b_env": D(
        "The environment that serves B (its own config, service and approvals). Its gates must "
        "be at least this environment's: as many `approvals`, only approvers this environment "
        "accepts, the same `requires` (or a chain through it) and only `refs` it allows.",
        "prod-b",
    ),
    "models.<model>.environments.<env>.ab.listener_arn": D(
        "ALB listener whose default action splits the traffic (or give `rule_arn`).",
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/ml/0123/4567",
    ),
    "models.<model>.environments.<env>.ab.rule_arn": D(
        "ALB listener rule that splits the traffic (or give `listener_arn`).",
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/ml/0123/4567/89ab",
    ),
    "models.<model>.environments.<env>.ab.target_group_a": D(
        "Target group of A's service.",
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/fraud-a/0123",
    ),
    "models.<model>.environments.<env>.ab.target_group_b": D(
        "Target group of B's service.",
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/fraud-b/4567",
    ),
    "models.<model>.environments.<env>.ab.load_balancer": D(
        "CloudWatch's LoadBalancer dimension; unset: read from the listener or rule ARN.",
        "app/ml/0123456789abcdef",
    ),
    "models.<model>.environments.<env>.ab.default_weight": D(
        "B's share in percent when `ab start` names no weight.", "10"
    ),
    "models.<model>.environments.<env>.ab.approvals_above": D(
        "Raising B's share above this percentage needs `approvals` approvals (so B never gets "
        "most of the traffic unseen).",
        "20",
    ),
    "models.<model>.environments.<env>.ab.approvals": D(
        "Approvals such a raise needs, from this environment's approvers.", "1"
    ),
    "models.<model>.environments.<env>.ab.guard": D(
        "The guard that compares B with A in CloudWatch and reverts B on a breach."
    ),
    "models.<model>.environments.<env>.ab.guard.interval_seconds": D(
        "How often the guard reads CloudWatch.", "60"
    ),
    "models.<model>.environments.<env>.ab.guard.window_seconds": D(
        "The span of metrics each reading covers.", "300"
    ),
    "models.<model>.environments.<env>.ab.guard.consecutive_breaches": D(
        "Bad readings in a row that abort the split.", "3"
    ),
    "models.<model>.environments.<env>.ab.guard.min_requests": D(
        "Requests B must have served in the window before its 5xx rate is judged.", "10"
    ),
    "models.<model>.environments.<env>.ab.guard.max_5xx_rate_delta": D(
        "Largest excess of B's 5xx rate over A's (0.01 = one percentage point).", "0.01"
    ),
    "models.<model>.environments.<env>.ab.guard.max_latency_ratio": D(
        "Largest ratio of B's response time to A's.", "1.5"
    ),
    "models.<model>.environments.<env>.ab.guard.abort_when_blind": D(
        "Failed reads (CloudWatch or ELBv2 errors) in a row that abort; 0: never.", "5"
    ),
    "models.<model>.environments.<env>.ab.guard.custom": D(
        "Metrics the team publishes per variant (online accuracy, drift, ...), with limits."
    ),
    "models.<model>.environments.<env>.ab.guard.custom[].name": D(
        "Short name of the check, shown in messages.", "online_accuracy"
    ),
    "models.<model>.environments.<env>.ab.guard.custom[].namespace": D(
        "CloudWatch namespace of the metric.", "ML/Fraud"
    ),
    "models.<model>.environments.<env>.ab.guard.custom[].metric": D(
        "CloudWatch metric name.", "Accuracy"
    ),
    "models.<model>.environments.<env>.ab.guard.custom[].stat": D(
        "CloudWatch statistic read.", "Average"
    ),
    "models.<model>.environments.<env>.ab.guard.custom[].dimensions": D(
        "Dimensions; values may use {variant}, {target_group} and {load_balancer}.",
        "{Variant: '{variant}'}",
    ),
    "models.<model>.environments.<env>.ab.guard.custom[].compare": D(
        "What is checked against the limits: B minus A, B over A, or B alone.", "b_minus_a"
    ),
    "models.<model>.environments.<env>.ab.guard.custom[].min": D(
        "Lowest value allowed (give `min`, `max` or both).", "-0.01"
    ),
    "models.<model>.environments.<env>.ab.guard.custom[].max": D("Highest value allowed.", "0.05"),
    # ---- model roles and deploys --------------------------------------------------------------
    "models.<model>.roles": D(
        "Role bindings for this model only.", "{trainer: [S0FRAUDTEAM], deployer: [U012ABCDEF]}"
    ),
    "models.<model>.deploy": D(
        "How a run becomes an image: the ECR repository and the tag pattern the pipeline pushes."
    ),
    "models.<model>.deploy.image_repository": D("ECR repository of the model's image.", "fraud"),
    "models.<model>.deploy.image_tag": D(
        "Tag the pipeline pushes; may use {sha}, {short_sha}, {run_id} and {model}.", '"{sha}"'
    ),
    "models.<model>.deploy.source": D(
        "Where the ecspresso config is, always operator-controlled: a local directory shipped "
        "with the bot (a ConfigMap), or a protected branch of the model's GitLab repository. "
        "Never the run's commit: a run contributes only its image digest."
    ),
    "models.<model>.deploy.source.kind": D(
        "`local`: from disk; `gitlab`: from the repository's default branch (or `ref`), "
        "which GitLab must report as protected, else deploys are refused.",
        "gitlab",
    ),
    "models.<model>.deploy.source.ref": D(
        "The protected branch to read the config from (`kind: gitlab`); default: the "
        "project's default branch.",
        "release",
    ),
    "models.<model>.deploy.source.path": D(
        "Directory of the ecspresso config; may use {model} and {env}.", "deploy/{env}"
    ),
    "models.<model>.deploy.source.config": D(
        "File name of the ecspresso config in that directory.", "ecspresso.yml"
    ),
}
"""What each key path means, with an example; keys must match ``rows(Settings)`` exactly."""
