{{- define "co.name" -}}campaign-operator{{- end -}}
{{- define "co.labels" -}}
app.kubernetes.io/name: {{ include "co.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "co.selector" -}}
app.kubernetes.io/name: {{ include "co.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "co.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- /* The trainer's ClusterRole: the only role the operator may bind (in campaigns' namespaces). */ -}}
{{- define "co.trainerRole" -}}{{ .Release.Name }}-trainer{{- end -}}
{{- /* The leader Lease, one per release (in the release's namespace). */ -}}
{{- define "co.leaseName" -}}{{ .Release.Name }}-{{ include "co.name" . }}{{- end -}}
