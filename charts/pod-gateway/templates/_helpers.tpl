{{/* Name of the chart, or nameOverride. */}}
{{- define "pod-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name: the release name when it already contains the chart name. */}}
{{- define "pod-gateway.fullname" -}}
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
Selector labels of the gateway pod. The component keeps the gateway's Deployment, headless Service
and NetworkPolicy away from the webhook's pods (same name and instance), and the webhook's away
from the gateway's.
*/}}
{{- define "pod-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pod-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "pod-gateway.webhookSelectorLabels" -}}
app.kubernetes.io/name: {{ include "pod-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "pod-gateway.commonLabels" -}}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: knet
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Labels of the gateway's objects (and of what the chart puts into routed namespaces). */}}
{{- define "pod-gateway.labels" -}}
{{ include "pod-gateway.selectorLabels" . }}
{{ include "pod-gateway.commonLabels" . }}
{{- end }}

{{/* Labels of the webhook's objects. */}}
{{- define "pod-gateway.webhookLabels" -}}
{{ include "pod-gateway.webhookSelectorLabels" . }}
{{ include "pod-gateway.commonLabels" . }}
{{- end }}

{{/*
The webhook's names. The webhook finds its Secret and MutatingWebhookConfiguration by the flags the
Deployment gives it (--ca-secret, --webhook-configuration), so these are the only place they are made.
<fullname>-webhook stays a DNS label (Service, Deployment): the fullname is cut to 55 characters first.
*/}}
{{- define "pod-gateway.webhookName" -}}
{{- printf "%s-webhook" (include "pod-gateway.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "pod-gateway.webhookCaSecret" -}}
{{- printf "%s-ca" (include "pod-gateway.webhookName" .) }}
{{- end }}

{{/* Cluster-scoped, so the release namespace is part of it: two releases never share one. */}}
{{- define "pod-gateway.webhookConfiguration" -}}
{{- printf "%s-%s" .Release.Namespace (include "pod-gateway.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "pod-gateway.webhookClusterRole" -}}
{{- printf "%s-%s" .Release.Namespace (include "pod-gateway.webhookName" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{/* The clients' nameservers (--DNS): webhook.DNS, or the gateway's overlay address <VXLAN_IP_NETWORK>.1. */}}
{{- define "pod-gateway.dns" -}}
{{- if .Values.DNS }}
{{- regexReplaceAll "\\s+" .Values.DNS "" }}
{{- else }}
{{- printf "%s.1" (include "pod-gateway.overlayNet" .) }}
{{- end }}
{{- end }}

{{/* The first three octets of the overlay (VXLAN_IP_NETWORK). */}}
{{- define "pod-gateway.overlayNet" -}}
{{- include "pod-gateway.setting" (dict "root" . "name" "VXLAN_IP_NETWORK" "default" "172.16.0") | trimSuffix ".0/24" }}
{{- end }}

{{/* The webhook's namespaceSelector: the routed_namespaces by name (a name no namespace can have when
there are none), namespaces labelled <label>=true (minus its own and kube-system), or the custom one. */}}
{{- define "pod-gateway.webhookNamespaceSelector" -}}
{{- $sel := .Values.webhook.namespaceSelector }}
{{- if eq $sel.type "custom" }}
{{- toYaml $sel.custom }}
{{- else if eq $sel.type "label" }}
matchLabels:
  {{ $sel.label | quote }}: "true"
matchExpressions:
  # Never the webhook's own namespace (its pods could not start while it is down) nor kube-system,
  # even when labelled.
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: [{{ .Release.Namespace }}, kube-system]
{{- else }}
matchExpressions:
  # Exactly the namespaces that get the ConfigMap: a routed pod never lacks it (pod-gateway#86).
  - key: kubernetes.io/metadata.name
    operator: In
    values: {{ .Values.routed_namespaces | default (list "none.invalid") | toJson }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag}; the tag defaults to the chart's appVersion. Call with (list $ .Values.x.image). */}}
{{- define "pod-gateway.image" -}}
{{- $root := index . 0 }}
{{- $img := index . 1 }}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) }}
{{- end }}

{{/*
A setting value as settings.sh holds it: lists joined by spaces, numbers without exponent (values
files give float64: 16777215 would print as 1.6777215e+07), booleans as true/false.
*/}}
{{- define "pod-gateway.str" -}}
{{- if kindIs "slice" . }}
{{- $out := list }}
{{- range . }}
{{- $out = append $out (include "pod-gateway.str" .) }}
{{- end }}
{{- join " " $out }}
{{- else if kindIs "float64" . }}
{{- int64 . }}
{{- else if kindIs "invalid" . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* settings[name] as a string, or `default` when the key is not given. Call with (dict "root" $ "name" "X" "default" "d"). */}}
{{- define "pod-gateway.setting" -}}
{{- $s := .root.Values.settings }}
{{- if hasKey $s .name }}
{{- include "pod-gateway.str" (index $s .name) }}
{{- else }}
{{- .default }}
{{- end }}
{{- end }}

{{/* The words of a list setting (split at spaces and commas, as the apps do), as a JSON list. */}}
{{- define "pod-gateway.words" -}}
{{- $out := list }}
{{- range regexSplit "[\\s,]+" . -1 }}
{{- if . }}
{{- $out = append $out . }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* The headless Service clients resolve. */}}
{{- define "pod-gateway.serviceName" -}}
{{- include "pod-gateway.fullname" . }}
{{- end }}

{{/* GATEWAY_NAME: the setting, or the headless Service's DNS name. */}}
{{- define "pod-gateway.gatewayName" -}}
{{- $v := include "pod-gateway.setting" (dict "root" . "name" "GATEWAY_NAME" "default" "") }}
{{- if $v }}
{{- $v }}
{{- else }}
{{- printf "%s.%s.svc.%s" (include "pod-gateway.serviceName" .) .Release.Namespace .Values.clusterName }}
{{- end }}
{{- end }}

{{/* K8S_DNS_IPS: the setting, or the ClusterIP of clusterDnsService (looked up at install/upgrade), or "". */}}
{{- define "pod-gateway.k8sDnsIps" -}}
{{- $v := include "pod-gateway.setting" (dict "root" . "name" "K8S_DNS_IPS" "default" "") }}
{{- if and (not $v) .Values.clusterDnsService }}
{{- $parts := splitList "/" .Values.clusterDnsService }}
{{- $svc := lookup "v1" "Service" (index $parts 0) (index $parts 1) }}
{{- $ip := dig "spec" "clusterIP" "" ($svc | default dict) }}
{{- if and $ip (ne $ip "None") }}
{{- $v = $ip }}
{{- end }}
{{- end }}
{{- $v }}
{{- end }}

{{/* VXLAN_PORT as the apps use it: unset or 0 is 4789. */}}
{{- define "pod-gateway.vxlanPort" -}}
{{- $p := include "pod-gateway.setting" (dict "root" . "name" "VXLAN_PORT" "default" "4789") | default "0" | int }}
{{- ternary 4789 $p (eq $p 0) }}
{{- end }}

{{- define "pod-gateway.firstDynamicIp" -}}
{{- include "pod-gateway.setting" (dict "root" . "name" "VXLAN_GATEWAY_FIRST_DYNAMIC_IP" "default" "20") | int }}
{{- end }}

{{- define "pod-gateway.vpnInterface" -}}
{{- include "pod-gateway.setting" (dict "root" . "name" "VPN_INTERFACE" "default" "tun0") | trim }}
{{- end }}

{{/* "true" when the kill switch is on: a VPN interface and VPN_BLOCK_OTHER_TRAFFIC (default true, as in the apps). */}}
{{- define "pod-gateway.killSwitch" -}}
{{- $b := include "pod-gateway.setting" (dict "root" . "name" "VPN_BLOCK_OTHER_TRAFFIC" "default" "true") | lower }}
{{- and (has $b (list "true" "yes" "1" "on")) (ne (include "pod-gateway.vpnInterface" .) "") }}
{{- end }}

{{/* The VPN client's ports (VPN_TRAFFIC_PORT, default 443), as a JSON list of numbers. */}}
{{- define "pod-gateway.vpnTrafficPorts" -}}
{{- $out := list }}
{{- range include "pod-gateway.words" (include "pod-gateway.setting" (dict "root" . "name" "VPN_TRAFFIC_PORT" "default" "443")) | fromJsonArray }}
{{- $out = append $out (int .) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* VPN_LOCAL_CIDRS as NetworkPolicy ipBlock CIDRs (a bare address gets /32 or /128), as a JSON list. */}}
{{- define "pod-gateway.vpnLocalCidrs" -}}
{{- $out := list }}
{{- range include "pod-gateway.words" (include "pod-gateway.setting" (dict "root" . "name" "VPN_LOCAL_CIDRS" "default" "10.0.0.0/8 192.168.0.0/16")) | fromJsonArray }}
{{- if contains "/" . }}
{{- $out = append $out . }}
{{- else }}
{{- $out = append $out (printf "%s/%s" . (ternary "128" "32" (contains ":" .))) }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* A value inside double quotes in settings.sh: \ " $ ` escaped, as renderSettings in @knet/podgw does. */}}
{{- define "pod-gateway.shellQuote" -}}
"{{ . | replace "\\" "\\\\" | replace "\"" "\\\"" | replace "$" "\\$" | replace "`" "\\`" }}"
{{- end }}

{{/*
settings.sh: KEY="value" lines in pod-gateway's order. GATEWAY_NAME is always written (default: the
headless Service). K8S_DNS_IPS only when known: an empty line would override the K8S_DNS_ips env
var the webhook injects. Other settings when given in values (null removes one: the apps' default).
*/}}
{{- define "pod-gateway.settingsSh" -}}
# pod-gateway settings of release {{ .Release.Name }} ({{ .Chart.Name }}-{{ .Chart.Version }}).
# KEY="value" lines, read (not run) by gateway-init, gateway-sidecar, client-init and client-sidecar;
# environment variables of the same names override them.
{{- $root := . }}
{{- $s := .Values.settings }}
{{- $names := list "GATEWAY_NAME" "K8S_DNS_IPS" "NOT_ROUTED_TO_GATEWAY_CIDRS" "VXLAN_ID" "VXLAN_PORT" "VXLAN_IP_NETWORK" "VXLAN_GATEWAY_FIRST_DYNAMIC_IP" "VPN_INTERFACE" "VPN_BLOCK_OTHER_TRAFFIC" "VPN_TRAFFIC_PORT" "VPN_LOCAL_CIDRS" "VXLAN_CLIENT_CIDRS" "DNS_LOCAL_CIDRS" "DNS_LOCAL_SERVER" "SNAT_IP" "VPN_INTERFACE_MTU" "CONNECTION_RETRY_COUNT" "K8S_DEFAULT_GW" "GATEWAY_ENABLE_DNSSEC" "RESOLV_CONF_COPY" "IPTABLES_NFT" }}
{{- range $name := $names }}
{{- if eq $name "GATEWAY_NAME" }}
{{ $name }}={{ include "pod-gateway.gatewayName" $root | include "pod-gateway.shellQuote" }}
{{- else if eq $name "K8S_DNS_IPS" }}
{{- with include "pod-gateway.k8sDnsIps" $root }}
{{ $name }}={{ include "pod-gateway.shellQuote" . }}
{{- end }}
{{- else if hasKey $s $name }}
{{ $name }}={{ include "pod-gateway.str" (index $s $name) | include "pod-gateway.shellQuote" }}
{{- end }}
{{- end }}
{{- end }}

{{/* nat.conf: "hostname octet proto:port[:clientport],…" per publicPorts entry. */}}
{{- define "pod-gateway.natConf" -}}
# Static overlay addresses and port forwards of release {{ .Release.Name }}:
# hostname octet proto:port[:clientport],...
{{- range .Values.publicPorts }}
{{- $ports := list }}
{{- range .ports }}
{{- $p := printf "%s:%d" .type (int64 .port) }}
{{- if hasKey . "clientPort" }}
{{- $p = printf "%s:%d" $p (int64 .clientPort) }}
{{- end }}
{{- $ports = append $ports $p }}
{{- end }}
{{ .hostname }} {{ int64 .IP }}{{ if $ports }} {{ join "," $ports }}{{ end }}
{{- end }}
{{- end }}

{{/* Checks that the schema cannot express. */}}
{{- define "pod-gateway.validate" -}}
{{- if has .Release.Namespace .Values.routed_namespaces }}
{{- fail (printf "routed_namespaces must not contain the release namespace %s: the gateway pod would be routed through itself" .Release.Namespace) }}
{{- end }}
{{- if has "kube-system" .Values.routed_namespaces }}
{{- fail "routed_namespaces must not contain kube-system: the cluster DNS, which clients resolve the gateway with, would be routed through the gateway" }}
{{- end }}
{{- $wh := .Values.webhook }}
{{- if $wh.enabled }}
{{- if and (eq $wh.namespaceSelector.type "label") (not $wh.namespaceSelector.label) }}
{{- fail "webhook.namespaceSelector.label is empty: name the namespace label (e.g. routed-gateway) or use type custom" }}
{{- end }}
{{- if and (eq $wh.namespaceSelector.type "custom") (not $wh.namespaceSelector.custom) }}
{{- fail "webhook.namespaceSelector.custom is empty, which would select every namespace (kube-system and the webhook's own included): give matchLabels or matchExpressions" }}
{{- end }}
{{- if and $wh.gatewayLabelValue (not $wh.gatewayLabel) }}
{{- fail "webhook.gatewayLabelValue needs webhook.gatewayLabel" }}
{{- end }}
{{- if and $wh.gatewayAnnotationValue (not $wh.gatewayAnnotation) }}
{{- fail "webhook.gatewayAnnotationValue needs webhook.gatewayAnnotation" }}
{{- end }}
{{- if eq (int $wh.port) (int $wh.metricsPort) }}
{{- fail (printf "webhook.port and webhook.metricsPort are both %d: the HTTPS server and /healthz, /readyz, /metrics need two ports" (int $wh.port)) }}
{{- end }}
{{- end }}
{{- $first := include "pod-gateway.firstDynamicIp" . | int }}
{{- $hosts := dict }}
{{- $ips := dict }}
{{- $forwards := dict }}
{{- range .Values.publicPorts }}
{{- $ip := int .IP }}
{{- if ge $ip $first }}
{{- fail (printf "publicPorts: %s has IP %d, which must be below VXLAN_GATEWAY_FIRST_DYNAMIC_IP (%d): static addresses sit below the DHCP range" .hostname $ip $first) }}
{{- end }}
{{- if hasKey $hosts .hostname }}
{{- fail (printf "publicPorts: hostname %s is listed twice" .hostname) }}
{{- end }}
{{- $_ := set $hosts .hostname true }}
{{- if hasKey $ips (toString $ip) }}
{{- fail (printf "publicPorts: IP %d is given to both %s and %s" $ip (get $ips (toString $ip)) .hostname) }}
{{- end }}
{{- $_ = set $ips (toString $ip) .hostname }}
{{- $host := .hostname }}
{{- range .ports }}
{{- $key := printf "%s:%d" .type (int64 .port) }}
{{- if hasKey $forwards $key }}
{{- fail (printf "publicPorts: %s is forwarded to both %s and %s" $key (get $forwards $key) $host) }}
{{- end }}
{{- $_ := set $forwards $key $host }}
{{- end }}
{{- end }}
{{- if and (include "pod-gateway.setting" (dict "root" . "name" "SNAT_IP" "default" "")) (eq (include "pod-gateway.vpnInterface" .) "") }}
{{- fail "settings.SNAT_IP needs settings.VPN_INTERFACE: SNAT applies to traffic leaving the VPN interface" }}
{{- end }}
{{- if and .Values.vpn.enabled (not .Values.vpn.container.image) }}
{{- fail "vpn.enabled needs vpn.container.image (and whatever else your VPN client needs: env, volumeMounts)" }}
{{- end }}
{{- end }}
