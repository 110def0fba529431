{{- define "signaling.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "signaling.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "signaling.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "signaling.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "signaling.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Pod-level hardening shared by every pod. */}}
{{- define "signaling.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level hardening shared by every container. */}}
{{- define "signaling.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Refuses values that would deploy something broken. */}}
{{- define "signaling.checks" -}}
{{- $s := .Values.signaling -}}
{{- if not $s.existingSecret -}}
{{- if contains "change-me" $s.config -}}
{{- fail "signaling.config still has change-me placeholders: set real secrets (hashkey, blockkey, internalsecret, the backend's secret), or use signaling.existingSecret" -}}
{{- end -}}
{{- $many := or (gt (int $s.replicas) 1) $s.autoscaling.enabled -}}
{{- if and $many (or (contains "nats://loopback" $s.config) (not (contains "[nats]" $s.config))) -}}
{{- fail "more than one signaling replica needs [nats] url pointing at a NATS server (and [grpc] for resumes across pods): see docs/cluster.md" -}}
{{- end -}}
{{- end -}}
{{- if .Values.proxy.enabled -}}
{{- if not .Values.proxy.janus.image -}}
{{- fail "proxy.enabled needs proxy.janus.image" -}}
{{- end -}}
{{- if and (not .Values.proxy.existingSecret) (contains "change-me" .Values.proxy.config) -}}
{{- fail "proxy.config still has change-me placeholders" -}}
{{- end -}}
{{- if not (has .Values.proxy.kind (list "Deployment" "DaemonSet")) -}}
{{- fail "proxy.kind is Deployment or DaemonSet" -}}
{{- end -}}
{{- end -}}
{{- end -}}
