{{/*
Names. Everything is named "<fullname>-<component>": the gateway, the normalizer, "sink-<name>" for each sink
of config.sinks (a sink name's "_" becomes "-", since Kubernetes names are DNS labels) and the console.
*/}}
{{- define "hookbus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hookbus.fullname" -}}
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

{{- define "hookbus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; "component" is added per component. */}}
{{- define "hookbus.labels" -}}
helm.sh/chart: {{ include "hookbus.chart" . }}
app.kubernetes.io/name: {{ include "hookbus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hookbus
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway"). */}}
{{- define "hookbus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hookbus.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hookbus.componentLabels" -}}
{{ include "hookbus.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hookbus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hookbus.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "hookbus.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret whose keys every hookbus container gets as environment variables and files; empty for none. */}}
{{- define "hookbus.secretName" -}}
{{- if and .Values.secret.existingSecret .Values.secret.values -}}
{{- fail "secret: set either existingSecret (a Secret you manage) or values (a Secret the chart creates), not both" -}}
{{- end -}}
{{- if .Values.secret.existingSecret -}}
{{- .Values.secret.existingSecret -}}
{{- else if .Values.secret.values -}}
{{- printf "%s-secrets" (include "hookbus.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
Ports, read from the configuration the processes read, so a probe can never aim elsewhere than the process listens.
The chart needs them as literal numbers: a ${VAR} there would be expanded only inside the container.
*/}}
{{- define "hookbus.gatewayPort" -}}
{{- $port := (.Values.config.gateway | default dict).port | default 8080 -}}
{{- if not (has (kindOf $port) (list "float64" "int" "int64")) -}}
{{- fail (printf "config.gateway.port must be a number for the chart's probes and Service, not %v" $port) -}}
{{- end -}}
{{- int $port -}}
{{- end -}}

{{- define "hookbus.opsPort" -}}
{{- $port := (.Values.config.ops | default dict).port | default 0 -}}
{{- if not (has (kindOf $port) (list "float64" "int" "int64")) -}}
{{- fail (printf "config.ops.port must be a number for the chart's probes, not %v" $port) -}}
{{- end -}}
{{- if eq (int $port) 0 -}}
{{- fail "config.ops.port must be set (e.g. 9090): the normalizer and the sinks serve /healthz, /readyz and /metrics there, and 0 serves nothing" -}}
{{- end -}}
{{- int $port -}}
{{- end -}}

{{- define "hookbus.spoolDir" -}}
{{- $dir := (.Values.config.gateway | default dict).spool_dir | default "" -}}
{{- if or (not (hasPrefix "/" $dir)) (contains "${" $dir) -}}
{{- fail (printf "config.gateway.spool_dir must be an absolute path without ${...} (the chart mounts the spool volume there), not %q" $dir) -}}
{{- end -}}
{{- $dir -}}
{{- end -}}

{{/* The console's section of config, which console.enabled needs. */}}
{{- define "hookbus.consoleConfig" -}}
{{- $section := .Values.config.console -}}
{{- if not (kindIs "map" $section) -}}
{{- fail "console.enabled needs config.console (docs/console.md): its token reference, port and index_path" -}}
{{- end -}}
{{- toYaml $section -}}
{{- end -}}

{{- define "hookbus.consolePort" -}}
{{- $port := (include "hookbus.consoleConfig" . | fromYaml).port | default 8091 -}}
{{- if not (has (kindOf $port) (list "float64" "int" "int64")) -}}
{{- fail (printf "config.console.port must be a number for the chart's probes and Service, not %v" $port) -}}
{{- end -}}
{{- int $port -}}
{{- end -}}

{{/* The directory of config.console.index_path, where the console's volume is mounted. */}}
{{- define "hookbus.consoleIndexDir" -}}
{{- $path := (include "hookbus.consoleConfig" . | fromYaml).index_path | default "" -}}
{{- if or (not (hasPrefix "/" $path)) (contains "${" $path) (eq (dir $path) "/") -}}
{{- fail (printf "config.console.index_path must be an absolute path below a directory, without ${...} (the chart mounts the console's volume on its directory), not %q" $path) -}}
{{- end -}}
{{- dir $path -}}
{{- end -}}

{{/* The Secret holding the console's token: yours, or the one the chart makes. */}}
{{- define "hookbus.consoleSecretName" -}}
{{- .Values.console.token.existingSecret | default (printf "%s-console" (include "hookbus.fullname" .)) -}}
{{- end -}}

{{- define "hookbus.topicPartitions" -}}
{{- $partitions := (.Values.config.kafka | default dict).topic_partitions | default 6 -}}
{{- if not (has (kindOf $partitions) (list "float64" "int" "int64")) -}}
{{- fail (printf "config.kafka.topic_partitions must be a number for the chart's autoscaling bound, not %v" $partitions) -}}
{{- end -}}
{{- int $partitions -}}
{{- end -}}

{{/*
The stateless stages: a list of components, each a dict with
  component  the component label and name suffix ("normalizer", "sink-<name>")
  args       the hookbus command line
  settings   the merged per-component values (replicas, resources, autoscaling, pdb, scheduling, ...)
Rendered as YAML and read back with fromYaml, since a template can only return text.
*/}}
{{- define "hookbus.stages" -}}
{{- $stages := list -}}
{{- if .Values.normalizer.enabled -}}
{{- $stages = append $stages (dict "component" "normalizer" "args" (list "normalizer") "settings" .Values.normalizer) -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $name, $sink := (.Values.config.sinks | default dict) -}}
{{- $overrides := get ($.Values.sinks | default dict) $name | default dict -}}
{{- $settings := mergeOverwrite (deepCopy $.Values.sinkDefaults) (deepCopy $overrides) -}}
{{- $component := printf "sink-%s" ($name | lower | replace "_" "-") -}}
{{- if hasKey $seen $component -}}
{{- fail (printf "sinks %q and %q would both be named %s" (get $seen $component) $name $component) -}}
{{- end -}}
{{- $_ := set $seen $component $name -}}
{{- if $settings.enabled -}}
{{- $stages = append $stages (dict "component" $component "args" (list "sink" $name) "settings" $settings) -}}
{{- end -}}
{{- end -}}
{{- range $name, $_ := (.Values.sinks | default dict) -}}
{{- if not (hasKey ($.Values.config.sinks | default dict) $name) -}}
{{- fail (printf "sinks.%s: no sink of that name in config.sinks" $name) -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "stages" $stages) -}}
{{- end -}}

{{/* Pod annotations every hookbus pod carries: a new config or chart-made secret rolls the pods; Prometheus' scrape hints. */}}
{{- define "hookbus.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
{{- if and .root.Values.secret.values (not .root.Values.secret.existingSecret) }}
checksum/secret: {{ include (print .root.Template.BasePath "/secret.yaml") .root | sha256sum }}
{{- end }}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: {{ .root.Values.metrics.path | quote }}
{{- end }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The container's environment: the config path, log settings, the component's own (.own), the secret's keys, and extras. */}}
{{- define "hookbus.env" -}}
env:
  - name: HOOKBUS_CONFIG
    value: /etc/hookbus/hookbus.yaml
  - name: HOOKBUS_LOG_LEVEL
    value: {{ .root.Values.logLevel | quote }}
  - name: HOOKBUS_LOG_FORMAT
    value: json
{{- with .own }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .root.Values.env }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .settings.env }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- $secret := include "hookbus.secretName" .root }}
{{- if or $secret .root.Values.envFrom .settings.envFrom }}
envFrom:
{{- if $secret }}
  - secretRef:
      name: {{ $secret }}
{{- end }}
{{- with .root.Values.envFrom }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .settings.envFrom }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes every hookbus pod has: the config, /tmp (the root file system is read-only), the secret as files. */}}
{{- define "hookbus.volumes" -}}
- name: config
  configMap:
    name: {{ include "hookbus.fullname" .root }}-config
- name: tmp
  emptyDir:
    sizeLimit: {{ .root.Values.tmpSizeLimit }}
{{- $secret := include "hookbus.secretName" .root }}
{{- if and $secret .root.Values.secret.mountPath }}
- name: secrets
  secret:
    secretName: {{ $secret }}
    defaultMode: 0440
{{- end }}
{{- with .root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- with .settings.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "hookbus.volumeMounts" -}}
- name: config
  mountPath: /etc/hookbus
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- $secret := include "hookbus.secretName" .root }}
{{- if and $secret .root.Values.secret.mountPath }}
- name: secrets
  mountPath: {{ .root.Values.secret.mountPath }}
  readOnly: true
{{- end }}
{{- with .root.Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- with .settings.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Scheduling and pod-level settings shared by every component: (dict "root" $ "settings" <component values>). */}}
{{- define "hookbus.podSpecCommon" -}}
serviceAccountName: {{ include "hookbus.serviceAccountName" .root }}
automountServiceAccountToken: {{ .root.Values.serviceAccount.automountToken }}
{{- with .root.Values.image.pullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
securityContext:
{{ toYaml .root.Values.podSecurityContext | indent 2 }}
terminationGracePeriodSeconds: {{ .settings.terminationGracePeriodSeconds }}
{{- with .root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with (.settings.nodeSelector | default .root.Values.nodeSelector) }}
nodeSelector:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with (.settings.tolerations | default .root.Values.tolerations) }}
tolerations:
{{ toYaml . }}
{{- end }}
{{- with .settings.affinity }}
affinity:
{{ toYaml . | indent 2 }}
{{- end }}
{{- if .settings.spreadAcrossZones }}
topologySpreadConstraints:
  # Replicas on different nodes and zones, so one node or zone lost takes one replica, not all.
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
{{ include "hookbus.selectorLabels" . | indent 8 }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
{{ include "hookbus.selectorLabels" . | indent 8 }}
{{- end }}
{{- end -}}

{{/* The container-level fields every hookbus container shares. */}}
{{- define "hookbus.containerCommon" -}}
image: {{ include "hookbus.image" .root }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
{{ toYaml .root.Values.securityContext | indent 2 }}
resources:
{{ toYaml .settings.resources | indent 2 }}
{{- end -}}

{{/* Liveness and readiness on the given port name and paths. */}}
{{- define "hookbus.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .portName }}
{{ toYaml .root.Values.probes.liveness | indent 2 }}
readinessProbe:
  httpGet:
    path: {{ .readinessPath }}
    port: {{ .portName }}
{{ toYaml .root.Values.probes.readiness | indent 2 }}
startupProbe:
  httpGet:
    path: /healthz
    port: {{ .portName }}
{{ toYaml .root.Values.probes.startup | indent 2 }}
{{- end -}}
