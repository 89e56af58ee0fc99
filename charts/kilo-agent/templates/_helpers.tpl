{{/* Name of the chart, or nameOverride. */}}
{{- define "kilo-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name: the release name when it already contains the chart name. */}}
{{- define "kilo-agent.fullname" -}}
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
The ClusterRole and ClusterRoleBinding (cluster-scoped) start with the release namespace, as in
charts/tower-agent: two releases of the same name in two namespaces never share one.
*/}}
{{- define "kilo-agent.globalName" -}}
{{- printf "%s-%s" .Release.Namespace (include "kilo-agent.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "kilo-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "kilo-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kilo-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object; commonLabels last. */}}
{{- define "kilo-agent.labels" -}}
{{ include "kilo-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: knet
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "kilo-agent.chart" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* metadata.labels and, when commonAnnotations is set, metadata.annotations of an object. */}}
{{- define "kilo-agent.metadata" -}}
labels: {{- include "kilo-agent.labels" . | nindent 2 }}
{{- with .Values.commonAnnotations }}
annotations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "kilo-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kilo-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: a ServiceAccount with the permissions of templates/rbac.yaml" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
A value rendered as a template (Bitnami's common.tplvalues.render): a string as it is, anything
else as YAML. Called with (dict "value" .Values.x "context" $).
*/}}
{{- define "kilo-agent.tpl" -}}
{{- if typeIs "string" .value }}
{{- tpl .value .context }}
{{- else }}
{{- tpl (toYaml .value) .context }}
{{- end }}
{{- end }}

{{/*
An image reference (Bitnami's common.images.image): global.imageRegistry, else the image's registry,
then repository and tag (default: the chart's appVersion). Called with (dict "image" .Values.image "root" $).
*/}}
{{- define "kilo-agent.imageRef" -}}
{{- $registry := default .image.registry .root.Values.global.imageRegistry }}
{{- $tag := default .root.Chart.AppVersion (toString .image.tag) }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry .image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* imagePullSecrets of the pod: global.imagePullSecrets then image.pullSecrets, names or { name }. */}}
{{- define "kilo-agent.pullSecrets" -}}
{{- $names := list }}
{{- range (concat .Values.global.imagePullSecrets .Values.image.pullSecrets) }}
{{- if kindIs "string" . }}
{{- $names = append $names . }}
{{- else }}
{{- $names = append $names .name }}
{{- end }}
{{- end }}
{{- with ($names | uniq) }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The name of the ConfigMap mounted at /etc/kilo, or nothing. */}}
{{- define "kilo-agent.configMapName" -}}
{{- if .Values.kdaemon.existingConfigmap }}
{{- .Values.kdaemon.existingConfigmap }}
{{- else if .Values.kdaemon.configuration }}
{{- include "kilo-agent.fullname" . }}
{{- end }}
{{- end }}

{{/*
The flags the chart owns, after kdaemon.args and before kdaemon.extraFlags: --listen (the probes use
its port), the debug log level, and with wireguard-go the interface the sidecar creates.
*/}}
{{- define "kilo-agent.chartFlags" -}}
- --listen=:{{ .Values.kdaemon.listenPort }}
{{- if .Values.image.debug }}
- --log-level=debug
{{- end }}
{{- if .Values.wireguardGo.enabled }}
- --create-interface=false
- --interface={{ .Values.wireguardGo.interface }}
{{- end }}
{{- end }}

{{/* The pod's affinity: kdaemon.affinity, else the presets (Bitnami's common.affinities). */}}
{{- define "kilo-agent.affinity" -}}
{{- $k := .Values.kdaemon }}
{{- if $k.affinity }}
{{- include "kilo-agent.tpl" (dict "value" $k.affinity "context" .) }}
{{- else }}
{{- $node := $k.nodeAffinityPreset }}
{{- if $node.type }}
nodeAffinity:
  {{- if eq $node.type "soft" }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 1
      preference:
        matchExpressions:
          - key: {{ $node.key }}
            operator: In
            values: {{- toYaml $node.values | nindent 14 }}
  {{- else }}
  requiredDuringSchedulingIgnoredDuringExecution:
    nodeSelectorTerms:
      - matchExpressions:
          - key: {{ $node.key }}
            operator: In
            values: {{- toYaml $node.values | nindent 14 }}
  {{- end }}
{{- end }}
{{- range $kind, $preset := dict "podAffinity" $k.podAffinityPreset "podAntiAffinity" $k.podAntiAffinityPreset }}
{{- if $preset }}
{{ $kind }}:
  {{- if eq $preset "soft" }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 1
      podAffinityTerm:
        labelSelector:
          matchLabels: {{- include "kilo-agent.selectorLabels" $ | nindent 12 }}
        namespaces: [{{ $.Release.Namespace }}]
        topologyKey: kubernetes.io/hostname
  {{- else }}
  requiredDuringSchedulingIgnoredDuringExecution:
    - labelSelector:
        matchLabels: {{- include "kilo-agent.selectorLabels" $ | nindent 10 }}
      namespaces: [{{ $.Release.Namespace }}]
      topologyKey: kubernetes.io/hostname
  {{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The checks that the schema cannot express, each one line that says what to do. */}}
{{- define "kilo-agent.validate" -}}
{{- $k := .Values.kdaemon }}
{{- if and $k.configuration $k.existingConfigmap }}
{{- fail "give kdaemon.configuration or kdaemon.existingConfigmap, not both: both would be the ConfigMap mounted at /etc/kilo" }}
{{- end }}
{{- $node := $k.nodeAffinityPreset }}
{{- if and $node.type (or (not $node.key) (not $node.values)) }}
{{- fail (printf "kdaemon.nodeAffinityPreset.type is %s: give kdaemon.nodeAffinityPreset.key and values too (a node label and the values it may have)" $node.type) }}
{{- end }}
{{- range $flag := concat $k.args $k.extraFlags }}
{{- if regexMatch "^--listen([= ]|$)" $flag }}
{{- fail (printf "kdaemon.args/extraFlags: %s: the chart sets --listen from kdaemon.listenPort (the probes use that port); set kdaemon.listenPort instead" $flag) }}
{{- end }}
{{- if and $.Values.wireguardGo.enabled (regexMatch "^--(create-)?interface([= ]|$)" $flag) }}
{{- fail (printf "kdaemon.args/extraFlags: %s: with wireguardGo.enabled the chart sets --interface and --create-interface=false; set wireguardGo.interface instead" $flag) }}
{{- end }}
{{- end }}
{{- end }}
