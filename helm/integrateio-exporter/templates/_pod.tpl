{{/*
The exporter's pod template, shared by the Deployment and (sharding.enabled) the StatefulSet. Called with the
root context; rendered at indentation 0 (the callers nindent it).
*/}}
{{- define "integrateio-exporter.podTemplate" -}}
{{- $apiKeySecret := include "integrateio-exporter.apiKeySecretName" . }}
{{- $web := include "integrateio-exporter.webConfigEnabled" . -}}
metadata:
  annotations:
    # A change of the configuration or of a Secret the chart renders rolls the pods.
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "integrateio-exporter.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "integrateio-exporter.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: exporter
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --config=/etc/integrateio-exporter/config.yaml
        - --web.listen-address=:9863
        - --log.level={{ .Values.logLevel }}
        {{- if $web }}
        - --web.config.file={{ include "integrateio-exporter.webConfigDir" . }}/web-config.yml
        {{- end }}
        {{- if .Values.sharding.enabled }}
        # the shard index is the pod's ordinal, the trailing -N of its hostname
        - --shard=auto/{{ .Values.sharding.replicas }}
        {{- end }}
        {{- with .Values.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if or (and $apiKeySecret (eq .Values.apiKey.mountAs "env")) .Values.extraSecretEnv .Values.extraEnv }}
      env:
        {{- if and $apiKeySecret (eq .Values.apiKey.mountAs "env") }}
        - name: INTEGRATEIO_API_KEY
          valueFrom:
            secretKeyRef:
              name: {{ $apiKeySecret }}
              key: {{ .Values.apiKey.secretKey }}
        {{- end }}
        {{- range .Values.extraSecretEnv }}
        - name: {{ .name }}
          valueFrom:
            secretKeyRef:
              name: {{ .secretName }}
              key: {{ .key }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        - name: http-metrics
          containerPort: 9863
          protocol: TCP
      {{- /* the probes of values.yaml, verbatim; an httpGet without a scheme gets the server's (HTTPS with TLS) */}}
      {{- range $name := list "liveness" "readiness" }}
      {{- $probe := deepCopy (get $.Values.probes $name) }}
      {{- range $handler := list "httpGet" "tcpSocket" "exec" "grpc" }}
      {{- if not (get $probe $handler) }}{{ $_ := unset $probe $handler }}{{ end }}
      {{- end }}
      {{- if and $probe.httpGet (not $probe.httpGet.scheme) }}
      {{- $_ := set $probe.httpGet "scheme" (include "integrateio-exporter.scheme" $) }}
      {{- end }}
      {{ $name }}Probe:
        {{- toYaml $probe | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/integrateio-exporter
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if and $apiKeySecret (eq .Values.apiKey.mountAs "file") }}
        - name: api-key
          mountPath: {{ include "integrateio-exporter.apiKeyDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.persistence.enabled }}
        # the state file (config.state_file), the one writable path besides /tmp
        - name: state
          mountPath: {{ .Values.persistence.mountPath }}
        {{- end }}
        {{- if $web }}
        - name: web-config
          mountPath: {{ include "integrateio-exporter.webConfigDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.webConfig.tls.enabled }}
        - name: tls
          mountPath: {{ include "integrateio-exporter.tlsDir" . }}
          readOnly: true
        {{- end }}
        {{- if include "integrateio-exporter.webhookSecretName" . }}
        - name: webhook
          mountPath: {{ include "integrateio-exporter.webhookDir" . }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "integrateio-exporter.fullname" . }}
    - name: tmp
      emptyDir:
        sizeLimit: 16Mi
    {{- if and $apiKeySecret (eq .Values.apiKey.mountAs "file") }}
    - name: api-key
      secret:
        secretName: {{ $apiKeySecret }}
        defaultMode: 0440
        items:
          - key: {{ .Values.apiKey.secretKey }}
            path: {{ .Values.apiKey.secretKey }}
    {{- end }}
    {{- if and .Values.persistence.enabled (not .Values.sharding.enabled) }}
    - name: state
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.existingClaim | default (printf "%s-state" (include "integrateio-exporter.fullname" .)) }}
    {{- end }}
    {{- if $web }}
    - name: web-config
      secret:
        secretName: {{ include "integrateio-exporter.fullname" . }}-web-config
        defaultMode: 0440
    {{- end }}
    {{- if .Values.webConfig.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ .Values.webConfig.tls.existingSecret }}
        defaultMode: 0440
        items:
          - key: tls.crt
            path: tls.crt
          - key: tls.key
            path: tls.key
    {{- end }}
    {{- with include "integrateio-exporter.webhookSecretName" . }}
    - name: webhook
      secret:
        secretName: {{ . }}
        defaultMode: 0440
        items:
          - key: password
            path: password
          {{- with include "integrateio-exporter.webhookSaltKey" $ }}
          - key: {{ . }}
            path: salt
          {{- end }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
