{{/* Name of the chart, or nameOverride. */}}
{{- define "tower-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name: the release name when it already contains the chart name. */}}
{{- define "tower-agent.fullname" -}}
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

{{/*
The ClusterRoleBinding (cluster-scoped) starts with the release namespace, as in charts/pod-gateway:
two releases of the same name in two namespaces never share one.
*/}}
{{- define "tower-agent.globalName" -}}
{{- printf "%s-%s" .Release.Namespace (include "tower-agent.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "tower-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tower-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tower-agent.labels" -}}
{{ include "tower-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: knet
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "tower-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tower-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret that holds the token, and its key. */}}
{{- define "tower-agent.tokenSecret" -}}
{{- default (printf "%s-token" (include "tower-agent.fullname" .)) .Values.existingSecret }}
{{- end }}

{{- define "tower-agent.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The required values, each with a message that says where to find it. */}}
{{- define "tower-agent.validate" -}}
{{- $_ := required "name is required: the name of this cluster's Cluster object on the host cluster (--set name=<cluster>)" .Values.name }}
{{- $_ = required "proxyServer is required: tower-proxy's address, e.g. --set proxyServer=http://<tower Service address>:8080" .Values.proxyServer }}
{{- $_ = required "fingerprint is required: the proxy's SSH host key fingerprint; on the host cluster: kubectl -n kubesphere-system get configmap tower-proxy -o jsonpath={.data.fingerprint}" .Values.fingerprint }}
{{- if and .Values.token .Values.existingSecret }}
{{- fail "give token or existingSecret, not both" }}
{{- end }}
{{- $_ = required "token (or existingSecret) is required: the Cluster's spec.connection.token on the host cluster" (or .Values.token .Values.existingSecret) }}
{{- end }}

{{/* A Go-style duration in whole seconds plus 5 s, for terminationGracePeriodSeconds. */}}
{{- define "tower-agent.gracePeriod" -}}
{{- $s := 0.0 }}
{{- range $m := regexFindAll "[0-9.]+(ms|s|m|h)" .Values.shutdownTimeout -1 }}
{{- $n := float64 (regexFind "^[0-9.]+" $m) }}
{{- $f := get (dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0) (regexFind "(ms|s|m|h)$" $m) }}
{{- $s = addf $s (mulf $n $f) }}
{{- end }}
{{- add (ceil $s | int) 5 }}
{{- end }}
