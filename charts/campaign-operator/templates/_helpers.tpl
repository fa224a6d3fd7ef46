{{- /* The chart's name (the app.kubernetes.io/name label), nameOverride wins. */ -}}
{{- define "co.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* Every object's name: <release>-<chart> (just <release> when it already holds the chart's name),
fullnameOverride wins; 63 characters at most, so that it is a valid label value and DNS label. */ -}}
{{- define "co.fullname" -}}
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

{{- /* <fullname>-<suffix>, trimmed so the whole stays within 63 characters. */ -}}
{{- define "co.suffixed" -}}
{{- $suffix := index . 1 -}}
{{- printf "%s-%s" (include "co.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "co.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* Stable: the Deployment's selector (immutable), never anything that changes between releases. */ -}}
{{- define "co.selector" -}}
app.kubernetes.io/name: {{ include "co.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* Labels of every object: (list $ "component"). */ -}}
{{- define "co.labels" -}}
{{- $ := index . 0 -}}
{{ include "co.selector" $ }}
app.kubernetes.io/component: {{ index . 1 }}
app.kubernetes.io/part-of: campaign-operator
app.kubernetes.io/version: {{ $.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
helm.sh/chart: {{ include "co.chart" $ }}
{{- end -}}

{{- /* The operator's pods (the Service and ServiceMonitor select these, never a test pod). */ -}}
{{- define "co.operatorSelector" -}}
{{ include "co.selector" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "co.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "co.trainerImage" -}}{{ .Values.trainer.image.repository }}:{{ .Values.trainer.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "co.serviceAccount" -}}{{ include "co.fullname" . }}{{- end -}}
{{- /* The trainer's ClusterRole: the only role the operator may bind (in campaigns' namespaces). */ -}}
{{- define "co.trainerRole" -}}{{ include "co.suffixed" (list . "trainer") }}{{- end -}}
{{- /* The leader Lease, one per release (in the release's namespace). */ -}}
{{- define "co.leaseName" -}}{{ include "co.fullname" . }}{{- end -}}

{{- /* Whether an optional monitoring object is rendered: (list $ "<value path>" <enabled> "<apiVersion/Kind>").
true: rendered, and a cluster without the kind fails the release with the fix; "auto": rendered only
where the apiserver serves the kind; false: never. Prints "true" or nothing. */ -}}
{{- define "co.wanted" -}}
{{- $ := index . 0 -}}{{- $key := index . 1 -}}{{- $enabled := index . 2 -}}{{- $api := index . 3 -}}
{{- $served := $.Capabilities.APIVersions.Has $api -}}
{{- if eq (toString $enabled) "auto" -}}
{{- if $served -}}true{{- end -}}
{{- else if $enabled -}}
{{- if not $served -}}
{{- fail (printf "%s=true, but this cluster does not serve %s: install prometheus-operator's CRDs (kube-prometheus-stack brings them), or set %s=auto (rendered only where they exist) or false. With `helm template`, pass --api-versions %s." $key $api $key $api) -}}
{{- end -}}
true
{{- end -}}
{{- end -}}
