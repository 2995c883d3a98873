{{/* The chart's name, overridable. */}}
{{- define "integrateio-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name when it already contains the chart's name. */}}
{{- define "integrateio-exporter.fullname" -}}
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

{{- define "integrateio-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "integrateio-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "integrateio-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object but app.kubernetes.io/component. */}}
{{- define "integrateio-exporter.commonLabels" -}}
helm.sh/chart: {{ include "integrateio-exporter.chart" . }}
{{ include "integrateio-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "integrateio-exporter.labels" -}}
{{ include "integrateio-exporter.commonLabels" . }}
app.kubernetes.io/component: exporter
{{- end }}

{{/* The headless Service of the StatefulSet (sharding): pod DNS names only. Its own component keeps the
ServiceMonitor, which selects component "exporter", from scraping every pod twice. */}}
{{- define "integrateio-exporter.headlessServiceName" -}}
{{- printf "%s-headless" (include "integrateio-exporter.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "integrateio-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "integrateio-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the API key: the user's, the chart's, or empty when there is none. */}}
{{- define "integrateio-exporter.apiKeySecretName" -}}
{{- if .Values.apiKey.existingSecret }}
{{- .Values.apiKey.existingSecret }}
{{- else if .Values.apiKey.value }}
{{- printf "%s-api-key" (include "integrateio-exporter.fullname" .) }}
{{- end }}
{{- end }}

{{/* Where the API key file is mounted (apiKey.mountAs=file). */}}
{{- define "integrateio-exporter.apiKeyDir" -}}
/var/run/secrets/integrateio-exporter/api-key
{{- end }}

{{- define "integrateio-exporter.webConfigDir" -}}
/var/run/secrets/integrateio-exporter/web
{{- end }}

{{- define "integrateio-exporter.tlsDir" -}}
/var/run/secrets/integrateio-exporter/tls
{{- end }}

{{/* The Secret holding the web hook's password (and salt): the user's, the chart's, or empty when hooks are off. */}}
{{- define "integrateio-exporter.webhookSecretName" -}}
{{- if .Values.webhook.enabled }}
{{- if .Values.webhook.existingSecret }}
{{- .Values.webhook.existingSecret }}
{{- else if .Values.webhook.password }}
{{- printf "%s-webhook" (include "integrateio-exporter.fullname" .) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret's key holding the salt, or empty when hooks are not verified by hash. */}}
{{- define "integrateio-exporter.webhookSaltKey" -}}
{{- if .Values.webhook.existingSecret }}{{ .Values.webhook.existingSecretSaltKey }}{{ else if .Values.webhook.salt }}salt{{ end }}
{{- end }}

{{- define "integrateio-exporter.webhookDir" -}}
/var/run/secrets/integrateio-exporter/webhook
{{- end }}

{{/* "true" when a web config (TLS and/or basic auth) is rendered, else empty. */}}
{{- define "integrateio-exporter.webConfigEnabled" -}}
{{- if or .Values.webConfig.tls.enabled (gt (len .Values.webConfig.basicAuthUsers) 0) }}true{{ end }}
{{- end }}

{{- define "integrateio-exporter.scheme" -}}
{{- if .Values.webConfig.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/* How many exporter pods run: the StatefulSet's (sharding) or the Deployment's. */}}
{{- define "integrateio-exporter.replicas" -}}
{{- if .Values.sharding.enabled }}{{ .Values.sharding.replicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* "true" when the Deployment mounts a ReadWriteOnce volume (persistence), which two pods cannot share. */}}
{{- define "integrateio-exporter.readWriteOnce" -}}
{{- if and .Values.persistence.enabled (not .Values.sharding.enabled) }}
{{- range .Values.persistence.accessModes }}{{ if has . (list "ReadWriteOnce" "ReadWriteOncePod") }}true{{ end }}{{ end }}
{{- end }}
{{- end }}

{{/* "true" when config.accounts lists several accounts (the exporter's multi-account form), else empty. */}}
{{- define "integrateio-exporter.multiAccount" -}}
{{- if .Values.config.accounts }}true{{ end }}
{{- end }}

{{/*
The exporter's config.yaml. Rendered as JSON (JSON is YAML) because Helm reads numbers in values as floats and
toYaml writes large ones in scientific notation (a job id 1234567 would become 1.234567e+06); toJson does not.

One account: config as it is, plus api.api_key_file when the chart mounts the key as a file (unless the user
chose api_key_file or api_key_env).

config.accounts: the file is `accounts:` alone (the exporter allows nothing beside it). The top-level api
(but account_id), polling and rate_limit, which values.yaml always fills, become each account's defaults; an
account's own keys win. An account with neither api_key_file nor api_key_env uses the chart's key (apiKey).

persistence.enabled: state_file points into the mounted volume (state.json; with accounts, state-<name>.json
each), unless the user set one.
*/}}
{{- define "integrateio-exporter.configFile" -}}
{{- $config := deepCopy .Values.config }}
{{- $keyFile := "" }}
{{- if and (eq .Values.apiKey.mountAs "file") (include "integrateio-exporter.apiKeySecretName" .) }}
{{- $keyFile = printf "%s/%s" (include "integrateio-exporter.apiKeyDir" .) .Values.apiKey.secretKey }}
{{- end }}
{{- $api := default (dict) $config.api }}
{{- $stateDir := "" }}
{{- if .Values.persistence.enabled }}
{{- $stateDir = .Values.persistence.mountPath }}
{{- end }}
{{- if $config.accounts }}
{{- if or $api.account_id $config.jobs $config.discover $config.state_file }}
{{- fail "config.accounts replaces config.api.account_id, config.jobs, config.discover and config.state_file: move them into each account" }}
{{- end }}
{{- $accounts := list }}
{{- range $account := $config.accounts }}
{{- $entry := deepCopy $account }}
{{- $entryApi := merge (default (dict) $entry.api) (omit $api "account_id" "api_key_file" "api_key_env") }}
{{- if and $keyFile (not (hasKey $entryApi "api_key_file")) (not (hasKey $entryApi "api_key_env")) }}
{{- $_ := set $entryApi "api_key_file" $keyFile }}
{{- end }}
{{- $_ := set $entry "api" $entryApi }}
{{- if and $stateDir (not $entry.state_file) }}
{{- $label := regexReplaceAll "[^A-Za-z0-9_.-]" (toString ($entry.name | default $entryApi.account_id)) "_" }}
{{- $_ := set $entry "state_file" (printf "%s/state-%s.json" $stateDir $label) }}
{{- end }}
{{- range $section := list "polling" "rate_limit" }}
{{- $merged := merge (default (dict) (get $entry $section)) (default (dict) (get $config $section)) }}
{{- if $merged }}
{{- $_ := set $entry $section $merged }}
{{- end }}
{{- end }}
{{- $accounts = append $accounts $entry }}
{{- end }}
{{- toPrettyJson (dict "accounts" $accounts) }}
{{- else }}
{{- if and $keyFile $config.api (not (hasKey $api "api_key_file")) (not (hasKey $api "api_key_env")) }}
{{- $_ := set $config.api "api_key_file" $keyFile }}
{{- end }}
{{- if and $stateDir (not $config.state_file) }}
{{- $_ := set $config "state_file" (printf "%s/state.json" $stateDir) }}
{{- end }}
{{- if .Values.webhook.enabled }}
{{- $dir := include "integrateio-exporter.webhookDir" . }}
{{- $auth := dict "username" .Values.webhook.username "password_file" (printf "%s/password" $dir) }}
{{- $hook := dict "enabled" true "path" .Values.webhook.path "basic_auth" $auth "budget_share" .Values.webhook.budgetShare }}
{{- if include "integrateio-exporter.webhookSaltKey" . }}
{{- $_ := set $hook "salt_file" (printf "%s/salt" $dir) }}
{{- end }}
{{- with .Values.webhook.ingress.host }}
{{- $_ := set $hook "url" (printf "https://%s%s" . $.Values.webhook.path) }}
{{- end }}
{{- $_ := set $config "webhook" $hook }}
{{- end }}
{{- toPrettyJson $config }}
{{- end }}
{{- end }}

{{/* The spec of the state volume's claim: the Deployment's PersistentVolumeClaim or the StatefulSet's template. */}}
{{- define "integrateio-exporter.claimSpec" -}}
accessModes:
  {{- toYaml .Values.persistence.accessModes | nindent 2 }}
{{- with .Values.persistence.storageClassName }}
storageClassName: {{ . | quote }}
{{- end }}
resources:
  requests:
    storage: {{ .Values.persistence.size }}
{{- end }}
