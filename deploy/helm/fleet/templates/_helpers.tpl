{{/* The chart's name, for label values. */}}
{{- define "fleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; objects are named "<fullname>-<component>". */}}
{{- define "fleet.fullname" -}}
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

{{- define "fleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of one component's objects; call with (dict "root" $ "component" "user"). */}}
{{- define "fleet.componentName" -}}
{{- printf "%s-%s" (include "fleet.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of a component; call with (dict "root" $ "component" "user"). */}}
{{- define "fleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleet.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Every label of a component's objects; call with (dict "root" $ "component" "user"). */}}
{{- define "fleet.labels" -}}
helm.sh/chart: {{ include "fleet.chart" .root }}
{{ include "fleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: fleet
{{- end }}

{{- define "fleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fleet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "fleet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The environment of every fleet container (services and migration Jobs), inline rather than in a
ConfigMap so that the pre-install migration hooks have it too; secrets come via envFrom.
Call with the root context.
*/}}
{{- define "fleet.env" -}}
- name: FLEET_ENV
  value: prod
- name: FLEET_DATA_DIR
  value: /tmp/fleet
- name: FLEET_ADMIN_EMAIL
  value: {{ .Values.config.adminEmail | quote }}
- name: FLEET_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: FLEET_REDIS_PREFIX
  value: {{ .Values.config.redisPrefix | quote }}
- name: FLEET_JWT_PUBLIC_KEY_FILE
  value: /etc/fleet/jwt/jwt.pub
- name: OTEL_TRACES_EXPORTER
  value: {{ .Values.config.tracesExporter | quote }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.config.otlpEndpoint | quote }}
{{- range $name, $svc := .Values.services }}
{{- if $svc.enabled }}
- name: FLEET_{{ upper $name }}_URL
  value: {{ printf "http://%s:%v" (include "fleet.componentName" (dict "root" $ "component" $name)) $svc.port | quote }}
{{- end }}
{{- end }}
{{- range $key, $value := .Values.config.extraEnv }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* Pod and container security: the restricted Pod Security Standard, read-only root. */}}
{{- define "fleet.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "fleet.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end }}
