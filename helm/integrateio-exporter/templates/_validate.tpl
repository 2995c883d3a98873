{{/*
Checks that stop `helm install` with one clear line instead of rendering a release that crash-loops or cannot be
scraped. Included by the workloads (deployment.yaml and statefulset.yaml, one of which always renders).
*/}}
{{- define "integrateio-exporter.validate" -}}
{{- $v := .Values }}
{{- $chartKey := include "integrateio-exporter.apiKeySecretName" . }}
{{- /* environment variables the pod will have: a key named by api_key_env must be one of them */}}
{{- $envNames := list }}
{{- if and $chartKey (eq $v.apiKey.mountAs "env") }}{{ $envNames = append $envNames "INTEGRATEIO_API_KEY" }}{{ end }}
{{- range concat $v.extraSecretEnv $v.extraEnv }}{{ $envNames = append $envNames .name }}{{ end }}
{{- $accounts := list }}
{{- if $v.config.accounts }}
{{- range $i, $account := $v.config.accounts }}
{{- $accounts = append $accounts (dict "key" (printf "config.accounts[%d].api" $i) "api" (default (dict) $account.api)) }}
{{- end }}
{{- else }}
{{- $accounts = list (dict "key" "config.api" "api" (default (dict) $v.config.api)) }}
{{- end }}
{{- range $accounts }}
{{- if not .api.account_id }}
{{- fail (printf "%s.account_id is empty: the exporter refuses to start without the Integrate.io account id; set it, e.g. --set %s.account_id=my-account" .key .key) }}
{{- end }}
{{- if .api.api_key_env }}
{{- if not (has .api.api_key_env $envNames) }}
{{- fail (printf "%s.api_key_env: %s is set by neither extraSecretEnv nor extraEnv: add it, e.g. extraSecretEnv: [{name: %s, secretName: my-secret, key: api-key}]" .key .api.api_key_env .api.api_key_env) }}
{{- end }}
{{- else if and (not .api.api_key_file) (not $chartKey) (not (has "INTEGRATEIO_API_KEY" $envNames)) }}
{{- fail (printf "no API key for %s: set apiKey.existingSecret (a Secret with the key under %q) or apiKey.value (e.g. --set-file apiKey.value=key.txt)" .key $v.apiKey.secretKey) }}
{{- end }}
{{- end }}

{{- if and $v.webConfig.tls.enabled (not $v.webConfig.tls.existingSecret) }}
{{- fail "webConfig.tls.enabled needs webConfig.tls.existingSecret: a kubernetes.io/tls Secret with tls.crt and tls.key" }}
{{- end }}
{{- if and $v.serviceMonitor.enabled $v.webConfig.tls.enabled }}
{{- $tls := $v.serviceMonitor.tlsConfig }}
{{- if not (or $tls.ca $tls.caFile $tls.insecureSkipVerify) }}
{{- fail "serviceMonitor.tlsConfig has no CA: the scrape is HTTPS (webConfig.tls.enabled) and Prometheus could not verify the exporter's certificate; set serviceMonitor.tlsConfig.ca, e.g. {secret: {name: exporter-tls, key: ca.crt}} (or insecureSkipVerify: true, knowingly)" }}
{{- end }}
{{- end }}

{{- /* probes: exactly one handler each, and one the kubelet can actually pass */}}
{{- $mutualTls := and $v.webConfig.tls.enabled (has (dig "client_auth_type" "" $v.webConfig.tls.extraConfig) (list "RequireAndVerifyClientCert" "RequireAnyClientCert")) }}
{{- range $name := list "liveness" "readiness" }}
{{- $probe := get $v.probes $name }}
{{- $handlers := list }}
{{- range $handler := list "httpGet" "tcpSocket" "exec" "grpc" }}
{{- if get $probe $handler }}{{ $handlers = append $handlers $handler }}{{ end }}
{{- end }}
{{- if ne (len $handlers) 1 }}
{{- fail (printf "probes.%s: set exactly one of httpGet, tcpSocket, exec, grpc (found %s); to switch to tcpSocket, also set probes.%s.httpGet: null" $name (default "none" (join ", " $handlers)) $name) }}
{{- end }}
{{- with $probe.httpGet }}
{{- if $mutualTls }}
{{- fail (printf "probes.%s.httpGet: the exporter requires client certificates (webConfig.tls.extraConfig.client_auth_type) and the kubelet has none; use tcpSocket: {port: http-metrics}" $name) }}
{{- end }}
{{- $authorized := false }}
{{- range .httpHeaders }}{{ if eq (lower .name) "authorization" }}{{ $authorized = true }}{{ end }}{{ end }}
{{- if and $v.webConfig.basicAuthUsers (not $authorized) (not (has .path $v.webConfig.basicAuthExcludedPaths)) }}
{{- fail (printf "probes.%s.httpGet: %s asks for basic auth (webConfig.basicAuthUsers): list it in webConfig.basicAuthExcludedPaths, or give httpGet.httpHeaders an Authorization header" $name .path) }}
{{- end }}
{{- end }}
{{- end }}

{{- /* a PodDisruptionBudget that no drain can satisfy */}}
{{- $pdb := $v.podDisruptionBudget }}
{{- if $pdb.enabled }}
{{- $replicas := int (include "integrateio-exporter.replicas" .) }}
{{- if and (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- if not (kindIs "invalid" $pdb.maxUnavailable) }}
{{- if eq (trimSuffix "%" (toString $pdb.maxUnavailable)) "0" }}
{{- fail "podDisruptionBudget.maxUnavailable: 0 would block every node drain; use 1" }}
{{- end }}
{{- else if and (not (kindIs "invalid" $pdb.minAvailable)) (ge $replicas 2) }}
{{- $min := toString $pdb.minAvailable }}
{{- $blocks := false }}
{{- if hasSuffix "%" $min }}
{{- $blocks = gt (mul $replicas (atoi (trimSuffix "%" $min))) (mul (sub $replicas 1) 100) }}
{{- else }}
{{- $blocks = ge (atoi $min) $replicas }}
{{- end }}
{{- if $blocks }}
{{- fail (printf "podDisruptionBudget.minAvailable: %s of %d pods would block every node drain; use maxUnavailable: 1" $min $replicas) }}
{{- end }}
{{- end }}
{{- end }}

{{- /* persistence: one state file per pod */}}
{{- if $v.persistence.enabled }}
{{- if and $v.sharding.enabled $v.persistence.existingClaim }}
{{- fail "persistence.existingClaim cannot serve a sharded StatefulSet: every pod needs its own volume (the chart makes one per pod); unset it" }}
{{- end }}
{{- if and (not $v.sharding.enabled) (gt (int $v.replicaCount) 1) }}
{{- fail "persistence with replicaCount > 1: the replicas would share one state file; keep replicaCount: 1, or shard (sharding.enabled) for one volume per pod" }}
{{- end }}
{{- end }}

{{- /* web hooks: a Secret to read the password from, a host for the Ingress, one pod that sees every job */}}
{{- if $v.webhook.enabled }}
{{- if not (include "integrateio-exporter.webhookSecretName" .) }}
{{- fail "webhook.enabled needs webhook.password (e.g. --set-file webhook.password=hook-password.txt) or webhook.existingSecret (a Secret with the key password)" }}
{{- end }}
{{- if $v.config.accounts }}
{{- fail "webhook.enabled renders one account's webhook: section; with config.accounts write webhook: in each account (its own path) and mount its secrets with extraVolumes" }}
{{- end }}
{{- if $v.sharding.enabled }}
{{- fail "webhook.enabled with sharding.enabled: a hook reaches one pod, which may not own the job it names; use one exporter pod for hooks" }}
{{- end }}
{{- if and $v.webhook.ingress.enabled (not $v.webhook.ingress.host) }}
{{- fail "webhook.ingress.enabled needs webhook.ingress.host: the public name Integrate.io calls" }}
{{- end }}
{{- if and $v.webhook.ingress.enabled (not $v.webhook.ingress.tlsSecret) }}
{{- fail "webhook.ingress.enabled needs webhook.ingress.tlsSecret: hooks carry their password, so they travel over HTTPS only" }}
{{- end }}
{{- end }}
{{- end }}
