{{/* Names, labels and the per-service settings every template shares. */}}

{{- define "mlsec.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mlsec.fullname" -}}
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

{{- define "mlsec.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels selecting every pod of this release (NetworkPolicies use them). */}}
{{- define "mlsec.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlsec.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mlsec.labels" -}}
helm.sh/chart: {{ include "mlsec.chart" . }}
{{ include "mlsec.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlsec
{{- end -}}

{{/* Selector labels of one service: (dict "root" $ "name" "inspect") */}}
{{- define "mlsec.componentSelectorLabels" -}}
{{ include "mlsec.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "mlsec.componentLabels" -}}
{{ include "mlsec.labels" .root }}
app.kubernetes.io/component: {{ .name }}
mlsec-role: {{ .role }}
{{- end -}}

{{- define "mlsec.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mlsec.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Recursive merge of two maps: every key of the second wins, including
false / 0 / "" (sprig's mergeOverwrite skips those, so a stage could not
turn off what the defaults turn on). Maps merge, everything else replaces.
Usage: include "mlsec.deepMerge" (list $base $over) | fromYaml
*/}}
{{- define "mlsec.deepMerge" -}}
{{- $out := deepCopy (index . 0) -}}
{{- range $k, $v := (index . 1) -}}
{{- if and (kindIs "map" $v) (kindIs "map" (get $out $k)) -}}
{{- $_ := set $out $k (include "mlsec.deepMerge" (list (get $out $k) $v) | fromYaml) -}}
{{- else -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Every enabled service, as YAML: name -> serviceDefaults merged with the
service's own keys, plus role ("orchestrator" | "stage"), binary and the
gRPC service the readiness probe asks about.
Usage: include "mlsec.services" . | fromYaml
*/}}
{{- define "mlsec.services" -}}
{{- $out := dict -}}
{{- if .Values.orchestrator.enabled -}}
{{- $o := include "mlsec.deepMerge" (list .Values.serviceDefaults (omit .Values.orchestrator "enabled" "service")) | fromYaml -}}
{{- $_ := set $o "role" "orchestrator" -}}
{{- $_ := set $o "binary" "mlsec-orchestratord" -}}
{{- $_ := set $o "grpcService" "mlsec.v1.Orchestrator" -}}
{{- $_ := set $out "orchestrator" $o -}}
{{- end -}}
{{- range $name, $stage := .Values.stages -}}
{{- if $stage.enabled -}}
{{- $s := include "mlsec.deepMerge" (list $.Values.serviceDefaults (omit $stage "enabled")) | fromYaml -}}
{{- $_ := set $s "role" "stage" -}}
{{- $_ := set $s "binary" (printf "mlsec-%sd" $name) -}}
{{- $_ := set $s "grpcService" "mlsec.v1.Analyzer" -}}
{{- $_ := set $out $name $s -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* repository[:tag|@digest] for one service's image overrides. */}}
{{- define "mlsec.image" -}}
{{- $img := include "mlsec.deepMerge" (list .root.Values.image (.svc.image | default dict)) | fromYaml -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Environment variable carrying one librdkafka property. The services read
MLSEC_KAFKA_<property> with the property name unchanged (dots included;
Kubernetes accepts dots in variable names). Change the encoding here only.
*/}}
{{- define "mlsec.kafkaEnv" -}}
{{- printf "MLSEC_KAFKA_%s" . -}}
{{- end -}}

{{- define "mlsec.authSecretName" -}}
{{- default (printf "%s-auth" (include "mlsec.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "mlsec.authSecretKey" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecretKey }}{{- else -}}token{{- end -}}
{{- end -}}

{{- define "mlsec.redisAuth" -}}
{{- if or .Values.redis.password .Values.redis.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* MLSEC_REDIS_URL with the password spliced in by Kubernetes from the
REDIS_PASSWORD variable: redis://[user]:$(REDIS_PASSWORD)@host... */}}
{{- define "mlsec.redisUrlWithPassword" -}}
{{- $rest := trimPrefix "redis://" .Values.redis.url -}}
{{- if contains "@" $rest -}}
{{- $p := splitn "@" 2 $rest -}}
{{- printf "redis://%s:$(REDIS_PASSWORD)@%s" $p._0 $p._1 -}}
{{- else -}}
{{- printf "redis://:$(REDIS_PASSWORD)@%s" $rest -}}
{{- end -}}
{{- end -}}

{{- define "mlsec.redisPasswordInUrl" -}}
{{- if and (include "mlsec.redisAuth" .) (eq .Values.redis.passwordMode "url") -}}true{{- end -}}
{{- end -}}

{{- define "mlsec.redisPasswordFile" -}}
{{- if and (include "mlsec.redisAuth" .) (eq .Values.redis.passwordMode "file") -}}true{{- end -}}
{{- end -}}

{{- define "mlsec.redisSecretName" -}}
{{- default (printf "%s-redis" (include "mlsec.fullname" .)) .Values.redis.existingSecret -}}
{{- end -}}

{{- define "mlsec.kafkaSaslSecretName" -}}
{{- default (printf "%s-kafka-sasl" (include "mlsec.fullname" .)) .Values.kafka.sasl.existingSecret -}}
{{- end -}}

{{/* Port the kubelet's gRPC probes use (plain text; see values.yaml). */}}
{{- define "mlsec.probePort" -}}
{{- if .Values.tls.enabled -}}{{ .Values.ports.health }}{{- else -}}{{ .Values.ports.grpc }}{{- end -}}
{{- end -}}

{{/* Fixed mount points, referenced by the ConfigMap and the Deployments. */}}
{{- define "mlsec.paths" -}}
auth: /etc/mlsec/auth
tls: /etc/mlsec/tls
clientCA: /etc/mlsec/client-ca
redis: /etc/mlsec/redis
kafkaCA: /etc/mlsec/kafka-ca
{{- end -}}
