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

{{- define "integrateio-exporter.labels" -}}
helm.sh/chart: {{ include "integrateio-exporter.chart" . }}
{{ include "integrateio-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: exporter
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

{{/* "true" when a web config (TLS and/or basic auth) is rendered, else empty. */}}
{{- define "integrateio-exporter.webConfigEnabled" -}}
{{- if or .Values.webConfig.tls.enabled (gt (len .Values.webConfig.basicAuthUsers) 0) }}true{{ end }}
{{- end }}

{{- define "integrateio-exporter.scheme" -}}
{{- if .Values.webConfig.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/*
The exporter's config.yaml. Rendered as JSON (JSON is YAML) because Helm reads numbers in values as floats and
toYaml writes large ones in scientific notation (a job id 1234567 would become 1.234567e+06); toJson does not.
*/}}
{{- define "integrateio-exporter.configFile" -}}
{{- $config := deepCopy .Values.config }}
{{- if and (eq .Values.apiKey.mountAs "file") (include "integrateio-exporter.apiKeySecretName" .) }}
{{- $_ := set $config.api "api_key_file" (printf "%s/%s" (include "integrateio-exporter.apiKeyDir" .) .Values.apiKey.secretKey) }}
{{- end }}
{{- toPrettyJson $config }}
{{- end }}
