{{/* SPDX-License-Identifier: Apache-2.0 */}}
{{/*
Object names are fixed ("wio"): the operator is a cluster singleton, and its ClusterRole,
finalizer and Secret labels are cluster-wide anyway.
*/}}

{{- define "wio.selectorLabels" -}}
app.kubernetes.io/name: wio
app.kubernetes.io/component: operator
{{- end }}

{{- define "wio.labels" -}}
{{ include "wio.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: wio
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "wio.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "wio.httpPort" -}}
{{ dig "http" "port" 8443 .Values.config }}
{{- end }}

{{- define "wio.metricsPort" -}}
{{ dig "http" "metricsPort" 9090 .Values.config }}
{{- end }}
