{{/*
Naming, labels and the pieces every workload shares. Names follow `helm create`:
63-character limit, fullnameOverride, and the release name alone when it already
contains the chart name.
*/}}

{{- define "triage.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "triage.fullname" -}}
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

{{/* "<fullname>-<component>", within 63 characters. Call with (list $ "scorer"). */}}
{{- define "triage.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "triage.fullname" $root | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" }}
{{- end }}

{{- define "triage.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. Call with (list $ "component"). */}}
{{- define "triage.labels" -}}
{{- $root := index . 0 }}
helm.sh/chart: {{ include "triage.chart" $root }}
{{ include "triage.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: {{ include "triage.name" $root }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: stable across upgrades. Call with (list $ "component"). */}}
{{- define "triage.selectorLabels" -}}
{{- $root := index . 0 }}
app.kubernetes.io/name: {{ include "triage.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
Image reference: repository:tag, or repository@digest when a digest is set. The
scorer and jobs images default their tag to the chart's appVersion.
Call with (list $ .Values.scorer.image).
*/}}
{{- define "triage.image" -}}
{{- $root := index . 0 }}
{{- $image := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (toString (default $root.Chart.AppVersion $image.tag)) }}
{{- end }}
{{- end }}

{{- define "triage.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Hardened security contexts. The pod context takes the component's uid/gid; every
container gets the same restrictive context. Call with (dict "uid" 10001).
*/}}
{{- define "triage.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "triage.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The writable /tmp every container of ours gets (read-only root filesystem). */}}
{{- define "triage.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ . }}
{{- end }}

{{/* ---------------------------------------------------------------- storage --- */}}

{{- define "triage.minioName" -}}
{{- include "triage.componentName" (list . "minio") }}
{{- end }}

{{/* The S3 endpoint every pod uses: the bundled MinIO's Service, or the external one. */}}
{{- define "triage.s3Endpoint" -}}
{{- if .Values.minio.enabled }}
{{- printf "http://%s.%s.svc:%d" (include "triage.minioName" .) .Release.Namespace (int .Values.minio.service.port) }}
{{- else }}
{{- .Values.storage.external.endpoint }}
{{- end }}
{{- end }}

{{/* s3://bucket/prefix/ — the root of the registry, inference logs and reports. */}}
{{- define "triage.storageUri" -}}
{{- $prefix := trimAll "/" .Values.storage.prefix }}
{{- if $prefix }}
{{- printf "s3://%s/%s/" .Values.storage.bucket $prefix }}
{{- else }}
{{- printf "s3://%s/" .Values.storage.bucket }}
{{- end }}
{{- end }}

{{/* The Secret holding the S3 credentials (empty: the SDK's own credential chain). */}}
{{- define "triage.storageSecretName" -}}
{{- if .Values.minio.enabled }}
{{- default (include "triage.minioName" .) .Values.minio.auth.existingSecret }}
{{- else }}
{{- .Values.storage.external.existingSecret }}
{{- end }}
{{- end }}

{{- define "triage.storageAccessKeyKey" -}}
{{- if .Values.minio.enabled }}{{ .Values.minio.auth.rootUserKey }}{{ else }}{{ .Values.storage.external.accessKeyIdKey }}{{ end }}
{{- end }}

{{- define "triage.storageSecretKeyKey" -}}
{{- if .Values.minio.enabled }}{{ .Values.minio.auth.rootPasswordKey }}{{ else }}{{ .Values.storage.external.secretAccessKeyKey }}{{ end }}
{{- end }}

{{/* AWS_* variables boto3 reads natively, for every pod that touches the storage. */}}
{{- define "triage.storageEnv" -}}
{{- $endpoint := include "triage.s3Endpoint" . }}
{{- if $endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ $endpoint | quote }}
{{- end }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.storage.region | quote }}
{{- $secret := include "triage.storageSecretName" . }}
{{- if $secret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "triage.storageAccessKeyKey" . }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "triage.storageSecretKeyKey" . }}
{{- end }}
{{- end }}

{{/*
A generated secret value that survives upgrades: the value already in the cluster
when there is one (lookup), else a new random one. Call with
(list $ "secret-name" "key" 32).
*/}}
{{- define "triage.generatedSecretValue" -}}
{{- $root := index . 0 }}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (index . 1) }}
{{- if and $existing (hasKey (default dict $existing.data) (index . 2)) }}
{{- index $existing.data (index . 2) }}
{{- else }}
{{- randAlphaNum (int (index . 3)) | b64enc }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------- components --- */}}

{{- define "triage.scorerName" -}}
{{- include "triage.componentName" (list . "scorer") }}
{{- end }}

{{- define "triage.scorerServiceAccountName" -}}
{{- if .Values.scorer.serviceAccount.create }}
{{- default (include "triage.scorerName" .) .Values.scorer.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.scorer.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "triage.scorerApiKeySecretName" -}}
{{- default (printf "%s-api-key" (include "triage.scorerName" .)) .Values.scorer.apiKey.existingSecret }}
{{- end }}

{{- define "triage.trainingName" -}}
{{- include "triage.componentName" (list . "training") }}
{{- end }}

{{- define "triage.trainingServiceAccountName" -}}
{{- if .Values.training.serviceAccount.create }}
{{- default (include "triage.trainingName" .) .Values.training.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.training.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "triage.driftName" -}}
{{- include "triage.componentName" (list . "drift") }}
{{- end }}

{{- define "triage.driftServiceAccountName" -}}
{{- if .Values.drift.serviceAccount.create }}
{{- default (include "triage.driftName" .) .Values.drift.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.drift.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "triage.prometheusName" -}}
{{- include "triage.componentName" (list . "prometheus") }}
{{- end }}

{{- define "triage.pushgatewayName" -}}
{{- include "triage.componentName" (list . "pushgateway") }}
{{- end }}

{{- define "triage.grafanaName" -}}
{{- include "triage.componentName" (list . "grafana") }}
{{- end }}

{{/* The Pushgateway the drift job pushes to: the bundled one, or drift.pushgatewayUrl. */}}
{{- define "triage.pushgatewayUrl" -}}
{{- if .Values.drift.pushgatewayUrl }}
{{- .Values.drift.pushgatewayUrl }}
{{- else if .Values.pushgateway.enabled }}
{{- printf "http://%s.%s.svc:%d" (include "triage.pushgatewayName" .) .Release.Namespace (int .Values.pushgateway.service.port) }}
{{- end }}
{{- end }}

{{/*
"auto" toggles of the Prometheus Operator objects: rendered when the bundled
Prometheus is off and the cluster serves the CRD (helm template: pass
--api-versions monitoring.coreos.com/v1/ServiceMonitor). Call with
(list $ .Values.x.enabled "ServiceMonitor").
*/}}
{{- define "triage.operatorEnabled" -}}
{{- $root := index . 0 }}
{{- $enabled := index . 1 }}
{{- if eq (toString $enabled) "true" }}true
{{- else if eq (toString $enabled) "auto" }}
{{- if and (not $root.Values.prometheus.enabled) ($root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" (index . 2))) }}true{{ end }}
{{- end }}
{{- end }}

{{/* Checks of value combinations the schema cannot express. */}}
{{- define "triage.validate" -}}
{{- if and .Values.drift.enabled (eq .Values.drift.retrain.mode "kubernetes") (not .Values.training.enabled) }}
{{- fail "drift.retrain.mode=kubernetes creates Jobs from the training CronJob: enable training or set drift.retrain.mode=disabled" }}
{{- end }}
{{- if and .Values.scorer.enabled (eq .Values.scorer.retrain.mode "kubernetes") (not .Values.training.enabled) }}
{{- fail "scorer.retrain.mode=kubernetes creates Jobs from the training CronJob: enable training or set scorer.retrain.mode=disabled" }}
{{- end }}
{{- if and (not .Values.minio.enabled) (not .Values.storage.external.endpoint) (not .Values.storage.external.existingSecret) }}
{{- fail "minio.enabled=false: set storage.external.endpoint and/or storage.external.existingSecret (an S3 endpoint and its credentials)" }}
{{- end }}
{{- if and .Values.grafana.enabled (not .Values.prometheus.enabled) (not .Values.grafana.prometheusUrl) }}
{{- fail "grafana.enabled with prometheus.enabled=false: set grafana.prometheusUrl to the Prometheus the dashboards query" }}
{{- end }}
{{- end }}

{{/* Pods nobody needs to reach (jobs, tests): one NetworkPolicy denies them ingress. */}}
{{- define "triage.noIngressLabel" -}}
accident-triage/ingress: none
{{- end }}

{{/* --------------------------------------------------------------- training --- */}}

{{/*
The pod template of a training run, shared by the CronJob (and so by every retrain
Job created from it) and the bootstrap Job. Call with
(dict "root" $ "component" "training" "command" (list ...) "rawUri" "...").
*/}}
{{- define "triage.trainingPod" -}}
{{- $root := .root }}
{{- $t := $root.Values.training }}
metadata:
  labels:
    {{- include "triage.selectorLabels" (list $root .component) | nindent 4 }}
    {{- include "triage.noIngressLabel" $root | nindent 4 }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "triage.trainingServiceAccountName" $root }}
  automountServiceAccountToken: false
  {{- include "triage.imagePullSecrets" $root | nindent 2 }}
  securityContext:
    {{- include "triage.podSecurityContext" (dict "uid" $t.uid) | nindent 4 }}
  containers:
    - name: training
      image: {{ include "triage.image" (list $root $root.Values.jobsImage) }}
      imagePullPolicy: {{ $root.Values.jobsImage.pullPolicy }}
      command:
        {{- toYaml .command | nindent 8 }}
      env:
        {{- with .rawUri }}
        - name: TRAINING_RAW_URI
          value: {{ . | quote }}
        {{- end }}
        - name: TRAINING_REGISTRY_URI
          value: {{ include "triage.storageUri" $root | quote }}
        - name: TRAINING_MODEL_NAME
          value: {{ $root.Values.model.name | quote }}
        - name: TRAINING_MODEL_KIND
          value: {{ $t.modelKind | quote }}
        - name: TRAINING_PROMOTE
          value: {{ $t.promote | quote }}
        {{- include "triage.storageEnv" $root | nindent 8 }}
        {{- with $t.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      resources:
        {{- toYaml $t.resources | nindent 8 }}
      securityContext:
        {{- include "triage.containerSecurityContext" (dict "uid" $t.uid) | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    {{- include "triage.tmpVolume" $t.tmpSizeLimit | nindent 4 }}
  {{- with $t.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $t.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $t.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
