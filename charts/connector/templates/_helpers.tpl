{{/* Name of the chart, or nameOverride. */}}
{{- define "connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Release-scoped name: the release name when it already contains the chart name. At most 49
characters: the CronJob <fullname>-gc may have 52 (its Jobs get 11 more), the StatefulSet's pods
carry a controller-revision-hash label of <fullname>-<10 characters> (at most 63).
*/}}
{{- define "connector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 49 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 49 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 49 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The ConfigMap of claims (which ordinal holds which connector), written by connector-init. */}}
{{- define "connector.claimsName" -}}
{{- printf "%s-connectors" (include "connector.fullname" .) }}
{{- end }}

{{/*
The pods of the StatefulSet. The component tells them from the gc and uninstall pods, which must not
count in the PodDisruptionBudget nor in the anti-affinity.
*/}}
{{- define "connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: connector
{{- end }}

{{/* Labels of every object but the component; commonLabels last. */}}
{{- define "connector.baseLabels" -}}
app.kubernetes.io/name: {{ include "connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: knet
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "connector.chart" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "connector.labels" -}}
{{ include "connector.baseLabels" . }}
app.kubernetes.io/component: connector
{{- end }}

{{- define "connector.gcLabels" -}}
{{ include "connector.baseLabels" . }}
app.kubernetes.io/component: gc
{{- end }}

{{- define "connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "connector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret that holds the API key, and its key. */}}
{{- define "connector.apiKeySecret" -}}
{{- default (printf "%s-api-key" (include "connector.fullname" .)) .Values.twingate.existingSecret }}
{{- end }}

{{- define "connector.apiKeySecretKey" -}}
{{- ternary .Values.twingate.existingSecretKey "TWINGATE_API_KEY" (ne .Values.twingate.existingSecret "") }}
{{- end }}

{{/* The tenant's host: twingate.account without https:// and a trailing slash. */}}
{{- define "connector.account" -}}
{{- regexReplaceAll "^https://" .Values.twingate.account "" | trimSuffix "/" }}
{{- end }}

{{- define "connector.initImage" -}}
{{- printf "%s:%s" .Values.init.image.repository (default .Chart.AppVersion .Values.init.image.tag) }}
{{- end }}

{{- define "connector.connectorImage" -}}
{{- printf "%s:%s" .Values.connector.image.repository (toString .Values.connector.image.tag) }}
{{- end }}

{{/* Where connector-init hands the tokens over (the memory emptyDir), as the app expects it. */}}
{{- define "connector.handoffDir" -}}
/run/knet/connector
{{- end }}

{{/* TWINGATE_LOG_LEVEL of connector.logLevel, as in the seed and vendor charts. */}}
{{- define "connector.twingateLogLevel" -}}
{{- get (dict "error" "3" "warning" "4" "info" "6" "debug" "7") .Values.connector.logLevel }}
{{- end }}

{{/* The checks that the schema cannot express, each one line that says what to do. */}}
{{- define "connector.validate" -}}
{{- if and .Values.twingate.apiKey .Values.twingate.existingSecret }}
{{- fail "give twingate.apiKey or twingate.existingSecret, not both" }}
{{- end }}
{{- if not (or .Values.twingate.apiKey .Values.twingate.existingSecret) }}
{{- fail "twingate.apiKey or twingate.existingSecret is required: a Twingate API key with Read, Write & Provision permissions (--set twingate.apiKey=<key>), or the name of a Secret that holds it under twingate.existingSecretKey" }}
{{- end }}
{{- if and .Values.connector.metrics.enabled (eq (int .Values.connector.metrics.port) (int .Values.init.metricsPort)) }}
{{- fail (printf "connector.metrics.port and init.metricsPort are both %d: the two containers share the pod's network, give them two ports" (int .Values.init.metricsPort)) }}
{{- end }}
{{- end }}

{{/*
The projected ServiceAccount token, what the kubelet would automount (token, CA, namespace), as a
volume: only the containers that mount it (connector-init, gc) can call the API server.
*/}}
{{- define "connector.apiAccessVolume" -}}
- name: kube-api-access
  projected:
    sources:
      - serviceAccountToken: { path: token, expirationSeconds: 3607 }
      - configMap:
          name: kube-root-ca.crt
          items: [{ key: ca.crt, path: ca.crt }]
      - downwardAPI:
          items:
            - path: namespace
              fieldRef: { apiVersion: v1, fieldPath: metadata.namespace }
{{- end }}

{{- define "connector.apiAccessMount" -}}
- { name: kube-api-access, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true }
{{- end }}

{{/* Environment of every connector-init command (provision, gc, status). */}}
{{- define "connector.initEnv" -}}
# Never a flag: flags show in the pod spec and in ps.
- name: TWINGATE_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "connector.apiKeySecret" . }}
      key: {{ include "connector.apiKeySecretKey" . }}
- { name: TWINGATE_ACCOUNT, value: {{ include "connector.account" . | quote }} }
- { name: TWINGATE_NETWORK, value: {{ .Values.twingate.networkName | quote }} }
# The app names the ConfigMap <release>-connectors and the connectors <namePrefix or release>-<ordinal>.
- { name: CONNECTOR_RELEASE, value: {{ include "connector.fullname" . | quote }} }
- name: POD_NAMESPACE
  valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
- { name: CONNECTOR_INIT_LOG_LEVEL, value: {{ .Values.init.logLevel | quote }} }
{{- end }}

{{/* The pod spec fields that every pod of the chart shares. */}}
{{- define "connector.podCommon" -}}
serviceAccountName: {{ include "connector.serviceAccountName" . }}
# The token is a projected volume (kube-api-access), mounted only into the container that calls the API.
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podDnsPolicy }}
dnsPolicy: {{ . }}
{{- end }}
{{- with .Values.podDnsConfig }}
dnsConfig: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A gc pod template (the CronJob's and the uninstall hook's): connector-init gc with `replicas` (a
string) as CONNECTOR_REPLICAS. Called with (dict "root" . "replicas" "2").
*/}}
{{- define "connector.gcPod" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "connector.gcLabels" $root | nindent 4 }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $root.Values.podAnnotations }}
  annotations: {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- include "connector.podCommon" $root | nindent 2 }}
  restartPolicy: Never
  securityContext: {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: gc
      image: {{ include "connector.initImage" $root | quote }}
      imagePullPolicy: {{ $root.Values.init.image.pullPolicy }}
      args: [gc]
      env:
        {{- include "connector.initEnv" $root | nindent 8 }}
        - { name: CONNECTOR_REPLICAS, value: {{ .replicas | quote }} }
        - { name: CONNECTOR_DELETE_ADOPTED, value: {{ $root.Values.gc.deleteAdopted | toString | quote }} }
        {{- with $root.Values.init.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      securityContext: {{- toYaml $root.Values.securityContext | nindent 8 }}
      resources: {{- toYaml $root.Values.gc.resources | nindent 8 }}
      volumeMounts:
        {{- include "connector.apiAccessMount" $root | nindent 8 }}
  volumes:
    {{- include "connector.apiAccessVolume" $root | nindent 4 }}
{{- end }}
