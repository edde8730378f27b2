{{/*
Name of every object of the release: the release name, or
"<release>-mas-reset-operator" when the release name does not contain the
chart name.
*/}}
{{- define "mas-reset-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator pods. */}}
{{- define "mas-reset-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of every object. */}}
{{- define "mas-reset-operator.labels" -}}
{{ include "mas-reset-operator.selectorLabels" . }}
app.kubernetes.io/part-of: mas-reset-operator
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Rules the operator needs in each watched namespace; see docs/rbac.md. */}}
{{- define "mas-reset-operator.rules" -}}
- apiGroups: ["masreset.dev"]
  resources: ["bulkpasswordresets"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["masreset.dev"]
  resources: ["bulkpasswordresets/status"]
  verbs: ["get", "patch"]
- apiGroups: ["masreset.dev"]
  resources: ["bulkpasswordresets/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "create", "patch", "delete", "deletecollection"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
