{{/* Name of the chart, or nameOverride. */}}
{{- define "capi-packet-manager.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name: the release name when it already contains the chart name. */}}
{{- define "capi-packet-manager.fullname" -}}
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
Cluster-scoped objects (ClusterRoles, ClusterRoleBindings) start with the release namespace, as in
the other charts: two releases of the same name in two namespaces never share one.
*/}}
{{- define "capi-packet-manager.globalName" -}}
{{- printf "%s-%s" .Release.Namespace (include "capi-packet-manager.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "capi-packet-manager.selectorLabels" -}}
app.kubernetes.io/name: {{ include "capi-packet-manager.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "capi-packet-manager.labels" -}}
{{ include "capi-packet-manager.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller-manager
app.kubernetes.io/part-of: knet
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "capi-packet-manager.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "capi-packet-manager.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: a ServiceAccount with the permissions of templates/rbac.yaml" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret that holds the Metal API token, and its key. */}}
{{- define "capi-packet-manager.credentialsSecret" -}}
{{- default (printf "%s-credentials" (include "capi-packet-manager.fullname" .)) .Values.credentials.existingSecret }}
{{- end }}
{{- define "capi-packet-manager.credentialsKey" -}}
{{- ternary .Values.credentials.existingSecretKey "PACKET_API_KEY" (ne .Values.credentials.existingSecret "") }}
{{- end }}

{{- define "capi-packet-manager.leaseName" -}}
{{- default (include "capi-packet-manager.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "capi-packet-manager.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The manager's flags the chart owns, from the values (extraArgs come after them). The token is not
one: it is the env PACKET_API_KEY from the Secret.
*/}}
{{- define "capi-packet-manager.args" -}}
- --metrics-port={{ .Values.metricsPort }}
- --log-level={{ .Values.logLevel }}
- --sync-period={{ .Values.syncPeriod }}
- --device-poll-interval={{ .Values.devicePollInterval }}
- --packetcluster-concurrency={{ .Values.concurrency.packetClusters }}
- --packetmachine-concurrency={{ .Values.concurrency.packetMachines }}
- --leader-elect={{ .Values.leaderElection.enabled }}
{{- if .Values.leaderElection.enabled }}
- --lease-name={{ include "capi-packet-manager.leaseName" . }}
{{- end }}
{{- with .Values.watchNamespace }}
- --namespace={{ . }}
{{- end }}
{{- with .Values.watchFilter }}
- --watch-filter={{ . }}
{{- end }}
{{- end }}

{{/* The checks the schema cannot express, each one line that says what to do. */}}
{{- define "capi-packet-manager.validate" -}}
{{- $c := .Values.credentials }}
{{- if and $c.apiKey $c.existingSecret }}
{{- fail "give credentials.apiKey or credentials.existingSecret, not both: both would be the manager's PACKET_API_KEY" }}
{{- end }}
{{- if not (or $c.apiKey $c.existingSecret) }}
{{- fail "credentials.apiKey or credentials.existingSecret is required: the Equinix Metal API token (--set credentials.existingSecret=<Secret with key PACKET_API_KEY> keeps it out of helm's values)" }}
{{- end }}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicas) 1) }}
{{- fail (printf "replicas is %d but leaderElection.enabled is false: every replica would reconcile and create devices; enable leader election or set replicas to 1" (int .Values.replicas)) }}
{{- end }}
{{- range $arg := .Values.extraArgs }}
{{- if regexMatch "^--api-key([= ]|$)" $arg }}
{{- fail "extraArgs: --api-key would put the Metal API token into the pod spec; use credentials.apiKey or credentials.existingSecret" }}
{{- end }}
{{- $flag := regexReplaceAll "=.*$" $arg "" }}
{{- $owned := dict "--metrics-port" "metricsPort" "--log-level" "logLevel" "--sync-period" "syncPeriod" "--device-poll-interval" "devicePollInterval" "--packetcluster-concurrency" "concurrency.packetClusters" "--packetmachine-concurrency" "concurrency.packetMachines" "--leader-elect" "leaderElection.enabled" "--lease-name" "leaderElection.leaseName" "--namespace" "watchNamespace" "--watch-filter" "watchFilter" "--api-url" "metalApiUrl" }}
{{- if hasKey $owned $flag }}
{{- fail (printf "extraArgs: %s: the chart sets %s from %s; set that value instead" $arg $flag (get $owned $flag)) }}
{{- end }}
{{- end }}
{{- end }}
