{{/* Name of the chart, or nameOverride. */}}
{{- define "tower-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name: the release name when it already contains the chart name. */}}
{{- define "tower-proxy.fullname" -}}
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
Objects outside the release namespace (the ClusterRole and ClusterRoleBinding, the admission policy
and its binding, the Events Role and RoleBinding in "default") start with the release namespace, as
in charts/pod-gateway: two releases of the same name in two namespaces never share one.
*/}}
{{- define "tower-proxy.globalName" -}}
{{- printf "%s-%s" .Release.Namespace (include "tower-proxy.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "tower-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tower-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tower-proxy.labels" -}}
{{ include "tower-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: proxy
app.kubernetes.io/part-of: knet
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* --service-selector: the mc-<cluster> Services select exactly this release's proxy pods. */}}
{{- define "tower-proxy.serviceSelector" -}}
app.kubernetes.io/name={{ include "tower-proxy.name" . }},app.kubernetes.io/instance={{ .Release.Name }}
{{- end }}

{{- define "tower-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tower-proxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" or "false": leader election on (leaderElect auto = replicas > 1). Fails on replicas > 1 without it. */}}
{{- define "tower-proxy.leaderElect" -}}
{{- $le := .Values.leaderElect }}
{{- if eq (toString $le) "auto" }}
{{- $le = gt (int .Values.replicas) 1 }}
{{- end }}
{{- if and (not $le) (gt (int .Values.replicas) 1) }}
{{- fail (printf "replicas=%d needs leaderElect=true (or auto): several proxies without a Lease would all write to the Clusters" (int .Values.replicas)) }}
{{- end }}
{{- ternary "true" "false" $le }}
{{- end }}

{{- define "tower-proxy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Checks that the schema cannot express. */}}
{{- define "tower-proxy.validate" -}}
{{- if ge (int .Values.portRange.min) (int .Values.portRange.max) }}
{{- fail (printf "portRange.min (%d) must be less than portRange.max (%d)" (int .Values.portRange.min) (int .Values.portRange.max)) }}
{{- end }}
{{- $ks := add (int .Values.portRange.min) 10000 }}
{{- if and (ge (int .Values.port) (int .Values.portRange.min)) (le (int .Values.port) (add (int .Values.portRange.max) 10000)) }}
{{- if or (le (int .Values.port) (int .Values.portRange.max)) (ge (int .Values.port) $ks) }}
{{- fail (printf "port %d falls inside portRange %d-%d or its ks-apiserver ports (+10000)" (int .Values.port) (int .Values.portRange.min) (int .Values.portRange.max)) }}
{{- end }}
{{- end }}
{{- $mp := int .Values.metricsPort }}
{{- if and $mp (eq $mp (int .Values.port)) }}
{{- fail (printf "metricsPort %d is the agent port too: choose another, or 0 to serve /metrics on port" $mp) }}
{{- end }}
{{- if and $mp (ge $mp (int .Values.portRange.min)) (le $mp (add (int .Values.portRange.max) 10000)) }}
{{- if or (le $mp (int .Values.portRange.max)) (ge $mp $ks) }}
{{- fail (printf "metricsPort %d falls inside portRange %d-%d or its ks-apiserver ports (+10000)" $mp (int .Values.portRange.min) (int .Values.portRange.max)) }}
{{- end }}
{{- end }}
{{- /* The heap cap must leave room below the memory limit for what lives outside the heap. */}}
{{- $heap := regexFind "[0-9]+$" (regexFind "--max-old-space-size=[0-9]+" (.Values.nodeOptions | default "")) }}
{{- $limit := toString (dig "limits" "memory" "" (.Values.resources | default dict)) }}
{{- $limitMi := 0 }}
{{- if regexMatch "^[0-9]+Mi$" $limit }}
{{- $limitMi = trimSuffix "Mi" $limit | int }}
{{- else if regexMatch "^[0-9]+Gi$" $limit }}
{{- $limitMi = mul (trimSuffix "Gi" $limit | int) 1024 }}
{{- end }}
{{- if and $heap $limitMi (gt (add (int $heap) 256) $limitMi) }}
{{- fail (printf "nodeOptions --max-old-space-size=%s (MiB) needs resources.limits.memory of at least %dMi (the heap cap + 256 MiB outside the heap), not %s: raise the limit or lower the cap" $heap (add (int $heap) 256) $limit) }}
{{- end }}
{{- end }}

{{/* shutdownTimeout in whole seconds plus 5 s, for terminationGracePeriodSeconds. */}}
{{- define "tower-proxy.gracePeriod" -}}
{{- $d := .Values.shutdownTimeout }}
{{- $s := 0.0 }}
{{- range $m := regexFindAll "[0-9.]+(ms|s|m|h)" $d -1 }}
{{- $n := float64 (regexFind "^[0-9.]+" $m) }}
{{- $u := regexFind "(ms|s|m|h)$" $m }}
{{- $f := get (dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0) $u }}
{{- $s = addf $s (mulf $n $f) }}
{{- end }}
{{- add (ceil $s | int) 5 }}
{{- end }}
