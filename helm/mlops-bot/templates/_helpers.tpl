{{/* Names, labels and the checks that refuse values which cannot work. */}}

{{- define "mlops-bot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mlops-bot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mlops-bot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mlops-bot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mlops-bot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlops-bot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mlops-bot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mlops-bot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mlops-bot.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The bot's configuration file as text. */}}
{{- define "mlops-bot.configText" -}}
{{- if .Values.configYaml }}
{{- .Values.configYaml }}
{{- else }}
{{- toYaml .Values.config }}
{{- end }}
{{- end }}

{{/* Several replicas: each pod is one replica of a group that shares the PostgreSQL store. */}}
{{- define "mlops-bot.replicated" -}}
{{- if eq .Values.store.type "postgresql" }}true{{ end }}
{{- end }}

{{/* policy/v1 from Kubernetes 1.21; policy/v1beta1 before (removed in 1.25). */}}
{{- define "mlops-bot.pdbApiVersion" -}}
{{- if semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version }}policy/v1{{ else }}policy/v1beta1{{ end }}
{{- end }}

{{/*
Refuse values that install fine but cannot run: several replicas on SQLite, a missing
PostgreSQL secret, secrets in the ConfigMap, a training namespace without a Role.
*/}}
{{- define "mlops-bot.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (ne .Values.store.type "postgresql") }}
{{- fail (printf "replicaCount %d needs store.type=postgresql: replicas share the store and elect their leader in it; SQLite serves one replica (docs/replicas.md)" (int .Values.replicaCount)) }}
{{- end }}
{{- if and (eq .Values.store.type "postgresql") (not .Values.store.postgresql.existingSecret) }}
{{- fail "store.type=postgresql needs store.postgresql.existingSecret: a Secret holding the store URL" }}
{{- end }}
{{- $config := include "mlops-bot.configText" . | fromYaml }}
{{- if hasKey $config "Error" }}
{{- fail (printf "configYaml is not valid YAML: %s" (get $config "Error")) }}
{{- end }}
{{- if not .Values.existingConfigSecret }}
{{- $secretKeys := dict "slack" (list "bot_token" "signing_secret" "app_token") "gitlab" (list "token" "trigger_tokens") "webhooks" (list "secret" "project_secrets") }}
{{- range $section, $keys := $secretKeys }}
{{- $values := get $config $section | default dict }}
{{- range $keys }}
{{- if hasKey $values . }}
{{- fail (printf "config.%s.%s is a secret: put it in secrets.existingSecret (or the whole file in existingConfigSecret), not in a ConfigMap" $section .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.rbac.create }}
{{- range $model, $settings := (get $config "models" | default dict) }}
{{- $training := get ($settings | default dict) "training" | default dict }}
{{- if eq (get $training "backend" | default "gitlab") "kubernetes" }}
{{- $namespace := get (get $training "kubernetes" | default dict) "namespace" | default "ml-training" }}
{{- if not (has $namespace $.Values.rbac.trainingNamespaces) }}
{{- fail (printf "model %s trains in namespace %s: add it to rbac.trainingNamespaces" $model $namespace) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Environment of the migrate init container: config, data dir, store. */}}
{{- define "mlops-bot.storeEnv" -}}
- name: MLOPS_BOT_CONFIG
  value: /etc/mlops-bot/config.yaml
- name: MLOPS_BOT_DATA_DIR
  value: /data
- name: TMPDIR
  value: /tmp
{{- if eq .Values.store.type "postgresql" }}
- name: MLOPS_BOT_STORE_URL
  valueFrom:
    secretKeyRef: {name: {{ .Values.store.postgresql.existingSecret }}, key: {{ .Values.store.postgresql.key }}}
{{- end }}
{{- end }}

{{/* Environment of the bot: the above, where to listen, and the secrets. */}}
{{- define "mlops-bot.env" -}}
{{ include "mlops-bot.storeEnv" . }}
- name: MLOPS_BOT_HOST
  value: "0.0.0.0"
- name: MLOPS_BOT_PORT
  value: {{ .Values.containerPort | quote }}
{{- $secret := .Values.secrets.existingSecret }}
{{- $keys := .Values.secrets.keys }}
- name: SLACK_BOT_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.slackBotToken }}}
{{- if eq .Values.slack.mode "socket" }}
- name: SLACK_APP_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.slackAppToken }}}
{{- else }}
- name: SLACK_SIGNING_SECRET
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.slackSigningSecret }}}
{{- end }}
- name: GITLAB_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.gitlabToken }}, optional: true}
- name: GITLAB_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.gitlabWebhookSecret }}, optional: true}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "mlops-bot.mounts" -}}
- name: config
  mountPath: /etc/mlops-bot
  readOnly: true
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end }}
