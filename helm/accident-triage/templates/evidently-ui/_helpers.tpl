{{/* ------------------------------------------------------------ evidently ui --- */}}

{{- define "triage.evidentlyUiName" -}}
{{- include "triage.componentName" (list . "evidently-ui") }}
{{- end }}

{{- define "triage.evidentlyUiSecretName" -}}
{{- default (include "triage.componentName" (list . "evidently-ui-secret")) .Values.evidentlyUi.secret.existingSecret }}
{{- end }}

{{/* The UI's base URL inside the cluster, where the jobs store their snapshots. */}}
{{- define "triage.evidentlyUiUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "triage.evidentlyUiName" .) .Release.Namespace (int .Values.evidentlyUi.service.port) }}
{{- end }}

{{/*
The drift job's variables for the UI (MONITORING_EVIDENTLY_UI_*), empty when the UI is
off. Call with the root context, indented by the caller.
*/}}
{{- define "triage.evidentlyUiEnv" -}}
{{- if .Values.evidentlyUi.enabled }}
- name: MONITORING_EVIDENTLY_UI_URL
  value: {{ include "triage.evidentlyUiUrl" . | quote }}
- name: MONITORING_EVIDENTLY_UI_PROJECT
  value: {{ .Values.evidentlyUi.project | quote }}
- name: MONITORING_EVIDENTLY_UI_MAX_RUNS
  value: {{ .Values.evidentlyUi.maxRuns | quote }}
- name: MONITORING_EVIDENTLY_UI_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "triage.evidentlyUiSecretName" . }}
      key: {{ .Values.evidentlyUi.secret.key }}
{{- end }}
{{- end }}
