{{/* Names and labels. */}}
{{- define "docket.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "docket.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "docket.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "docket.labels" -}}
helm.sh/chart: {{ include "docket.chart" . }}
app.kubernetes.io/name: {{ include "docket.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: docket
{{- end -}}

{{/* Selector labels of one component: include "docket.selectorLabels" (list . "api") */}}
{{- define "docket.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "docket.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "docket.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "docket.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "docket.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret the chart creates for inline secret values. */}}
{{- define "docket.secretName" -}}
{{- printf "%s-secrets" (include "docket.fullname" .) -}}
{{- end -}}

{{/* Inline secret values, as Secret keys: the chart creates its Secret only when this is not empty. */}}
{{- define "docket.inlineSecrets" -}}
{{- with .Values.database.url }}
database-url: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.jwt.secret }}
jwt-secret: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.temporal.apiKey.value }}
temporal-api-key: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.qdrant.apiKey.value }}
qdrant-api-key: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.model.apiKey.value }}
openai-api-key: {{ . | b64enc | quote }}
{{- end }}
{{- end -}}

{{/*
One environment variable from a secret setting: inline value (the chart's Secret) or an existing Secret.
include "docket.secretEnv" (list $ "NAME" $inlineValue "chart-secret-key" $existingSecret $existingKey $required)
*/}}
{{- define "docket.secretEnv" -}}
{{- $ := index . 0 -}}
{{- $name := index . 1 -}}
{{- $inline := index . 2 -}}
{{- $chartKey := index . 3 -}}
{{- $existing := index . 4 -}}
{{- $existingKey := index . 5 -}}
{{- $required := index . 6 -}}
{{- if $inline }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "docket.secretName" $ }}
      key: {{ $chartKey }}
{{- else if $existing }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $existing }}
      key: {{ $existingKey }}
{{- else if $required }}
{{- fail (printf "%s is required: set its inline value or existingSecret (see values.yaml)" $name) }}
{{- end }}
{{- end -}}

{{/* Environment variables every Docket container gets besides the ConfigMap: the secret ones. */}}
{{- define "docket.secretEnvs" -}}
{{- $v := .Values -}}
{{- include "docket.secretEnv" (list . "DATABASE_URL" $v.database.url "database-url" $v.database.existingSecret $v.database.existingSecretKey true) }}
{{- include "docket.secretEnv" (list . "DOCKET_JWT_SECRET" $v.jwt.secret "jwt-secret" $v.jwt.existingSecret $v.jwt.existingSecretKey true) }}
{{- include "docket.secretEnv" (list . "TEMPORAL_API_KEY" $v.temporal.apiKey.value "temporal-api-key" $v.temporal.apiKey.existingSecret $v.temporal.apiKey.existingSecretKey false) }}
{{- include "docket.secretEnv" (list . "QDRANT_API_KEY" $v.qdrant.apiKey.value "qdrant-api-key" $v.qdrant.apiKey.existingSecret $v.qdrant.apiKey.existingSecretKey false) }}
{{- include "docket.secretEnv" (list . "OPENAI_API_KEY" $v.model.apiKey.value "openai-api-key" $v.model.apiKey.existingSecret $v.model.apiKey.existingSecretKey false) }}
{{- end -}}

{{/* Where the Temporal TLS files are mounted. */}}
{{- define "docket.temporalClientCertDir" -}}/etc/docket/temporal-tls{{- end -}}
{{- define "docket.temporalServerCADir" -}}/etc/docket/temporal-ca{{- end -}}

{{/* Volumes of every Docket pod: writable /data and /tmp (the root filesystem is read-only), Temporal TLS files. */}}
{{- define "docket.volumes" -}}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- with .Values.temporal.tls.clientCert.existingSecret }}
- name: temporal-client-cert
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ $.Values.temporal.tls.clientCert.certKey }}
        path: tls.crt
      - key: {{ $.Values.temporal.tls.clientCert.keyKey }}
        path: tls.key
{{- end }}
{{- with .Values.temporal.tls.serverCA.existingSecret }}
- name: temporal-server-ca
  secret:
    secretName: {{ . }}
    defaultMode: 0444
    items:
      - key: {{ $.Values.temporal.tls.serverCA.key }}
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "docket.volumeMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- if .Values.temporal.tls.clientCert.existingSecret }}
- name: temporal-client-cert
  mountPath: {{ include "docket.temporalClientCertDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.temporal.tls.serverCA.existingSecret }}
- name: temporal-server-ca
  mountPath: {{ include "docket.temporalServerCADir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod annotations that restart pods when their configuration changes. */}}
{{- define "docket.configChecksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include "docket.inlineSecrets" . | sha256sum }}
{{- end -}}
