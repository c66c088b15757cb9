{{/*
The name of the chart, or nameOverride.
*/}}
{{- define "custos.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every namespaced object's name: fullnameOverride, else the
release name when it already contains the chart's name, else
<release>-<chart>. Truncated so that "<fullname>-metrics-reader" (the longest
suffix) stays within 63 characters.
*/}}
{{- define "custos.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Labels on every object the chart makes.
*/}}
{{- define "custos.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "custos.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: custos
{{- end }}

{{/*
The labels that select the manager's pods (Services, PDB, topology spread).
They never change between upgrades: a Deployment's selector is immutable.
*/}}
{{- define "custos.selectorLabels" -}}
app.kubernetes.io/name: {{ include "custos.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end }}

{{/* Object names. */}}
{{- define "custos.managerName" -}}{{ include "custos.fullname" . }}-manager{{- end }}
{{- define "custos.webhookServiceName" -}}{{ include "custos.fullname" . }}-webhook{{- end }}
{{- define "custos.metricsServiceName" -}}{{ include "custos.fullname" . }}-metrics{{- end }}
{{- define "custos.webhookCertSecretName" -}}{{ include "custos.fullname" . }}-webhook-tls{{- end }}
{{- define "custos.auditClaimName" -}}
{{- default (printf "%s-audit" (include "custos.fullname" .)) .Values.audit.persistence.existingClaim }}
{{- end }}

{{/*
The webhook configurations are cluster-scoped and named as the manager's
generated RBAC (config/rbac/role.yaml) names them: the manager may patch the
caBundle of these two objects and no others. Custos is one per cluster (its
CRDs and admission policies are cluster-wide too), so the fixed names also
make a second installation fail on them instead of doubling every webhook.
*/}}
{{- define "custos.validatingWebhookName" -}}custos-validating-webhook-configuration{{- end }}
{{- define "custos.mutatingWebhookName" -}}custos-mutating-webhook-configuration{{- end }}

{{/*
The manager's image: repository@digest when a digest is set (it wins over
the tag), else repository:tag, with the chart's appVersion as default tag.
*/}}
{{- define "custos.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Whether audit records go to the segment store on a volume. */}}
{{- define "custos.auditToFile" -}}
{{- if has .Values.audit.sink (list "file" "both") }}true{{ end }}
{{- end }}

{{/* The namespace of the audit signing key Secret. */}}
{{- define "custos.auditKeyNamespace" -}}
{{- default .Release.Namespace .Values.audit.signingKeySecret.namespace }}
{{- end }}

{{/*
The serving certificate's issuer under cert-manager: the one named in
certManager.issuerRef, else the chart's own CA Issuer.
*/}}
{{- define "custos.certIssuerRef" -}}
{{- if .Values.certManager.issuerRef.name -}}
name: {{ .Values.certManager.issuerRef.name }}
kind: {{ .Values.certManager.issuerRef.kind }}
group: {{ .Values.certManager.issuerRef.group }}
{{- else -}}
name: {{ include "custos.fullname" . }}-ca
kind: Issuer
group: cert-manager.io
{{- end }}
{{- end }}

{{/* custos-sts: its names and labels (component sts, apart from the manager's). */}}
{{- define "custos.stsName" -}}{{ include "custos.fullname" . }}-sts{{- end }}
{{- define "custos.stsSelectorLabels" -}}
app.kubernetes.io/name: {{ include "custos.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: sts
{{- end }}
{{- define "custos.stsLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "custos.stsSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: custos
{{- end }}
{{/* The Secret of custos-sts's serving certificate. */}}
{{- define "custos.stsTLSSecretName" -}}
{{- default (printf "%s-tls" (include "custos.stsName" .)) .Values.sts.tls.secretName }}
{{- end }}
{{/* The tenants' issuers' common prefix: the STS Service's in-cluster URL unless set. */}}
{{- define "custos.stsIssuerBase" -}}
{{- default (printf "https://%s.%s.svc" (include "custos.stsName" .) .Release.Namespace) .Values.sts.issuerBase }}
{{- end }}

{{/* custos-gateway: its names and labels (component gateway, apart from the manager's and custos-sts's). */}}
{{- define "custos.gatewayName" -}}{{ include "custos.fullname" . }}-gateway{{- end }}
{{- define "custos.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "custos.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}
{{- define "custos.gatewayLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "custos.gatewaySelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: custos
{{- end }}
{{/* Labels given as YAML (a selector's), as the manager's --*-pod-labels take them: key=value,key=value, sorted by key. */}}
{{- define "custos.labelsFlag" -}}
{{- $pairs := list }}
{{- range $k, $v := fromYaml . }}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}
{{/* The namespace of gateway-only credentials' leases: the manager writes them, custos-gateway alone reads them. */}}
{{- define "custos.gatewayCredentialsNamespace" -}}
{{- default (printf "%s-gateway-credentials" .Release.Namespace | trunc 63 | trimSuffix "-") .Values.gateway.credentials.namespace }}
{{- end }}

{{/* The Secret of custos-gateway's serving certificate. */}}
{{- define "custos.gatewayTLSSecretName" -}}
{{- default (printf "%s-tls" (include "custos.gatewayName" .)) .Values.gateway.tls.secretName }}
{{- end }}
