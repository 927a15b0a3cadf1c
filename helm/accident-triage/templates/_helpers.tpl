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

{{/*
"<fullname>-<component>", within 63 characters, or within the limit given as a third
element. Call with (list $ "scorer") or (list $ "training" 52).
*/}}
{{- define "triage.componentName" -}}
{{- $root := index . 0 }}
{{- $limit := 63 }}
{{- if gt (len .) 2 }}
{{- $limit = int (index . 2) }}
{{- end }}
{{- printf "%s-%s" (include "triage.fullname" $root | trunc (int (sub (sub $limit 1) (len (index . 1)))) | trimSuffix "-") (index . 1) }}
{{- end }}

{{/*
CronJob names: at most 52 characters, because the CronJob controller appends an
11-character suffix to the Jobs it creates and a Job's name is a label value (63).
*/}}
{{- define "triage.cronJobNameLimit" -}}52{{- end }}

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
Image reference: [registry/]repository:tag, or [registry/]repository@digest when a
digest is set. global.imageRegistry replaces every image's registry (a mirror is one
setting). The scorer and jobs images default their tag to the chart's appVersion.
Call with (list $ .Values.scorer.image).
*/}}
{{- define "triage.image" -}}
{{- $root := index . 0 }}
{{- $image := index . 1 }}
{{- $registry := default $image.registry ($root.Values.global).imageRegistry }}
{{- $repository := $image.repository }}
{{- if $registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository }}
{{- end }}
{{- if $image.digest }}
{{- printf "%s@%s" $repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (toString (default $root.Chart.AppVersion $image.tag)) }}
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

{{- define "triage.seaweedfsName" -}}
{{- include "triage.componentName" (list . "seaweedfs") }}
{{- end }}

{{/* The S3 endpoint every pod uses: the bundled SeaweedFS's Service, or the external one. */}}
{{- define "triage.s3Endpoint" -}}
{{- if .Values.seaweedfs.enabled }}
{{- printf "http://%s.%s.svc:%d" (include "triage.seaweedfsName" .) .Release.Namespace (int .Values.seaweedfs.service.port) }}
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

{{/*
The S3 identities of the bundled SeaweedFS, one Secret each: a role per workload,
each scoped to what it does (see triage.seaweedfsS3Config), and "admin" for operators
only (backups, migrations), mounted in no pod. Use with splitList " ".
*/}}
{{- define "triage.s3Identities" -}}
training scorer drift admin
{{- end }}

{{/*
The Secret holding a role's S3 credentials (empty: the SDK's own credential chain,
e.g. IRSA). Call with (list $ "scorer").
*/}}
{{- define "triage.s3SecretName" -}}
{{- $root := index . 0 }}
{{- $role := index . 1 }}
{{- if $root.Values.seaweedfs.enabled }}
{{- include "triage.componentName" (list $root (printf "s3-%s" $role)) }}
{{- else }}
{{- $external := $root.Values.storage.external }}
{{- default $external.existingSecret (index (default dict $external.roleSecrets) $role) }}
{{- end }}
{{- end }}

{{/*
A role's generated S3 credentials as YAML (accessKeyId, secretAccessKey; plain text):
kept across upgrades by triage.generatedSecretValue. Call with (list $ "scorer").
*/}}
{{- define "triage.s3GeneratedCredentials" -}}
{{- $root := index . 0 }}
{{- $name := include "triage.s3SecretName" . }}
accessKeyId: {{ include "triage.generatedSecretValue" (list $root $name "AWS_ACCESS_KEY_ID" 20) | b64dec | quote }}
secretAccessKey: {{ include "triage.generatedSecretValue" (list $root $name "AWS_SECRET_ACCESS_KEY" 40) | b64dec | quote }}
{{- end }}

{{/*
What changes a pod's S3 credentials, for its checksum annotation: the generated values,
or the content of the external Secret as the cluster holds it. Call with (list $ "scorer").
*/}}
{{- define "triage.s3CredentialsChecksum" -}}
{{- $root := index . 0 }}
{{- $generated := "" }}
{{- if $root.Values.seaweedfs.enabled }}
{{- $generated = include "triage.s3GeneratedCredentials" . }}
{{- end }}
{{- include "triage.secretChecksum" (list $root (include "triage.s3SecretName" .) $generated) }}
{{- end }}

{{/*
SeaweedFS's S3 identities (-s3.config): one per role, each scoped to the key prefixes
it writes. SeaweedFS matches "Action:bucket/key" against each entry, with '*' as a
wildcard; an entry without '/' covers the whole bucket. Deleting an object needs
Write, so a role can only delete where it may write. The scorer (POST /retrain) and the
drift job both claim retrains under retrain-claims/ (core/claims.py).
*/}}
{{- define "triage.seaweedfsS3Config" -}}
{{- $bucket := .Values.storage.bucket }}
{{- $prefix := trimAll "/" .Values.storage.prefix }}
{{- $root := ternary (printf "%s/%s/" $bucket $prefix) (printf "%s/" $bucket) (ne $prefix "") }}
{{- $actions := dict
  "training" (list (printf "Read:%s" $bucket) (printf "List:%s" $bucket) (printf "Write:%smodels/*" $root))
  "scorer" (list (printf "Read:%smodels/*" $root) (printf "Write:%sinference-logs/*" $root) (printf "Write:%sfeedback/*" $root) (printf "Read:%sretrain-claims/*" $root) (printf "Write:%sretrain-claims/*" $root))
  "drift" (list (printf "Read:%s" $bucket) (printf "List:%s" $bucket) (printf "Write:%sreports/*" $root) (printf "Write:%sretrain-claims/*" $root))
  "admin" (list "Admin" "Read" "Write" "List" "Tagging")
}}
{{- $identities := list }}
{{- range $role := splitList " " (include "triage.s3Identities" .) }}
{{- $generated := include "triage.s3GeneratedCredentials" (list $ $role) | fromYaml }}
{{- $credentials := dict "accessKey" $generated.accessKeyId "secretKey" $generated.secretAccessKey }}
{{- $identities = append $identities (dict "name" $role "credentials" (list $credentials) "actions" (index $actions $role)) }}
{{- end }}
{{- dict "identities" $identities | toPrettyJson }}
{{- end }}

{{/* AWS_* variables boto3 reads natively, for a pod of one role. Call with (list $ "scorer"). */}}
{{- define "triage.storageEnv" -}}
{{- $root := index . 0 }}
{{- $endpoint := include "triage.s3Endpoint" $root }}
{{- if $endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ $endpoint | quote }}
{{- end }}
- name: AWS_DEFAULT_REGION
  value: {{ $root.Values.storage.region | quote }}
{{- $secret := include "triage.s3SecretName" . }}
{{- if $secret }}
{{- $external := $root.Values.storage.external }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ ternary "AWS_ACCESS_KEY_ID" $external.accessKeyIdKey $root.Values.seaweedfs.enabled }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ ternary "AWS_SECRET_ACCESS_KEY" $external.secretAccessKeyKey $root.Values.seaweedfs.enabled }}
{{- end }}
{{- end }}

{{/*
A generated secret value (base64) that survives upgrades: the value already in the
cluster when there is one (lookup), else a new random one. Memoised for the render in
.Values, so every template that includes the same Secret key sees the same value
(the Secret, the SeaweedFS identities built from it, the checksum annotations).
Call with (list $ "secret-name" "key" 32).
*/}}
{{- define "triage.generatedSecretValue" -}}
{{- $root := index . 0 }}
{{- $secret := index . 1 }}
{{- $key := index . 2 }}
{{- if not (hasKey $root.Values "__generatedSecretValues") }}
{{- $_ := set $root.Values "__generatedSecretValues" dict }}
{{- end }}
{{- $memo := index $root.Values "__generatedSecretValues" }}
{{- $memoKey := printf "%s/%s" $secret $key }}
{{- if not (hasKey $memo $memoKey) }}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace $secret }}
{{- if and $existing (hasKey (default dict $existing.data) $key) }}
{{- $_ := set $memo $memoKey (index $existing.data $key) }}
{{- else }}
{{- $_ := set $memo $memoKey (randAlphaNum (int (index . 3)) | b64enc) }}
{{- end }}
{{- end }}
{{- index $memo $memoKey }}
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
{{- default (include "triage.componentName" (list . "scorer-api-key")) .Values.scorer.apiKey.existingSecret }}
{{- end }}

{{- define "triage.scorerRequestIdKeySecretName" -}}
{{- default (include "triage.componentName" (list . "scorer-request-id-key")) .Values.scorer.requestIdKey.existingSecret }}
{{- end }}

{{/*
What a pod reads from a Secret, for its checksum annotation: the generated content when
the chart makes the Secret, else the existing Secret as the cluster holds it (lookup;
nothing under `helm template`). Call with (list $ "secret-name" "generated content").
*/}}
{{- define "triage.secretChecksum" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $generated := index . 2 }}
{{- if $generated }}
{{- $generated | sha256sum }}
{{- else }}
{{- $existing := (lookup "v1" "Secret" $root.Release.Namespace $name).data | default dict }}
{{- printf "%s:%s" $name (toJson $existing) | sha256sum }}
{{- end }}
{{- end }}

{{/*
triage.secretChecksum of a Secret with one generated key, which the chart makes unless
an existing Secret is named. Call with (list $ "secret-name" existingSecret "key" 40).
*/}}
{{- define "triage.generatedKeyChecksum" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $generated := "" }}
{{- if not (index . 2) }}
{{- $generated = include "triage.generatedSecretValue" (list $root $name (index . 3) (index . 4)) }}
{{- end }}
{{- include "triage.secretChecksum" (list $root $name $generated) }}
{{- end }}

{{- define "triage.trainingName" -}}
{{- include "triage.componentName" (list . "training" (include "triage.cronJobNameLimit" .)) }}
{{- end }}

{{- define "triage.trainingServiceAccountName" -}}
{{- if .Values.training.serviceAccount.create }}
{{- default (include "triage.trainingName" .) .Values.training.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.training.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "triage.driftName" -}}
{{- include "triage.componentName" (list . "drift" (include "triage.cronJobNameLimit" .)) }}
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

{{/* Pods nobody needs to reach (jobs, tests): one NetworkPolicy denies them ingress. */}}
{{- define "triage.noIngressLabel" -}}
accident-triage/ingress: none
{{- end }}

{{/* --------------------------------------------------------------- training --- */}}

{{/*
The pod template of a training run, shared by the CronJob (and so by every retrain
Job created from it) and the bootstrap Job. Call with
(dict "root" $ "component" "training" "command" (list ...) "rawUri" "..."), plus
"firstModelOnly" true and "waitForStorage" <seconds> for the first-model Job.
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
  {{- if .waitForStorage }}
  initContainers:
    # A fresh install starts the store and this Job together: wait for the bucket
    # (SeaweedFS creates it at start-up) instead of failing and backing off.
    - name: wait-for-storage
      image: {{ include "triage.image" (list $root $root.Values.jobsImage) }}
      imagePullPolicy: {{ $root.Values.jobsImage.pullPolicy }}
      command:
        - python
        - -m
        - training
        - wait-for-storage
        - --timeout
        - {{ .waitForStorage | quote }}
      env:
        - name: TRAINING_REGISTRY_URI
          value: {{ include "triage.storageUri" $root | quote }}
        {{- include "triage.storageEnv" (list $root "training") | nindent 8 }}
      resources:
        requests:
          cpu: 50m
          memory: 128Mi
        limits:
          cpu: 250m
          memory: 256Mi
      securityContext:
        {{- include "triage.containerSecurityContext" (dict "uid" $t.uid) | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  {{- end }}
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
        {{- if .firstModelOnly }}
        - name: TRAINING_FIRST_MODEL_ONLY
          value: "true"
        {{- end }}
        {{- include "triage.storageEnv" (list $root "training") | nindent 8 }}
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
